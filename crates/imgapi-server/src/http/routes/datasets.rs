//! Legacy DSAPI `/datasets` redirects (api.md §6).

use axum::response::Response;
use percent_encoding::percent_decode_str;

use crate::http::response::redirect;

/// `GET /datasets` → `/images` (the query string is dropped).
pub fn list() -> Response {
    redirect("/images")
}

/// `GET /datasets/:arg` → the matching image or name/version search.
/// The decoded segment is inserted without re-encoding (original quirk).
pub fn get(raw: &str) -> Response {
    redirect(&location_for(raw))
}

fn location_for(raw: &str) -> String {
    let arg = percent_decode_str(raw).decode_utf8_lossy().into_owned();
    if imgapi_domain::validate::is_lower_uuid(&arg) {
        return format!("/images/{arg}");
    }
    let parts: Vec<&str> = arg.split(':').collect();
    match parts.as_slice() {
        [name, version] => format!("/images/?name={name}&version={version}"),
        [_, _, name] => format!("/images/?name={name}"),
        [_, _, name, version] => format!("/images/?name={name}&version={version}"),
        _ => format!("/images/?name={arg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::location_for;

    #[test]
    fn redirect_table() {
        assert_eq!(
            location_for("01b2c898-945f-11e1-a523-af1afbe22822"),
            "/images/01b2c898-945f-11e1-a523-af1afbe22822"
        );
        assert_eq!(
            location_for("base:1.8.1"),
            "/images/?name=base&version=1.8.1"
        );
        assert_eq!(location_for("sdc:sdc:base"), "/images/?name=base");
        assert_eq!(
            location_for("sdc:sdc:base:1.8.1"),
            "/images/?name=base&version=1.8.1"
        );
        assert_eq!(location_for("with%20space"), "/images/?name=with space");
        assert_eq!(
            location_for("01B2C898-945F-11E1-A523-AF1AFBE22822"),
            "/images/?name=01B2C898-945F-11E1-A523-AF1AFBE22822"
        );
    }
}
