//! Docker and OCI registries: AdminImportDockerImage (api.md §5.26) brings
//! an image's layers in as `type: docker` images, AdminPushDockerImage
//! (§5.27) sends a layer chain back out (docs/docker.md).
//!
//! - [`reference`]: `[INDEX/]REPO[:TAG|@DIGEST]` as the original parses it.
//! - [`credentials`]: registry credentials from the request headers.
//! - [`registry`]: the registry HTTP client (auth, manifests, blobs, uploads)
//!   under the `[remote]` policy and `[docker] insecure_registries`.
//! - [`image`]: manifests, lists, indexes, configs; the layer plan, RFD 57
//!   uuids and the IMGAPI manifest of a layer.
//! - [`download`]: one layer into the blob store, every digest verified.
//! - [`pull`], [`push`]: the two operations; [`events`]: their progress
//!   stream.

pub mod credentials;
pub mod download;
pub mod events;
pub mod image;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;

use imgapi_types::FieldError;

use crate::service::ServiceError;
use registry::RegistryError;

/// A registry failure as a service error (the original's
/// `wrapErrorFromDrc`).
pub fn registry_error(e: RegistryError) -> ServiceError {
    match e {
        RegistryError::Refused(m) | RegistryError::Transport(m) | RegistryError::Status(m) => {
            ServiceError::RemoteSource(m)
        }
        RegistryError::Unauthorized(m) => ServiceError::Unauthorized(m),
        RegistryError::NotFound(m) => ServiceError::NotFound(m),
        RegistryError::BadDigest(m) => {
            ServiceError::validation(m, vec![FieldError::invalid("digest")])
        }
    }
}
