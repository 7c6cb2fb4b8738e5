//! Reading one `IMGAPI_*` variable into the file form of its key.

use super::{invalid, ConfigError};

/// `var`, when set, parsed as JSON into `slot`; `what` describes the
/// expected value in the error.
pub(super) fn json<T: serde::de::DeserializeOwned>(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    key: &'static str,
    what: &str,
    slot: &mut Option<T>,
) -> Result<(), ConfigError> {
    if let Some(v) = get(var) {
        let parsed = serde_json::from_str(&v)
            .map_err(|e| invalid(key, format!("{var} is not {what}: {e}")))?;
        *slot = Some(parsed);
    }
    Ok(())
}

/// `var`, when set, trimmed and parsed into `slot`; `expected` describes
/// the accepted values in the error (`a number`, `true or false`).
pub(super) fn parsed<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    key: &'static str,
    expected: &str,
    slot: &mut Option<T>,
) -> Result<(), ConfigError> {
    if let Some(v) = get(var) {
        let value = v
            .trim()
            .parse()
            .map_err(|_| invalid(key, format!("{var}={v:?} is not {expected}")))?;
        *slot = Some(value);
    }
    Ok(())
}
