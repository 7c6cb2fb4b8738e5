//! What handling one upstream image can fail with: reported, counted as a
//! failure, and the run goes on.

use imgapi_meta::MetaError;
use uuid::Uuid;

use crate::service::import::chain::MAX_ORIGIN_CHAIN;
use crate::service::import::fetch::FetchError;
use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot load the local image: {0}")]
    Load(MetaError),
    #[error("image {0} vanished meanwhile")]
    Vanished(Uuid),
    #[error("the upstream manifest has no files[0] with sha1 and size")]
    NoFile,
    #[error("the origin chain is longer than {MAX_ORIGIN_CHAIN} images or loops")]
    OriginChain,
    #[error("cannot get the manifest of origin {origin}: {cause}")]
    OriginManifest { origin: Uuid, cause: FetchError },
    #[error("origin {0} is not active upstream")]
    OriginNotActive(Uuid),
    /// An origin (imported before its dependent) failed.
    #[error("origin {origin}: {cause}")]
    Origin { origin: Uuid, cause: Box<SyncError> },
    /// A local origin is not the upstream's.
    #[error("{0}")]
    Conflict(String),
    #[error("cannot create the record: {0}")]
    Create(ServiceError),
    /// The import failed and the record it created stayed.
    #[error("{cause}; removing the unfinished record failed too: {cleanup}")]
    NotDiscarded {
        cause: Box<SyncError>,
        cleanup: Box<SyncError>,
    },
    /// Transferring the file or fetching the icon failed, or deleting an
    /// unfinished record.
    #[error("{0}")]
    Step(ServiceError),
    #[error("an import job of this image is in progress on the server; left to it")]
    Busy,
    #[error("icon: {0}")]
    Icon(ServiceError),
    #[error("cannot activate: {0}")]
    Activate(ServiceError),
    #[error("the upstream manifest cannot be imported: {0}")]
    Unimportable(ServiceError),
    #[error("cannot update the record: {0}")]
    Update(ServiceError),
    #[error("cannot read the jobs of the image: {0}")]
    Jobs(MetaError),
    #[error("cannot delete the icon: {0}")]
    DeleteIcon(ServiceError),
    #[error("cannot tell whether it was mirrored: {0}")]
    Provenance(MetaError),
    #[error("cannot list dependents: {0}")]
    Dependents(MetaError),
    #[error("cannot delete: {0}")]
    Delete(Box<SyncError>),
    /// The upstream has a signatures endpoint but its answer cannot be
    /// had: the image is not imported (or not brought up to date) without
    /// its signatures; the next run tries again.
    #[error("cannot get the upstream's signatures: {0}")]
    Signatures(FetchError),
    #[error("signatures: {0}")]
    SignatureStore(ServiceError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let origin = Uuid::from_u128(7);
        let e = SyncError::Origin {
            origin,
            cause: Box::new(SyncError::NotDiscarded {
                cause: Box::new(SyncError::OriginNotActive(origin)),
                cleanup: Box::new(SyncError::Vanished(origin)),
            }),
        };
        assert_eq!(
            e.to_string(),
            format!("origin {origin}: origin {origin} is not active upstream; removing the unfinished record failed too: image {origin} vanished meanwhile")
        );
        assert_eq!(
            SyncError::OriginChain.to_string(),
            "the origin chain is longer than 100 images or loops"
        );
        assert_eq!(
            SyncError::Delete(Box::new(SyncError::Busy)).to_string(),
            "cannot delete: an import job of this image is in progress on the server; left to it"
        );
    }
}
