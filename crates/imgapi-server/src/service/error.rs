//! ServiceError: what a use case can fail with. Mapped to the wire in
//! exactly one place, `http::error`.

use imgapi_blob::BlobError;
use imgapi_domain::DomainError;
use imgapi_meta::MetaError;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// 404 ResourceNotFound with this message.
    #[error("{0}")]
    NotFound(String),
    #[error("this endpoint may only be called by an operator")]
    OperatorOnly,
    #[error("image uuid \"{0}\" already exists")]
    ImageUuidAlreadyExists(Uuid),
    #[error("origin image \"{0}\" does not exist")]
    OriginDoesNotExist(Uuid),
    /// 422 OriginDoesNotExist: a recycle-bin entry whose origin is gone.
    #[error("cannot restore image \"{uuid}\": its origin image \"{origin}\" does not exist (restore the origin first)")]
    RestoreOriginMissing { uuid: Uuid, origin: Uuid },
    #[error("image \"{uuid}\" has {} dependent incremental image(s): {}", dependents.len(), dependents_list(dependents))]
    ImageHasDependentImages { uuid: Uuid, dependents: Vec<Uuid> },
    /// 409 ImageProtected: a delete of a protected image (docs/lifecycle.md).
    #[error("image \"{0}\" is protected: clear the flag first (PUT /images/{0}/lifecycle with {{\"protected\": false}})")]
    ImageProtected(Uuid),
    /// 410 ChangesExpired: a change-feed cursor outside the retained log
    /// (docs/events.md).
    #[error("{0}")]
    ChangesExpired(String),
    /// 422 InvalidSignature: a signature that does not verify against the
    /// image's statement, or an image that cannot be signed yet
    /// (docs/signing.md).
    #[error("{0}")]
    InvalidSignature(String),
    /// 422 SignatureRequired: activation under `[signing]
    /// require_for_activation` without a trusted signature.
    #[error("image \"{0}\" must be signed by a key of its owner or of an operator before it is activated ([signing] require_for_activation): sign it with `imgadm sign {0}` or `ssh-keygen -Y sign -n imgapi` (docs/signing.md)")]
    SignatureRequired(Uuid),
    /// 400 Upload (file too large, icon problems).
    #[error("{0}")]
    Upload(String),
    /// 400 Download (integrity problems).
    #[error("{0}")]
    Download(String),
    /// 400 ImageFileTooBig: a Docker layer over the 20 GiB limit.
    #[error("{0}")]
    ImageFileTooBig(String),
    /// 400 NotImplemented.
    #[error("{0}")]
    NotImplemented(String),
    /// 501 NotAvailable.
    #[error("{0}")]
    NotAvailable(String),
    #[error("storage type is unsupported")]
    StorageUnsupported,
    /// 422 ImageNotShared (original message with its arguments swapped).
    #[error("Image {account} is not shared with account {uuid}")]
    ImageNotShared { account: Uuid, uuid: Uuid },
    #[error("owner \"{0}\" does not exist")]
    OwnerDoesNotExist(Uuid),
    #[error("account \"{0}\" does not exist")]
    AccountDoesNotExist(Uuid),
    /// ExportImage to a path whose first component is not the account's login.
    #[error("account {account} is not the owner of Manta path {path}")]
    NotMantaPathOwner { account: Uuid, path: String },
    /// 503: the account directory cannot be reached.
    #[error("account directory unavailable: {0}")]
    AccountDirectoryUnavailable(String),
    /// 500 InternalError with a message fit for the client.
    #[error("{0}")]
    Internal(String),
    /// 401 UnauthorizedError with this message.
    #[error("{0}")]
    Unauthorized(String),
    /// 503 RemoteSourceError: a remote IMGAPI could not be reached or read.
    #[error("{0}")]
    RemoteSource(String),
    /// 409 UploadSessionBusy: another request holds the session's lease,
    /// which frees (at the latest) in `retry_after_secs`.
    #[error("upload session {id} is busy: another request is writing to or finishing it; retry in {retry_after_secs} s")]
    UploadSessionBusy { id: Uuid, retry_after_secs: u64 },
    /// 422 OriginIsNotActive (remote imports).
    #[error("origin image \"{0}\" is not active")]
    OriginIsNotActive(Uuid),
    /// 403 QuotaExceeded: the message says which limit, its value, the
    /// use and the request's size.
    #[error("{0}")]
    QuotaExceeded(String),
    /// 409 ImageVersionExists (write-once versions).
    #[error("owner \"{owner}\" already has an image named \"{name}\" with version \"{version}\": {existing} (write-once versions)")]
    ImageVersionExists {
        owner: Uuid,
        name: String,
        version: String,
        existing: Uuid,
    },
    /// A remote IMGAPI's own error, passed on (ImportFromDatacenter).
    #[error("{message}")]
    Remote {
        code: imgapi_types::RestCode,
        message: String,
        errors: Vec<imgapi_types::FieldError>,
    },
    #[error("{context}: {source}")]
    Meta {
        context: String,
        #[source]
        source: MetaError,
    },
    /// 500 ImageFileMissing: a record references bytes the store does
    /// not have (`part`: `file`, `icon`). `key` goes to the audit log only.
    #[error("the {part} of image \"{image}\" is missing from storage")]
    BlobMissing {
        image: Uuid,
        part: &'static str,
        key: String,
    },
    #[error("{context}: {source}")]
    Blob {
        context: String,
        #[source]
        source: BlobError,
    },
}

fn dependents_list(deps: &[Uuid]) -> String {
    let all: Vec<String> = deps.iter().map(Uuid::to_string).collect();
    if all.len() < 10 {
        all.join(", ")
    } else {
        format!("{}, and {} more...", all[..5].join(", "), all.len() - 5)
    }
}

impl ServiceError {
    pub fn meta(context: impl Into<String>) -> impl FnOnce(MetaError) -> ServiceError {
        let context = context.into();
        move |source| ServiceError::Meta { context, source }
    }

    pub fn blob(context: impl Into<String>) -> impl FnOnce(BlobError) -> ServiceError {
        let context = context.into();
        move |source| ServiceError::Blob { context, source }
    }

    /// For reads of a blob that a stored record references (`part` of
    /// `image`): a missing object is lost data, not an ordinary error.
    pub fn referenced_blob(
        context: impl Into<String>,
        image: Uuid,
        part: &'static str,
    ) -> impl FnOnce(BlobError) -> ServiceError {
        let context = context.into();
        move |source| match source {
            BlobError::NotFound(key) => ServiceError::BlobMissing { image, part, key },
            source => ServiceError::Blob { context, source },
        }
    }

    pub fn not_found(message: impl Into<String>) -> ServiceError {
        ServiceError::NotFound(message.into())
    }

    pub fn validation(message: impl Into<String>, errors: Vec<imgapi_types::FieldError>) -> Self {
        ServiceError::Domain(DomainError::validation(message, errors))
    }

    pub fn invalid_parameter(
        message: impl Into<String>,
        errors: Vec<imgapi_types::FieldError>,
    ) -> Self {
        ServiceError::Domain(DomainError::invalid_parameter(message, errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependents_message() {
        let deps: Vec<Uuid> = (1..=11).map(Uuid::from_u128).collect();
        let err = ServiceError::ImageHasDependentImages {
            uuid: Uuid::from_u128(0),
            dependents: deps,
        };
        assert!(err.to_string().ends_with(", and 6 more..."));
        assert!(err
            .to_string()
            .contains("has 11 dependent incremental image(s): "));
    }
}
