//! Image lifecycle flags (an IMGAPI extension, docs/lifecycle.md): the body
//! `GET|PUT /images/:uuid/lifecycle` answer with. Kept out of the manifest,
//! so clients that validate manifests never see them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The lifecycle flags of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImageLifecycle {
    /// The image's UUID.
    pub uuid: String,
    /// ISO 8601 time from which the image is deprecated (`null`: never).
    /// A deprecated image is left out of ListImages, the catalog and the
    /// simplestreams index for everyone but its owner and operators; it can
    /// still be fetched and imported by uuid.
    #[serde(default)]
    pub deprecated_at: Option<String>,
    /// Whether `deprecated_at` has passed.
    pub deprecated: bool,
    /// A protected image cannot be deleted until the flag is cleared.
    pub protected: bool,
}
