//! The change feed (an IMGAPI extension, docs/events.md): the events
//! `GET /changes` answers with and webhooks deliver.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What happened to an image. Each event is one committed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ChangeKind {
    /// A record was created (CreateImage, an import, a Docker layer).
    #[serde(rename = "image.created")]
    Created,
    /// The image's file was added or replaced (AddImageFile).
    #[serde(rename = "image.file_added")]
    FileAdded,
    /// The icon was added or removed.
    #[serde(rename = "image.icon_changed")]
    IconChanged,
    /// The image was activated.
    #[serde(rename = "image.activated")]
    Activated,
    /// Manifest fields changed (`fields` names them).
    #[serde(rename = "image.updated")]
    Updated,
    #[serde(rename = "image.disabled")]
    Disabled,
    #[serde(rename = "image.enabled")]
    Enabled,
    /// Only the ACL changed.
    #[serde(rename = "image.acl_changed")]
    AclChanged,
    /// The image was added to one or more channels.
    #[serde(rename = "image.channel_added")]
    ChannelAdded,
    /// The image was removed from one or more channels.
    #[serde(rename = "image.channel_removed")]
    ChannelRemoved,
    /// The image is gone (DeleteImage without a recycle bin, or a uuid change's old uuid).
    #[serde(rename = "image.deleted")]
    Deleted,
    /// DeleteImage moved the image into the recycle bin: gone for every read path.
    #[serde(rename = "image.recycled")]
    Recycled,
    /// A recycle-bin entry was restored: the image is back.
    #[serde(rename = "image.restored")]
    Restored,
    /// A recycle-bin entry was purged for good.
    #[serde(rename = "image.purged")]
    Purged,
    /// Deprecation or protection changed (`fields`: `deprecated_at`, `protected`).
    #[serde(rename = "image.lifecycle_changed")]
    LifecycleChanged,
    /// A signature was added or replaced (`fields`: the key's id, docs/signing.md).
    #[serde(rename = "image.signature_added")]
    SignatureAdded,
    /// A signature was removed (`fields`: the key's id).
    #[serde(rename = "image.signature_removed")]
    SignatureRemoved,
}

impl ChangeKind {
    /// Every kind, in documentation order.
    pub const ALL: [ChangeKind; 17] = [
        ChangeKind::Created,
        ChangeKind::FileAdded,
        ChangeKind::IconChanged,
        ChangeKind::Activated,
        ChangeKind::Updated,
        ChangeKind::Disabled,
        ChangeKind::Enabled,
        ChangeKind::AclChanged,
        ChangeKind::ChannelAdded,
        ChangeKind::ChannelRemoved,
        ChangeKind::Deleted,
        ChangeKind::Recycled,
        ChangeKind::Restored,
        ChangeKind::Purged,
        ChangeKind::LifecycleChanged,
        ChangeKind::SignatureAdded,
        ChangeKind::SignatureRemoved,
    ];

    /// The wire name (`image.created`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "image.created",
            ChangeKind::FileAdded => "image.file_added",
            ChangeKind::IconChanged => "image.icon_changed",
            ChangeKind::Activated => "image.activated",
            ChangeKind::Updated => "image.updated",
            ChangeKind::Disabled => "image.disabled",
            ChangeKind::Enabled => "image.enabled",
            ChangeKind::AclChanged => "image.acl_changed",
            ChangeKind::ChannelAdded => "image.channel_added",
            ChangeKind::ChannelRemoved => "image.channel_removed",
            ChangeKind::Deleted => "image.deleted",
            ChangeKind::Recycled => "image.recycled",
            ChangeKind::Restored => "image.restored",
            ChangeKind::Purged => "image.purged",
            ChangeKind::LifecycleChanged => "image.lifecycle_changed",
            ChangeKind::SignatureAdded => "image.signature_added",
            ChangeKind::SignatureRemoved => "image.signature_removed",
        }
    }

    /// The kind a wire name names.
    pub fn parse(name: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the image is gone from every read path after this event.
    pub fn removes_image(self) -> bool {
        matches!(
            self,
            ChangeKind::Deleted | ChangeKind::Recycled | ChangeKind::Purged
        )
    }
}

/// One event of the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeEvent {
    /// Position in the feed: strictly increasing in commit order, with no
    /// gaps (a caller may not be shown every number: events about images it
    /// cannot see are left out).
    pub seq: i64,
    /// When the change was committed (ISO 8601, ms).
    pub time: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    /// The image's UUID.
    pub uuid: String,
    /// The image's owner (after the change).
    pub owner: String,
    pub name: String,
    pub version: String,
    /// Top-level manifest fields the change touched (for `image.updated`
    /// the fields updated; empty for creations and removals).
    pub fields: Vec<String>,
}

/// One answer of `GET /changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChangesPage {
    /// The events after `since` the caller may see, oldest first.
    pub events: Vec<ChangeEvent>,
    /// The `since` of the next request: every event up to it was shown or
    /// is hidden from the caller. With `limit=0`, the feed's latest
    /// sequence number (follow from now).
    pub next: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name() {
        for kind in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(ChangeKind::parse("image.nope"), None);
    }
}
