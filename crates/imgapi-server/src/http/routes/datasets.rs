//! Legacy DSAPI `/datasets` (api.md §6): 301 redirects to `/images` (the
//! default, `dsapi = "redirect"`), or v1 dataset manifests and files
//! (`dsapi = "serve"`, docs/dsapi.md).

use axum::response::Response;
use http::StatusCode;
use imgapi_domain::dsapi::{downgrade, file_index};
use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::files::serve_image_file;
use crate::app::AppState;
use crate::config::DsapiMode;
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::response::{self, redirect};
use crate::service::dsapi as svc;

fn serving(app: &AppState) -> bool {
    app.config.dsapi == DsapiMode::Serve
}

/// `GET /datasets`: → `/images` (the query string is dropped), or the
/// visible datasets.
pub async fn list(app: &AppState, req: Req) -> Result<Response, ApiError> {
    if !serving(app) {
        return Ok(redirect("/images"));
    }
    let base = req
        .external_base_url(app.config.tls_cert.is_some())
        .unwrap_or_default();
    let images = svc::list(app, &req.query.filters(), req.query.get("channel")).await?;
    let body: Vec<Value> = images
        .iter()
        .map(|img| Value::Object(downgrade(img, &base)))
        .collect();
    Ok(response::json(StatusCode::OK, &body))
}

/// `GET /datasets/:arg` → the matching image or name/version search.
/// The decoded segment is inserted without re-encoding (original quirk).
/// Serve mode: that dataset's v1 manifest.
pub async fn get(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let raw = &req.arg(0);
    if !serving(app) {
        return Ok(redirect(&location_for(raw)));
    }
    let arg = percent_decode_str(raw).decode_utf8_lossy().into_owned();
    let img = svc::find(app, &arg, req.query.get("channel")).await?;
    Ok(response::json(
        StatusCode::OK,
        &downgrade(
            &img,
            &req.external_base_url(app.config.tls_cert.is_some())
                .unwrap_or_default(),
        ),
    ))
}

/// `GET /datasets/:uuid/:file` (serve mode only): the file a v1 manifest's
/// `files[].url` names, with GetImageFile's headers, ranges and redirects.
pub async fn get_file(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let raw_uuid = &req.arg(0);
    let raw_file = &req.arg(1);
    let arg = percent_decode_str(raw_uuid)
        .decode_utf8_lossy()
        .into_owned();
    let name = percent_decode_str(raw_file)
        .decode_utf8_lossy()
        .into_owned();
    if !imgapi_domain::validate::is_lower_uuid(&arg) {
        return Err(ApiError::not_found(format!("dataset {arg} not found")));
    }
    let img = svc::find(app, &arg, req.query.get("channel")).await?;
    let Some(file) = file_index(&img, &name).and_then(|i| img.files.get(i)) else {
        return Err(ApiError::not_found(format!(
            "dataset {arg} has no file {name}"
        )));
    };
    serve_image_file(app, &req, &img, file).await
}

/// Bytes of a `host[:port]` (names, IPv4, bracketed IPv6): anything else
/// in `Host` is not put into URLs.
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
