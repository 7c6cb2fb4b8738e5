//! Authentication: turns a request into a [`Caller`]. With `auth_type =
//! "none"` every caller is anonymous; the HTTP Signature scheme plugs in here
//! (strict / passive / none policy per route, api.md §1.5).

use std::time::SystemTime;

use http::HeaderMap;
use imgapi_types::RestCode;

use super::signature::verify_request;
use crate::config::AuthType;

use super::error::ApiError;
use crate::app::AppState;

/// Who is calling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The authenticated username; `None` for anonymous callers.
    pub username: Option<String>,
    /// The account a signed user is mapped to (`user_accounts`): such a
    /// user always acts for that account, never as an operator.
    pub account: Option<String>,
}

impl Caller {
    pub fn is_authenticated(&self) -> bool {
        self.username.is_some()
    }

    pub fn log_name(&self) -> &str {
        self.username.as_deref().unwrap_or("-")
    }
}

/// A route's authentication policy (api.md §2 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthPolicy {
    Strict,
    Passive,
    None,
}

/// Authenticate a request under `policy` (api.md §1.5): with `auth_type =
/// "none"` nothing is checked; with `signature`, strict routes need a valid
/// signature, passive routes accept anonymous callers but refuse a bad
/// signature, and `none` routes ignore the header.
pub fn authenticate(
    app: &AppState,
    method: &http::Method,
    path_and_query: &str,
    headers: &HeaderMap,
    policy: AuthPolicy,
) -> Result<Caller, ApiError> {
    match app.config.auth_type {
        AuthType::None => Ok(Caller::default()),
        AuthType::Signature => {
            if policy == AuthPolicy::None {
                return Ok(Caller::default());
            }
            if !headers.contains_key(http::header::AUTHORIZATION) {
                return match policy {
                    AuthPolicy::Passive => Ok(Caller::default()),
                    _ => Err(ApiError::new(RestCode::UnauthorizedError, "Unauthorized")),
                };
            }
            let user = verify_request(
                headers,
                method,
                path_and_query,
                &app.auth_keys,
                SystemTime::now(),
            )
            .map_err(|e| ApiError::new(RestCode::UnauthorizedError, e.to_string()))?;
            let account = app.config.user_accounts.get(&user).map(|a| a.to_string());
            if let (Some(own), Some(asked)) = (&account, query_account(path_and_query)) {
                if *own != asked {
                    // Acting for another account is what operators do.
                    return Err(ApiError::new(
                        RestCode::OperatorOnly,
                        "this endpoint may only be called by an operator",
                    ));
                }
            }
            Ok(Caller {
                username: Some(user),
                account,
            })
        }
    }
}

/// The `account` query parameter of a request target.
fn query_account(path_and_query: &str) -> Option<String> {
    let query = path_and_query.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "account")
        .map(|(_, v)| v.into_owned())
}

impl Caller {
    /// Operators: everyone under `auth_type = "none"`, and signed users not
    /// mapped to an account.
    pub fn is_operator(&self) -> bool {
        self.account.is_none()
    }
}
