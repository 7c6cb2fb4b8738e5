//! The derived form of a record that every SQL backend writes: the search
//! and sort columns and the side-table rows, computed from an
//! [`ImageRecord`] once, outside any transaction.

use imgapi_domain::tags::search_pairs;
use imgapi_domain::ImageRecord;
use uuid::Uuid;

use crate::MetaError;

/// One record as written: the derived columns and side-table rows.
/// Built by the caller (serialising is the costly part), so a backend's
/// transaction only runs SQL.
pub(crate) struct Columns {
    pub(crate) id: Uuid,
    pub(crate) uuid: String,
    pub(crate) owner: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) state: &'static str,
    pub(crate) activated: bool,
    pub(crate) disabled: bool,
    pub(crate) public: bool,
    pub(crate) image_type: String,
    pub(crate) os: String,
    pub(crate) origin: Option<String>,
    /// `published_at` in ms since the epoch; `None` when absent or unparsable.
    pub(crate) published_ms: Option<i64>,
    /// The authoritative record, as JSON text.
    pub(crate) record: String,
    /// Tag search form (manifest.md §7): `(key, normalised value)`.
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) billing_tags: Vec<String>,
    pub(crate) channels: Vec<String>,
    pub(crate) acl: Vec<String>,
}

impl Columns {
    pub(crate) fn of(image: &ImageRecord) -> Result<Self, MetaError> {
        let record = serde_json::to_string(image).map_err(|e| {
            MetaError::Backend(format!("cannot serialise image {}: {e}", image.uuid))
        })?;
        Ok(Columns {
            id: image.uuid,
            uuid: image.uuid.to_string(),
            owner: image.owner.to_string(),
            name: image.name.clone(),
            version: image.version.clone(),
            state: image.state.as_str(),
            activated: image.activated,
            disabled: image.disabled,
            public: image.public,
            image_type: image.image_type.clone(),
            os: image.os.clone(),
            origin: image.origin.map(|o| o.to_string()),
            published_ms: image.published_at_ms(),
            record,
            tags: image.tags.as_ref().map(search_pairs).unwrap_or_default(),
            billing_tags: image.billing_tags.clone().unwrap_or_default(),
            channels: image.channels.clone().unwrap_or_default(),
            acl: image.acl.iter().map(Uuid::to_string).collect(),
        })
    }
}

/// A stored record's JSON back into an [`ImageRecord`] (both SQL backends).
pub(crate) fn decode_record(uuid: &str, record: &str) -> Result<ImageRecord, MetaError> {
    serde_json::from_str(record).map_err(|e| MetaError::Corrupt {
        uuid: uuid.to_owned(),
        detail: e.to_string(),
    })
}

/// A uuid column back into a [`Uuid`].
pub(crate) fn decode_uuid(text: &str) -> Result<Uuid, MetaError> {
    Uuid::parse_str(text).map_err(|e| MetaError::Corrupt {
        uuid: text.to_owned(),
        detail: format!("bad uuid column: {e}"),
    })
}
