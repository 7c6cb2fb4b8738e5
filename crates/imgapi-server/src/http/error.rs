//! ApiError: the only place where a restCode and an HTTP status are chosen.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use imgapi_blob::BlobError;
use imgapi_domain::DomainError;
use imgapi_meta::MetaError;
use imgapi_types::{ErrorBody, FieldError, RestCode};

use crate::service::ServiceError;

/// An error response: restCode, message, field errors and, for the audit
/// log, the full cause chain.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: RestCode,
    pub message: String,
    pub errors: Vec<FieldError>,
    /// `Allow` header of 405 responses.
    pub allow: Option<String>,
    /// Internal cause chain; logged, never sent.
    pub cause: Option<String>,
    /// `Retry-After` header (seconds).
    pub retry_after_secs: Option<u64>,
}

/// Stored in response extensions so the audit log can print the cause.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub String);

impl ApiError {
    pub fn new(code: RestCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            errors: Vec::new(),
            allow: None,
            cause: None,
            retry_after_secs: None,
        }
    }

    pub fn with_errors(
        code: RestCode,
        message: impl Into<String>,
        errors: Vec<FieldError>,
    ) -> Self {
        ApiError {
            errors,
            ..ApiError::new(code, message)
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(RestCode::ResourceNotFound, message)
    }

    pub fn internal(message: impl Into<String>, cause: impl Into<String>) -> Self {
        ApiError {
            cause: Some(cause.into()),
            ..ApiError::new(RestCode::InternalError, message)
        }
    }

    pub fn invalid_param(message: impl Into<String>, errors: Vec<FieldError>) -> Self {
        ApiError::with_errors(RestCode::InvalidParameter, message, errors)
    }

    pub fn validation(message: impl Into<String>, errors: Vec<FieldError>) -> Self {
        ApiError::with_errors(RestCode::ValidationFailed, message, errors)
    }

    /// The error as a response (for handlers that add headers to it).
    pub fn into_response_parts(self) -> Response {
        self.into_response()
    }

    /// The wire body. Credentials in URLs the message quotes (a remote
    /// source's `?token=`, a user-info password) never reach the client.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code, self.client_message(), self.errors.clone())
    }

    /// The message as a client may see it.
    pub fn client_message(&self) -> String {
        imgapi_domain::redact::redact_text(&self.message).into_owned()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = crate::http::response::json(status, &self.body());
        if let Some(allow) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            resp.headers_mut().insert(header::ALLOW, allow);
        }
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        let cause = self.cause.unwrap_or_else(|| self.message.clone());
        resp.extensions_mut().insert(ErrorCause(cause));
        resp
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    imgapi_blob::error_chain(err)
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        let message = err.to_string();
        match err {
            DomainError::ValidationFailed { message, errors } => {
                ApiError::validation(message, errors)
            }
            DomainError::InvalidParameter { message, errors } => {
                ApiError::invalid_param(message, errors)
            }
            DomainError::ImageAlreadyActivated(_) => {
                ApiError::new(RestCode::ImageAlreadyActivated, message)
            }
            DomainError::NoActivationNoFile(_) => {
                ApiError::new(RestCode::NoActivationNoFile, message)
            }
            DomainError::ImageFilesImmutable(_) => {
                ApiError::new(RestCode::ImageFilesImmutable, message)
            }
            DomainError::NotImageOwner { .. } => ApiError::new(RestCode::NotImageOwner, message),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        let message = err.to_string();
        match err {
            ServiceError::Domain(d) => d.into(),
            ServiceError::NotFound(m) => ApiError::not_found(m),
            ServiceError::OperatorOnly => ApiError::new(RestCode::OperatorOnly, message),
            ServiceError::ImageUuidAlreadyExists(_) => {
                ApiError::new(RestCode::ImageUuidAlreadyExists, message)
            }
            ServiceError::OriginDoesNotExist(_) | ServiceError::RestoreOriginMissing { .. } => {
                ApiError::new(RestCode::OriginDoesNotExist, message)
            }
            ServiceError::ImageHasDependentImages { .. } => {
                ApiError::new(RestCode::ImageHasDependentImages, message)
            }
            ServiceError::ImageProtected(_) => ApiError::new(RestCode::ImageProtected, message),
            ServiceError::ChangesExpired(_) => ApiError::new(RestCode::ChangesExpired, message),
            ServiceError::InvalidSignature(_) => ApiError::new(RestCode::InvalidSignature, message),
            ServiceError::SignatureRequired(_) => {
                ApiError::new(RestCode::SignatureRequired, message)
            }
            ServiceError::Upload(m) => ApiError::new(RestCode::Upload, m),
            ServiceError::Download(m) => ApiError::new(RestCode::Download, m),
            ServiceError::ImageFileTooBig(m) => ApiError::new(RestCode::ImageFileTooBig, m),
            ServiceError::NotImplemented(m) => ApiError::new(RestCode::NotImplemented, m),
            ServiceError::NotAvailable(m) => ApiError::new(RestCode::NotAvailable, m),
            ServiceError::StorageUnsupported => {
                ApiError::new(RestCode::StorageUnsupported, message)
            }
            ServiceError::ImageNotShared { .. } => ApiError::new(RestCode::ImageNotShared, message),
            ServiceError::Internal(m) => ApiError::new(RestCode::InternalError, m),
            ServiceError::OwnerDoesNotExist(_) => {
                ApiError::new(RestCode::OwnerDoesNotExist, message)
            }
            ServiceError::AccountDoesNotExist(_) => {
                ApiError::new(RestCode::AccountDoesNotExist, message)
            }
            ServiceError::NotMantaPathOwner { .. } => {
                ApiError::new(RestCode::NotMantaPathOwner, message)
            }
            ServiceError::AccountDirectoryUnavailable(_) => ApiError {
                cause: Some(message),
                ..ApiError::new(RestCode::ServiceUnavailableError, "service unavailable")
            },
            ServiceError::Unauthorized(m) => ApiError::new(RestCode::UnauthorizedError, m),
            ServiceError::RemoteSource(m) => ApiError::new(RestCode::RemoteSourceError, m),
            ServiceError::UploadSessionBusy {
                retry_after_secs, ..
            } => ApiError {
                retry_after_secs: Some(retry_after_secs),
                ..ApiError::new(RestCode::UploadSessionBusy, message)
            },
            ServiceError::OriginIsNotActive(_) => {
                ApiError::new(RestCode::OriginIsNotActive, message)
            }
            ServiceError::QuotaExceeded(m) => ApiError::new(RestCode::QuotaExceeded, m),
            ServiceError::ImageVersionExists { .. } => {
                ApiError::new(RestCode::ImageVersionExists, message)
            }
            ServiceError::Remote {
                code,
                message,
                errors,
            } => ApiError::with_errors(code, message, errors),
            ServiceError::BlobMissing { ref key, .. } => ApiError {
                cause: Some(format!("{message} (blob {key})")),
                ..ApiError::new(RestCode::ImageFileMissing, message)
            },
            ServiceError::Meta {
                ref context,
                ref source,
            } => {
                let cause = chain(&err);
                meta_error(context, source, cause)
            }
            ServiceError::Blob {
                ref context,
                ref source,
            } => {
                let cause = chain(&err);
                blob_error(context, source, cause)
            }
        }
    }
}

fn meta_error(context: &str, source: &MetaError, cause: String) -> ApiError {
    let code = match source {
        MetaError::NotFound(uuid) => return ApiError::not_found(format!("image {uuid} not found")),
        MetaError::AlreadyExists(uuid) => {
            return ApiError::new(
                RestCode::ImageUuidAlreadyExists,
                format!("image uuid \"{uuid}\" already exists"),
            )
        }
        MetaError::Unavailable(_) => {
            return ApiError {
                cause: Some(cause),
                retry_after_secs: Some(crate::breaker::RETRY_AFTER_SECS),
                ..ApiError::new(RestCode::ServiceUnavailableError, "service unavailable")
            }
        }
        MetaError::Conflict(_) | MetaError::Corrupt { .. } | MetaError::Backend(_) => {
            RestCode::InternalError
        }
    };
    ApiError {
        cause: Some(cause),
        ..ApiError::new(code, context.to_string())
    }
}

fn blob_error(context: &str, source: &BlobError, cause: String) -> ApiError {
    match source {
        BlobError::Unavailable(_) => ApiError {
            cause: Some(cause),
            retry_after_secs: Some(crate::breaker::RETRY_AFTER_SECS),
            ..ApiError::new(RestCode::StorageIsDown, "storage is down at the moment")
        },
        // Names the bucket and why it cannot be used: an operator must act.
        BlobError::Inaccessible(_) => ApiError {
            cause: Some(cause),
            retry_after_secs: Some(crate::breaker::RETRY_AFTER_SECS),
            ..ApiError::new(RestCode::StorageIsDown, source.to_string())
        },
        // The client stopped sending: its fault, not the server's.
        BlobError::Source(_) => ApiError {
            cause: Some(cause),
            ..ApiError::new(RestCode::Upload, format!("{context}: {source}"))
        },
        BlobError::NotFound(_)
        | BlobError::TooLarge { .. }
        | BlobError::InvalidKey(_)
        | BlobError::Io(_) => ApiError::internal(format!("{context}: {source}"), cause),
    }
}
