//! The image aggregate as stored (manifest.md §1 "stored record").
//!
//! An [`ImageRecord`] is always valid: it is only built by [`crate::build`]
//! (create/import), [`crate::build::apply_update`] or by the services from an
//! existing valid record. Its serde form is the stored ("raw") record, which
//! is also the map the validator checks.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use crate::state::ImageState;

/// One image file entry (manifest.md §8), stored form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageFile {
    pub sha1: String,
    pub size: u64,
    pub compression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_guid: Option<String>,
    #[serde(rename = "contentMD5", default)]
    pub content_md5: String,
    /// Lower-case hex SHA-256 of the stored bytes (an extension: computed
    /// with sha1/md5; absent in records written before SHA-256 was kept). Shown only
    /// with inclAdminFields; sent as `Repr-Digest` on GetImageFile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// ISO 8601 upload time, sent as `Last-Modified`.
    #[serde(default)]
    pub mtime: String,
    /// Storage backend name (`local`, `s3`); shown only with inclAdminFields.
    #[serde(default)]
    pub stor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(
        rename = "uncompressedDigest",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub uncompressed_digest: Option<String>,
    /// Key of the bytes in the blob store. Internal, never on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_key: Option<String>,
}

/// The stored icon record; the API shows only `"icon": true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IconRecord {
    pub sha1: String,
    pub size: u64,
    #[serde(rename = "contentType")]
    pub content_type: String,
    #[serde(rename = "contentMD5")]
    pub content_md5: String,
    pub mtime: String,
    pub stor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_key: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A stored image record. Field order follows the original's raw record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub v: Number,
    pub uuid: Uuid,
    pub owner: Uuid,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eula: Option<String>,
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub activated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    pub state: ImageState,
    pub public: bool,
    #[serde(rename = "type")]
    pub image_type: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    #[serde(default)]
    pub files: Vec<ImageFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<IconRecord>,
    #[serde(default)]
    pub acl: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_passwords: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_directories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl ImageRecord {
    /// The stored ("raw") map, as the validator and UpdateImage see it.
    pub fn to_raw_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // A struct of plain data always serialises to an object.
            _ => Map::new(),
        }
    }

    /// Rebuild a record from a validated, normalised raw map.
    pub fn from_raw_map(map: Map<String, Value>) -> Result<Self, serde_json::Error> {
        serde_json::from_value(Value::Object(map))
    }

    /// Activated = state active or disabled (manifest.md §6).
    pub fn is_activated(&self) -> bool {
        self.activated
    }

    /// `published_at` as milliseconds since the epoch, for sorting and markers.
    pub fn published_at_ms(&self) -> Option<i64> {
        self.published_at.as_deref().and_then(parse_iso_ms)
    }

    /// Whether the image is in `channel` (channel-enabled servers).
    pub fn in_channel(&self, channel: &str) -> bool {
        self.channels
            .as_ref()
            .is_some_and(|chs| chs.iter().any(|c| c == channel))
    }
}

/// Parse an ISO 8601 / RFC 3339 date (also a bare `YYYY-MM-DD`) into epoch ms.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.fZ") {
        return Some(dt.and_utc().timestamp_millis());
    }
    if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%MZ") {
        return Some(dt.and_utc().timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|dt| dt.and_utc().timestamp_millis());
    }
    None
}

/// Now as the original writes it: ISO 8601 with milliseconds and `Z`.
pub fn now_iso() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn sample() -> ImageRecord {
        ImageRecord {
            v: Number::from(2),
            uuid: Uuid::from_u128(0x1234),
            owner: Uuid::from_u128(0x42),
            name: "base".into(),
            version: "1.0.0".into(),
            description: None,
            homepage: None,
            eula: None,
            disabled: false,
            activated: false,
            published_at: None,
            state: ImageState::Unactivated,
            public: true,
            image_type: "zone-dataset".into(),
            os: "smartos".into(),
            origin: None,
            error: None,
            files: vec![],
            icon: None,
            acl: vec![],
            requirements: None,
            users: None,
            billing_tags: None,
            traits: None,
            tags: None,
            generate_passwords: None,
            inherited_directories: None,
            nic_driver: None,
            disk_driver: None,
            cpu_type: None,
            image_size: None,
            channels: None,
            urn: None,
            expires_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_map_round_trip() {
        let mut rec = fixtures::sample();
        rec.tags = Some(serde_json::from_str(r#"{"z":1,"a":{"b":2}}"#).unwrap_or_default());
        let map = rec.to_raw_map();
        assert_eq!(ImageRecord::from_raw_map(map).ok(), Some(rec));
    }

    #[test]
    fn iso_parsing() {
        assert_eq!(parse_iso_ms("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_iso_ms("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(parse_iso_ms("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_iso_ms("garbage"), None);
    }
}
