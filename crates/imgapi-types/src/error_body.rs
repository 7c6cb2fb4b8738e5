//! The JSON error body (errors.md §1).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::RestCode;

/// Code of one `errors[]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FieldCode {
    /// A required field is absent.
    MissingParameter,
    /// The field's value is not accepted.
    Invalid,
    /// The field may not be given here.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldError {
    /// The field (or parameter, or header) at fault.
    pub field: String,
    /// What is wrong with it.
    pub code: FieldCode,
    /// Details, when there are any.
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

/// The error body: `{code, message[, errors][, offset]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// The restCode (docs/errors.md).
    #[schemars(extend("enum" = RestCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()))]
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The fields at fault: always present on ValidationFailed and
    /// InvalidParameter, absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub errors: Option<Vec<FieldError>>,
    /// RequestedRangeNotSatisfiable of an upload session: the byte the
    /// chunk should have started at (the session's offset).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub offset: Option<u64>,
}

impl ErrorBody {
    /// Build a body for `code`; `errors` is forced present (maybe empty) for
    /// the two codes that always carry it and absent for all others.
    pub fn new(code: RestCode, message: impl Into<String>, errors: Vec<FieldError>) -> Self {
        ErrorBody {
            code: code.as_str().to_string(),
            message: message.into(),
            errors: code.has_errors_array().then_some(errors),
            offset: None,
        }
    }
}
