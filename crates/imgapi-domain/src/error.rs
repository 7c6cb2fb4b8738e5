//! DomainError: rule violations found by pure domain code.

use imgapi_types::FieldError;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    /// 422 ValidationFailed with field errors.
    #[error("{message}")]
    ValidationFailed {
        message: String,
        errors: Vec<FieldError>,
    },
    /// 422 InvalidParameter with field errors.
    #[error("{message}")]
    InvalidParameter {
        message: String,
        errors: Vec<FieldError>,
    },
    #[error("image \"{0}\" is already activated")]
    ImageAlreadyActivated(Uuid),
    #[error("image \"{0}\" cannot be activated: it has no file")]
    NoActivationNoFile(Uuid),
    #[error("cannot modify files on activated image {0}")]
    ImageFilesImmutable(Uuid),
    #[error("account {account} is not the owner of image {uuid}")]
    NotImageOwner { account: Uuid, uuid: Uuid },
}

impl DomainError {
    /// `invalid image data: <fields>` from validator errors (manifest.md §4).
    pub fn invalid_image_data(errors: Vec<FieldError>) -> Self {
        DomainError::ValidationFailed {
            message: format!("invalid image data: {}", join_fields(&errors)),
            errors,
        }
    }

    pub fn invalid_parameter(message: impl Into<String>, errors: Vec<FieldError>) -> Self {
        DomainError::InvalidParameter {
            message: message.into(),
            errors,
        }
    }

    pub fn validation(message: impl Into<String>, errors: Vec<FieldError>) -> Self {
        DomainError::ValidationFailed {
            message: message.into(),
            errors,
        }
    }
}

/// The `field` of every error joined by `, ` (duplicates kept).
pub fn join_fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| e.field.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
