//! What an import can fail with, and the [`ServiceError`] (so the restCode
//! and message on the wire) each failure is.

use imgapi_types::{FieldCode, FieldError, RestCode};
use uuid::Uuid;

use super::chain::MAX_ORIGIN_CHAIN;
use super::fetch::FetchError;
use super::policy::Refused;
use super::source::SourceError;
use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// 422 InvalidParameter: a client-given source URL does not parse.
    #[error("invalid {field} URL: {source}")]
    InvalidSourceUrl {
        field: &'static str,
        source: SourceError,
    },
    /// 422 InvalidParameter: the `[remote]` policy refuses a client-given
    /// URL.
    #[error("{field} refused by the [remote] policy: {refused}")]
    Refused {
        field: &'static str,
        refused: Refused,
    },
    /// 503 RemoteSourceError.
    #[error("Unable to get manifest for image {uuid}. Error from remote: {source}")]
    Manifest { uuid: Uuid, source: FetchError },
    /// 503 RemoteSourceError.
    #[error("Unable to get manifest for origin image {uuid}. Error from remote: {source}")]
    OriginManifest { uuid: Uuid, source: FetchError },
    /// 503 RemoteSourceError: the file's bytes cannot be had.
    #[error("Unable to get stream for image file {uuid}. Error from remote: {cause}")]
    Stream { uuid: Uuid, cause: String },
    /// 503 RemoteSourceError.
    #[error("Unable to get icon of image {uuid}. Error from remote: {source}")]
    Icon { uuid: Uuid, source: FetchError },
    /// 503 RemoteSourceError: the source has a signatures endpoint, but its
    /// answer cannot be had (an import never silently loses signatures).
    #[error("Unable to get the signatures of image {uuid}. Error from remote: {source}")]
    Signatures { uuid: Uuid, source: FetchError },
    /// 500 InternalError.
    #[error("the origin chain of image {image} is longer than {MAX_ORIGIN_CHAIN} images or loops")]
    OriginChain { image: String },
    /// 500 InternalError: a configured `[datacenters]` URL does not parse.
    #[error("datacenter {datacenter} has an invalid IMGAPI URL: {source}")]
    DatacenterUrl {
        datacenter: String,
        source: SourceError,
    },
    /// 404 ResourceNotFound (ImportFromDatacenter).
    #[error("Unable to import - origin image {0} must already exist in the datacenter (as this image is not owned by you).")]
    ForeignOriginMissing(Uuid),
    /// 400 Download: the source's manifest announces too large a file.
    #[error("image file size, {0}, exceeds the maximum allowed file size, 20 GiB")]
    SourceFileTooLarge(u64),
    /// 400 Download: the source sent more or fewer bytes than announced
    /// (`got` is a size, or "more than <size>").
    #[error("\"Content-Length\" header, {announced}, does not match downloaded size, {got}")]
    SizeMismatch { announced: u64, got: String },
    /// 400 Download.
    #[error(
        "\"sha1\" file field, {announced}, does not match the downloaded file sha1 hash, {got}"
    )]
    Sha1Mismatch { announced: String, got: String },
    /// 400 Download: the file URL answered with a non-2xx status.
    #[error("HTTP {0} error attempting to download image")]
    UrlStatus(u16),
    /// 400 Download: the file URL could not be read.
    #[error("Error getting image: {0}")]
    UrlTransfer(String),
    /// 400 Upload: the file URL announces too large a file.
    #[error("image file size {0} (from Content-Length) exceeds the maximum allowed size, 20 GiB")]
    UrlFileTooLarge(u64),
    /// 400 Upload: the file URL sent too many bytes.
    #[error("image file size exceeds the maximum allowed size, 20 GiB")]
    UrlFileExceeds,
    /// 400 Download.
    #[error("image file size is 0 bytes, empty files are not allowed")]
    EmptyFile,
    /// 400 Download.
    #[error("expected sha1 hash, {expected}, does not match the uploaded file sha1 hash, {got}")]
    UrlSha1Mismatch { expected: String, got: String },
}

impl ImportError {
    /// The source's manifest of `uuid` names no file.
    pub fn no_file(uuid: Uuid) -> ImportError {
        ImportError::Stream {
            uuid,
            cause: format!("image {uuid} has no file"),
        }
    }

    /// The image's manifest could not be fetched; a remote IMGAPI's own
    /// error is passed on as it came when its restCode is one of ours with
    /// the same status (ImportFromDatacenter, §5.21 step 5).
    pub fn passed_on(uuid: Uuid, e: FetchError) -> ServiceError {
        if let FetchError::Status {
            status,
            code: Some(code),
            message,
            body,
        } = &e
        {
            if let Some(code) = RestCode::from_code(code).filter(|c| c.http_status() == *status) {
                let errors = body
                    .as_ref()
                    .and_then(|b| b.get("errors"))
                    .and_then(|e| serde_json::from_value::<Vec<FieldError>>(e.clone()).ok())
                    .unwrap_or_default();
                return ServiceError::Remote {
                    code,
                    message: message.clone().unwrap_or_default(),
                    errors,
                };
            }
        }
        ImportError::Manifest { uuid, source: e }.into()
    }
}

impl From<ImportError> for ServiceError {
    fn from(e: ImportError) -> ServiceError {
        let message = e.to_string();
        match e {
            ImportError::InvalidSourceUrl { field, .. } => {
                ServiceError::invalid_parameter(message, vec![FieldError::invalid(field)])
            }
            ImportError::Refused { field, refused } => ServiceError::invalid_parameter(
                message,
                vec![FieldError::with_message(
                    field,
                    FieldCode::Invalid,
                    refused.0,
                )],
            ),
            ImportError::Manifest { .. }
            | ImportError::OriginManifest { .. }
            | ImportError::Stream { .. }
            | ImportError::Icon { .. }
            | ImportError::Signatures { .. } => ServiceError::RemoteSource(message),
            ImportError::OriginChain { .. } | ImportError::DatacenterUrl { .. } => {
                ServiceError::Internal(message)
            }
            ImportError::ForeignOriginMissing(_) => ServiceError::NotFound(message),
            ImportError::SourceFileTooLarge(_)
            | ImportError::SizeMismatch { .. }
            | ImportError::Sha1Mismatch { .. }
            | ImportError::UrlStatus(_)
            | ImportError::UrlTransfer(_)
            | ImportError::EmptyFile
            | ImportError::UrlSha1Mismatch { .. } => ServiceError::Download(message),
            ImportError::UrlFileTooLarge(_) | ImportError::UrlFileExceeds => {
                ServiceError::Upload(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_kinds() {
        let uuid = Uuid::from_u128(1);
        let transport = FetchError::Transport("connection refused".into());
        let manifest = ServiceError::from(ImportError::Manifest {
            uuid,
            source: transport,
        });
        assert!(matches!(&manifest, ServiceError::RemoteSource(m)
            if *m == format!("Unable to get manifest for image {uuid}. Error from remote: connection refused")));
        let no_file = ServiceError::from(ImportError::no_file(uuid));
        assert!(matches!(&no_file, ServiceError::RemoteSource(m)
            if *m == format!("Unable to get stream for image file {uuid}. Error from remote: image {uuid} has no file")));
        let chain = ServiceError::from(ImportError::OriginChain { image: "x".into() });
        assert!(matches!(&chain, ServiceError::Internal(m)
            if m == "the origin chain of image x is longer than 100 images or loops"));
        let size = ServiceError::from(ImportError::SizeMismatch {
            announced: 5,
            got: "more than 5".into(),
        });
        assert!(matches!(&size, ServiceError::Download(m)
            if m == "\"Content-Length\" header, 5, does not match downloaded size, more than 5"));
        assert!(matches!(
            ServiceError::from(ImportError::UrlFileTooLarge(9)),
            ServiceError::Upload(_)
        ));
        assert!(matches!(
            ServiceError::from(ImportError::ForeignOriginMissing(uuid)),
            ServiceError::NotFound(_)
        ));
        let refused = ServiceError::from(ImportError::Refused {
            field: "source",
            refused: Refused("the URL has no host".into()),
        });
        assert_eq!(
            refused.to_string(),
            "source refused by the [remote] policy: the URL has no host"
        );
    }
}
