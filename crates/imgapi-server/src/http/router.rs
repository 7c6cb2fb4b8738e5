//! The whole route table on one screen (api.md §2), grouped by client:
//! native IMGAPI, admin, legacy DSAPI `/datasets`.
//!
//! Routing is done by hand rather than with axum's router because the wire
//! contract fixes details a generic router decides differently: 404 bodies
//! naming the path, 405 with `Allow` for HEAD and OPTIONS too, `/images/`
//! matching ListImages, and the uuid check's place in the handler order.

use axum::response::{IntoResponse, Response};
use http::Method;
use imgapi_types::RestCode;

use super::auth::AuthPolicy;
use super::error::ApiError;
use super::request::Req;
use super::routes::{catalog, datasets, files, images, misc, uploads};
use crate::app::AppState;
use imgapi_domain::Mode;

/// A matched resource; `Uuid*` variants carry the raw `:uuid` segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    // native
    Ping,
    Channels,
    Images,
    Image(String),
    ImageFile(String),
    ImageFileFromUrl(String),
    /// `/images/:uuid/file/uploads`: start a resumable upload (extension).
    ImageFileUploads(String),
    /// `/images/:uuid/file/uploads/:id`: one upload session (extension).
    ImageFileUpload(String, String),
    ImageIcon(String),
    ImageAcl(String),
    ImageClone(String),
    ImageJobs(String),
    /// `GET /jobs/:uuid`: one job, as the workflow API shows it (the
    /// `workflow-api` header of import-remote points here).
    Job(String),
    // admin
    State,
    AuthKeysReload,
    /// `GET /usage`: storage per owner and billing tag (extension).
    Usage,
    /// `GET /metrics`, only with `metrics_on_main` (extension).
    Metrics,
    // legacy DSAPI
    Datasets,
    Dataset(String),
    /// `/datasets/:uuid/:file`, only with `dsapi = "serve"`.
    DatasetFile(String, String),
    // HTML
    /// `GET /catalog`: the HTML catalog (extension, `catalog = true`).
    Catalog,
    /// `GET /catalog/:uuid`: one image's catalog page.
    CatalogImage(String),
    /// `GET /openapi.json`: the OpenAPI document (extension).
    OpenApi,
}

impl Route {
    pub fn parse(app: &AppState, path: &str) -> Option<Route> {
        let trimmed = path.strip_prefix('/')?;
        let segs: Vec<&str> = trimmed.split('/').collect();
        let route = match segs.as_slice() {
            ["ping"] => Route::Ping,
            ["channels"] if app.channels_enabled() => Route::Channels,
            ["images"] | ["images", ""] => Route::Images,
            ["images", id] => Route::Image((*id).into()),
            ["images", id, "file"] => Route::ImageFile((*id).into()),
            ["images", id, "file", "from-url"] => Route::ImageFileFromUrl((*id).into()),
            ["images", id, "file", "uploads"] => Route::ImageFileUploads((*id).into()),
            ["images", id, "file", "uploads", upload] => {
                Route::ImageFileUpload((*id).into(), (*upload).into())
            }
            ["images", id, "icon"] => Route::ImageIcon((*id).into()),
            ["images", id, "acl"] => Route::ImageAcl((*id).into()),
            ["images", id, "clone"] if app.config.mode == Mode::Dc => {
                Route::ImageClone((*id).into())
            }
            ["images", id, "jobs"] => Route::ImageJobs((*id).into()),
            ["jobs", id] => Route::Job((*id).into()),
            ["state"] => Route::State,
            ["authkeys", "reload"] => Route::AuthKeysReload,
            ["usage"] => Route::Usage,
            ["metrics"] if app.config.metrics_on_main => Route::Metrics,
            ["datasets"] => Route::Datasets,
            ["datasets", arg] if !arg.is_empty() => Route::Dataset((*arg).into()),
            ["datasets", arg, file]
                if !arg.is_empty()
                    && !file.is_empty()
                    && app.config.dsapi == crate::config::DsapiMode::Serve =>
            {
                Route::DatasetFile((*arg).into(), (*file).into())
            }
            ["openapi.json"] => Route::OpenApi,
            ["catalog"] | ["catalog", ""] if app.config.catalog => Route::Catalog,
            ["catalog", id] if app.config.catalog => Route::CatalogImage((*id).into()),
            _ => return None,
        };
        Some(route)
    }

    /// Methods registered for the resource, as listed in `Allow`.
    pub fn methods(&self) -> &'static [Method] {
        match self {
            Route::Ping | Route::Channels | Route::ImageJobs(_) | Route::Job(_) => &[Method::GET],
            Route::Usage | Route::Metrics => &[Method::GET],
            Route::Catalog | Route::CatalogImage(_) | Route::OpenApi => &[Method::GET],
            Route::Datasets | Route::Dataset(_) | Route::DatasetFile(..) => &[Method::GET],
            Route::Images | Route::State => &[Method::GET, Method::POST],
            Route::Image(_) => &[Method::GET, Method::POST, Method::DELETE],
            Route::ImageFile(_) => &[Method::GET, Method::PUT],
            Route::ImageFileUpload(..) => &[
                Method::GET,
                Method::HEAD,
                Method::PUT,
                Method::POST,
                Method::DELETE,
            ],
            Route::ImageIcon(_) => &[Method::GET, Method::PUT, Method::DELETE],
            Route::ImageFileFromUrl(_)
            | Route::ImageFileUploads(_)
            | Route::ImageAcl(_)
            | Route::ImageClone(_)
            | Route::AuthKeysReload => &[Method::POST],
        }
    }

    /// The route's authentication policy for `method` (api.md §2 "Auth").
    pub fn auth_policy(&self, method: &Method) -> AuthPolicy {
        match self {
            Route::Ping | Route::Channels | Route::Images if method == Method::GET => {
                AuthPolicy::Passive
            }
            Route::Image(_) if method == Method::GET => AuthPolicy::Passive,
            // Same visibility as ListImages / GetImage for the same caller.
            Route::Catalog | Route::CatalogImage(_) => AuthPolicy::Passive,
            Route::ImageFile(_) | Route::ImageIcon(_) if method == Method::GET => AuthPolicy::None,
            Route::ImageJobs(_)
            | Route::Job(_)
            | Route::Datasets
            | Route::Dataset(_)
            | Route::DatasetFile(..)
            | Route::Metrics
            | Route::OpenApi => AuthPolicy::None,
            _ => AuthPolicy::Strict,
        }
    }
}

/// 405 with the `Allow` header (api.md §1.10).
pub fn method_not_allowed(route: &Route, method: &Method) -> ApiError {
    let allow = route
        .methods()
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    ApiError {
        allow: Some(allow),
        ..ApiError::new(
            RestCode::MethodNotAllowedError,
            format!("{method} is not allowed"),
        )
    }
}

/// Call the handler of `route` for the request's method.
pub async fn dispatch(app: &AppState, route: Route, req: Req) -> Result<Response, ApiError> {
    let m = req.method.clone();
    match (route, m) {
        (Route::Ping, Method::GET) => misc::ping(app, req).await,
        (Route::Channels, Method::GET) => misc::list_channels(app, req).await,
        (Route::State, Method::GET) => misc::get_state(app, req).await,
        (Route::State, Method::POST) => misc::update_state(app, req).await,
        (Route::AuthKeysReload, Method::POST) => misc::reload_auth_keys(app, req).await,
        (Route::Usage, Method::GET) => super::routes::usage::get_usage(app, req).await,
        (Route::Metrics, Method::GET) => {
            Ok(crate::telemetry::exporter::metrics_response(app).await)
        }
        (Route::Images, Method::GET) => images::list(app, req).await,
        (Route::Images, Method::POST) => images::create(app, req).await,
        (Route::Image(id), Method::GET) => images::get(app, req, &id).await,
        (Route::Image(id), Method::POST) => images::action(app, req, &id).await,
        (Route::Image(id), Method::DELETE) => images::delete(app, req, &id).await,
        (Route::ImageAcl(id), Method::POST) => images::acl(app, req, &id).await,
        (Route::ImageClone(id), Method::POST) => images::clone(app, req, &id).await,
        (Route::ImageJobs(id), Method::GET) => images::jobs(app, req, &id).await,
        (Route::Job(id), Method::GET) => images::job(app, req, &id).await,
        (Route::ImageFile(id), Method::GET) => files::get_file(app, req, &id).await,
        (Route::ImageFile(id), Method::PUT) => files::add_file(app, req, &id).await,
        (Route::ImageFileFromUrl(id), Method::POST) => {
            files::add_file_from_url(app, req, &id).await
        }
        (Route::ImageFileUploads(id), Method::POST) => uploads::create(app, req, &id).await,
        (Route::ImageFileUpload(id, up), Method::GET | Method::HEAD) => {
            uploads::get(app, req, &id, &up).await
        }
        (Route::ImageFileUpload(id, up), Method::PUT) => {
            uploads::put_chunk(app, req, &id, &up).await
        }
        (Route::ImageFileUpload(id, up), Method::POST) => uploads::action(app, req, &id, &up).await,
        (Route::ImageFileUpload(id, up), Method::DELETE) => {
            uploads::abort(app, req, &id, &up).await
        }
        (Route::ImageIcon(id), Method::GET) => files::get_icon(app, req, &id).await,
        (Route::ImageIcon(id), Method::PUT) => files::add_icon(app, req, &id).await,
        (Route::ImageIcon(id), Method::DELETE) => files::delete_icon(app, req, &id).await,
        (Route::Datasets, Method::GET) => datasets::list(app, req).await,
        (Route::Dataset(arg), Method::GET) => datasets::get(app, req, &arg).await,
        (Route::DatasetFile(arg, file), Method::GET) => {
            datasets::get_file(app, req, &arg, &file).await
        }
        (Route::OpenApi, Method::GET) => Ok(super::ok_json(&super::openapi::document())),
        (Route::Catalog, Method::GET) => catalog::index(app, req).await,
        (Route::CatalogImage(id), Method::GET) => catalog::image(app, req, &id).await,
        (route, method) => Err(method_not_allowed(&route, &method)),
    }
    .map(IntoResponse::into_response)
}
