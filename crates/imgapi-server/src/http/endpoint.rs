//! The endpoint name of a request (api.md §2's "Name" column: `GetImage`,
//! `AddImageFile`, `ActivateImage`…), used as the `route` label of the
//! request metrics: a small, fixed set of values, never the raw path.

use std::borrow::Cow;

use http::Method;

use super::query::QueryParams;
use super::router::Route;

/// Unmatched paths.
pub const NOT_FOUND: &str = "NotFound";
/// A matched path with a method it does not have.
pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";

/// The endpoint `method` + `route` (+ the query's `action`, `source`)
/// names. Routes this function does not know yet are named after their
/// `Route` variant.
pub fn endpoint_name(
    route: Option<&Route>,
    method: &Method,
    query: Option<&str>,
) -> Cow<'static, str> {
    let Some(route) = route else {
        return Cow::Borrowed(NOT_FOUND);
    };
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    if !route.methods().contains(method) {
        return Cow::Borrowed(METHOD_NOT_ALLOWED);
    }
    let query = QueryParams::parse(query);
    let action = query.get("action").unwrap_or_default();
    let name = match (route, method.as_str()) {
        (Route::Ping, _) => "Ping",
        (Route::Channels, _) => "ListChannels",
        (Route::Images, "GET") => "ListImages",
        (Route::Images, _) => match action {
            "create-from-vm" => "CreateImageFromVm",
            "import-docker-image" => "AdminImportDockerImage",
            "import-lxd-image" => "AdminImportLxdImage",
            _ => "CreateImage",
        },
        (Route::Image(_), "GET") => "GetImage",
        (Route::Image(_), "DELETE") => "DeleteImage",
        (Route::Image(_), _) => image_action(action, query.contains("source")),
        (Route::ImageFile(_), "GET") => "GetImageFile",
        (Route::ImageFile(_), _) if query.contains("source") => "AddImageFileFromSource",
        (Route::ImageFile(_), _) => "AddImageFile",
        (Route::ImageFileFromUrl(_), _) => "AddImageFileFromUrl",
        (Route::ImageIcon(_), "GET") => "GetImageIcon",
        (Route::ImageIcon(_), "PUT") => "AddImageIcon",
        (Route::ImageIcon(_), _) => "DeleteImageIcon",
        (Route::ImageAcl(_), _) if action == "remove" => "RemoveImageAcl",
        (Route::ImageAcl(_), _) => "AddImageAcl",
        (Route::ImageClone(_), _) => "CloneImage",
        (Route::ImageJobs(_), _) => "ListImageJobs",
        (Route::Job(_), _) => "GetJob",
        (Route::State, "GET") => "AdminGetState",
        (Route::State, _) => "AdminUpdateState",
        (Route::AuthKeysReload, _) => "AdminReloadAuthKeys",
        (Route::Usage, _) => "AdminGetUsage",
        (Route::Metrics, _) => "GetMetrics",
        (Route::Datasets, _) => "ListDatasets",
        (Route::Dataset(_), _) => "GetDataset",
        (Route::DatasetFile(..), _) => "GetDatasetFile",
        (Route::Catalog, _) => "GetCatalog",
        (Route::CatalogImage(_), _) => "GetCatalogImage",
        (Route::OpenApi, _) => "GetOpenApi",
        #[allow(unreachable_patterns)] // routes added after this table
        (other, _) => return Cow::Owned(variant_name(other)),
    };
    Cow::Borrowed(name)
}

/// `POST /images/:uuid?action=…` (api.md §2.1).
fn image_action(action: &str, source: bool) -> &'static str {
    match action {
        "activate" => "ActivateImage",
        "disable" => "DisableImage",
        "enable" => "EnableImage",
        "update" => "UpdateImage",
        "channel-add" => "ChannelAddImage",
        "import" if source => "AdminImportImageFromSource",
        "import" => "AdminImportImage",
        "import-remote" => "AdminImportRemoteImage",
        "import-from-datacenter" => "ImportFromDatacenter",
        "change-stor" => "AdminChangeImageStor",
        "export" => "ExportImage",
        "push" => "AdminPushDockerImage",
        _ => "ImageAction",
    }
}

/// `Route::Foo(..)` → `Foo`.
fn variant_name(route: &Route) -> String {
    let debug = format!("{route:?}");
    debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("Unknown")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(route: Option<Route>, method: Method, query: Option<&str>) -> String {
        endpoint_name(route.as_ref(), &method, query).into_owned()
    }

    #[test]
    fn names_follow_the_spec() {
        let id = || "x".to_string();
        assert_eq!(name(None, Method::GET, None), "NotFound");
        assert_eq!(
            name(Some(Route::Ping), Method::DELETE, None),
            "MethodNotAllowed"
        );
        assert_eq!(name(Some(Route::Ping), Method::HEAD, None), "Ping");
        assert_eq!(
            name(Some(Route::Images), Method::GET, Some("owner=x")),
            "ListImages"
        );
        assert_eq!(name(Some(Route::Images), Method::POST, None), "CreateImage");
        assert_eq!(
            name(
                Some(Route::Image(id())),
                Method::POST,
                Some("action=activate")
            ),
            "ActivateImage"
        );
        assert_eq!(
            name(
                Some(Route::Image(id())),
                Method::POST,
                Some("action=import&source=u")
            ),
            "AdminImportImageFromSource"
        );
        assert_eq!(
            name(Some(Route::Image(id())), Method::POST, Some("action=bogus")),
            "ImageAction"
        );
        assert_eq!(
            name(
                Some(Route::ImageFile(id())),
                Method::PUT,
                Some("compression=gzip")
            ),
            "AddImageFile"
        );
        assert_eq!(
            name(Some(Route::ImageFile(id())), Method::GET, None),
            "GetImageFile"
        );
        assert_eq!(
            name(
                Some(Route::ImageAcl(id())),
                Method::POST,
                Some("action=remove")
            ),
            "RemoveImageAcl"
        );
        assert_eq!(name(Some(Route::Usage), Method::GET, None), "AdminGetUsage");
        assert_eq!(variant_name(&Route::ImageFile(id())), "ImageFile");
        assert_eq!(variant_name(&Route::State), "State");
    }
}
