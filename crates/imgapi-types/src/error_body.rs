//! The JSON error body (errors.md §1).

use serde::{Deserialize, Serialize};

use crate::RestCode;

/// Code of one `errors[]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldCode {
    MissingParameter,
    Invalid,
    NotAllowed,
    /// Original quirk: used for `compression`, `file_url` and Ping's `error`.
    Missing,
    /// Original quirk: LXD alias errors.
    InvalidParameter,
}

impl FieldCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldCode::MissingParameter => "MissingParameter",
            FieldCode::Invalid => "Invalid",
            FieldCode::NotAllowed => "NotAllowed",
            FieldCode::Missing => "Missing",
            FieldCode::InvalidParameter => "InvalidParameter",
        }
    }
}

/// One entry of the `errors` array of ValidationFailed / InvalidParameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub code: FieldCode,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: FieldCode) -> Self {
        FieldError {
            field: field.into(),
            code,
            message: None,
        }
    }

    pub fn with_message(
        field: impl Into<String>,
        code: FieldCode,
        message: impl Into<String>,
    ) -> Self {
        FieldError {
            field: field.into(),
            code,
            message: Some(message.into()),
        }
    }

    pub fn missing(field: impl Into<String>) -> Self {
        Self::new(field, FieldCode::MissingParameter)
    }

    pub fn invalid(field: impl Into<String>) -> Self {
        Self::new(field, FieldCode::Invalid)
    }

    pub fn invalid_msg(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::with_message(field, FieldCode::Invalid, message)
    }
}

/// The error body: `{code, message[, errors]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub errors: Option<Vec<FieldError>>,
}

impl ErrorBody {
    /// Build a body for `code`; `errors` is forced present (maybe empty) for
    /// the two codes that always carry it and absent for all others.
    pub fn new(code: RestCode, message: impl Into<String>, errors: Vec<FieldError>) -> Self {
        ErrorBody {
            code: code.as_str().to_string(),
            message: message.into(),
            errors: code.has_errors_array().then_some(errors),
        }
    }
}
