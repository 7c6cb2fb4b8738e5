//! The read-only HTML catalog: `GET /catalog` and
//! `GET /catalog/:uuid`.
//!
//! Server-rendered with `format!` and one escape function rather than a
//! template engine: two small pages do not pay for a dependency, and a
//! single [`esc`] on every interpolated value is easy to audit. No
//! JavaScript, no external assets. Visibility is exactly ListImages' and
//! GetImage's for the same caller: the pages call the same services
//! (`list_images`, `load_image`) with the same account and channel.

use std::fmt::Write as _;

use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};
use imgapi_domain::serialize::api_object;
use imgapi_domain::ImageRecord;
use serde_json::Value;

use crate::app::AppState;
use crate::http::error::{ApiError, ErrorCause};
use crate::http::request::Req;
use crate::service::listing::list_images;
use crate::service::listing::{Filters, ListQuery};
use crate::service::{load_image, resolve_channel, ChannelRule};

/// Rows per page unless `limit` says otherwise.
const PER_PAGE: usize = 50;
/// The largest `limit` a catalog page accepts.
const PER_PAGE_MAX: usize = 500;

const CSS: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;width:100%}\
th,td{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.n{text-align:right}\
form{margin:1em 0}input,select{margin-right:.6em}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}\
dd{margin:0;word-break:break-all}code{font-size:.9em}img.icon{max-width:128px;max-height:128px}\
nav a{margin-right:1em}";

/// HTML-escape `s` for text and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a query string from pairs (values may hold anything).
fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish()
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n",
        esc(title)
    );
    let mut resp = Response::new(Body::from(html));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// An error as an HTML page with the status the JSON API would answer.
fn error_page(err: ApiError) -> Response {
    let status =
        StatusCode::from_u16(err.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = if status == StatusCode::NOT_FOUND {
        "Not found".to_string()
    } else {
        format!("Error: {}", err.code.as_str())
    };
    let body = format!(
        "<h1>{}</h1>\n<p>{}</p>\n<p><a href=\"/catalog\">Back to the catalog</a></p>",
        esc(&title),
        esc(&err.message)
    );
    let mut resp = page(status, &title, &body);
    if let Some(cause) = err.cause {
        resp.extensions_mut().insert(ErrorCause(cause));
    }
    resp
}

/// The query parameters a catalog link keeps (`account`, `channel`).
fn carried(req: &Req) -> Vec<(&'static str, &str)> {
    let mut out = Vec::new();
    for key in ["account", "channel"] {
        if let Some(v) = req.query.get_nonempty(key) {
            out.push((key, v));
        }
    }
    out
}

fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query_string(pairs.iter().copied()))
    }
}

fn file_size(img: &ImageRecord) -> Option<u64> {
    img.files.first().map(|f| f.size)
}

/// `GET /catalog`: search form, table, pagination.
pub async fn index(app: &AppState, req: Req) -> Result<Response, ApiError> {
    Ok(match render_index(app, &req).await {
        Ok(resp) => resp,
        Err(e) => error_page(e),
    })
}

async fn render_index(app: &AppState, req: &Req) -> Result<Response, ApiError> {
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::ChannelOrStar)?;
    let name = req.query.get_nonempty("name").unwrap_or_default();
    let prefix = req.query.get("match") == Some("prefix");
    let os = req.query.get_nonempty("os").unwrap_or_default();
    let ty = req.query.get_nonempty("type").unwrap_or_default();
    let marker = req.query.get_nonempty("marker").unwrap_or_default();
    let per_page = req
        .query
        .get("limit")
        .and_then(|l| l.trim().parse::<usize>().ok())
        .filter(|&l| l > 0)
        .unwrap_or(PER_PAGE)
        .min(PER_PAGE_MAX);

    // The ListImages query for the same filters; one row more than shown
    // tells whether there is a next page (and is its marker: ListImages'
    // marker is inclusive).
    let nonempty = |v: &str| (!v.is_empty()).then(|| v.to_string());
    let q = ListQuery {
        limit: Some((per_page + 1).to_string()),
        marker: nonempty(marker),
        filters: Filters {
            name: nonempty(name).map(|n| format!("~{n}")),
            os: nonempty(os),
            image_type: nonempty(ty),
            ..Filters::default()
        },
        ..ListQuery::default()
    };
    let (mut images, _) = list_images(
        app,
        &q,
        req.account(),
        channel.as_deref(),
        req.caller.is_authenticated(),
    )
    .await?;
    let next = if images.len() > per_page {
        images.truncate(per_page + 1);
        images
            .pop()
            .filter(|img| img.published_at.is_some())
            .map(|img| img.uuid.to_string())
    } else {
        None
    };
    // A prefix is a substring that starts the name: narrowed here, after
    // paging (so a page may show fewer rows than `limit`).
    if prefix && !name.is_empty() {
        images.retain(|img| img.name.starts_with(name));
    }

    let carry = carried(req);
    let mut body = String::with_capacity(4096 + images.len() * 400);
    body.push_str("<h1>Image catalog</h1>\n");
    // The search form (GET, so results are linkable).
    body.push_str("<form method=\"get\" action=\"/catalog\">");
    for (k, v) in &carry {
        let _ = write!(
            body,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        );
    }
    let _ = writeln!(
        body,
        "<label>Name <input type=\"search\" name=\"name\" value=\"{}\"></label>\
<select name=\"match\"><option value=\"substring\"{}>contains</option>\
<option value=\"prefix\"{}>starts with</option></select>\
<label>OS <input type=\"text\" name=\"os\" size=\"8\" value=\"{}\"></label>\
<label>Type <input type=\"text\" name=\"type\" size=\"10\" value=\"{}\"></label>\
<button type=\"submit\">Search</button></form>",
        esc(name),
        if prefix { "" } else { " selected" },
        if prefix { " selected" } else { "" },
        esc(os),
        esc(ty),
    );
    if images.is_empty() {
        body.push_str("<p class=\"empty\">No images.</p>\n");
    } else {
        body.push_str(
            "<table><thead><tr><th>Name</th><th>Version</th><th>OS</th><th>Type</th>\
<th>Published</th><th>Size (bytes)</th></tr></thead><tbody>\n",
        );
        for img in &images {
            let href = with_query(&format!("/catalog/{}", img.uuid), &carry);
            let _ = writeln!(
                body,
                "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td>\
<td>{}</td><td class=\"n\">{}</td></tr>",
                esc(&href),
                esc(&img.name),
                esc(&img.version),
                esc(&img.os),
                esc(&img.image_type),
                esc(img.published_at.as_deref().unwrap_or("-")),
                file_size(img).map_or_else(|| "-".to_string(), |s| s.to_string()),
            );
        }
        body.push_str("</tbody></table>\n");
    }
    body.push_str("<nav>");
    if !marker.is_empty() {
        let mut first = carry.clone();
        first.extend(search_pairs(name, prefix, os, ty, limit_param(req)));
        let _ = write!(
            body,
            "<a href=\"{}\">First page</a>",
            esc(&with_query("/catalog", &first))
        );
    }
    if let Some(next) = &next {
        let mut pairs = carry.clone();
        pairs.extend(search_pairs(name, prefix, os, ty, limit_param(req)));
        pairs.push(("marker", next));
        let _ = write!(
            body,
            "<a rel=\"next\" href=\"{}\">Next page</a>",
            esc(&with_query("/catalog", &pairs))
        );
    }
    body.push_str("</nav>\n");
    Ok(page(StatusCode::OK, "Image catalog", &body))
}

fn limit_param(req: &Req) -> &str {
    req.query.get_nonempty("limit").unwrap_or_default()
}

fn search_pairs<'a>(
    name: &'a str,
    prefix: bool,
    os: &'a str,
    ty: &'a str,
    limit: &'a str,
) -> Vec<(&'static str, &'a str)> {
    let mut out = Vec::new();
    if !name.is_empty() {
        out.push(("name", name));
        if prefix {
            out.push(("match", "prefix"));
        }
    }
    if !os.is_empty() {
        out.push(("os", os));
    }
    if !ty.is_empty() {
        out.push(("type", ty));
    }
    if !limit.is_empty() {
        out.push(("limit", limit));
    }
    out
}

/// `GET /catalog/:uuid`: one image.
pub async fn image(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    Ok(match render_image(app, &req, id).await {
        Ok(resp) => resp,
        Err(e) => error_page(e),
    })
}

async fn render_image(app: &AppState, req: &Req, id: &str) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("image {id} not found"));
    if !imgapi_domain::validate::is_lower_uuid(id) {
        return Err(not_found());
    }
    let uuid = uuid::Uuid::parse_str(id).map_err(|_| not_found())?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::ChannelOrStar)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    let img = &loaded.stored.image;
    let carry = carried(req);
    let title = format!("{} {}", img.name, img.version);

    let mut body = String::with_capacity(4096);
    let _ = writeln!(
        body,
        "<nav><a href=\"{}\">&larr; Catalog</a></nav>\n<h1>{}</h1>",
        esc(&with_query("/catalog", &carry)),
        esc(&title)
    );
    if img.icon.is_some() {
        let src = with_query(&format!("/images/{uuid}/icon"), &carry);
        let _ = writeln!(
            body,
            "<p><img class=\"icon\" alt=\"icon of {}\" src=\"{}\"></p>",
            esc(&img.name),
            esc(&src)
        );
    }
    if let Some(desc) = &img.description {
        let _ = writeln!(body, "<p class=\"description\">{}</p>", esc(desc));
    }
    body.push_str("<h2>File</h2>\n");
    match img.files.first() {
        Some(file) => {
            let href = with_query(&format!("/images/{uuid}/file"), &carry);
            let _ = write!(
                body,
                "<dl><dt>Size</dt><dd>{} bytes</dd><dt>Compression</dt><dd>{}</dd>\
<dt>SHA-1</dt><dd><code>{}</code></dd>",
                file.size,
                esc(&file.compression),
                esc(&file.sha1)
            );
            if let Some(sha256) = &file.sha256 {
                let _ = write!(
                    body,
                    "<dt>SHA-256</dt><dd><code>{}</code></dd>",
                    esc(sha256)
                );
            }
            let _ = writeln!(
                body,
                "</dl>\n<p><a class=\"download\" href=\"{}\" download>Download</a></p>",
                esc(&href)
            );
        }
        None => body.push_str("<p>No file uploaded.</p>\n"),
    }
    // The manifest as GetImage shows it to this caller (no admin fields).
    body.push_str("<h2>Manifest</h2>\n<dl>");
    for (key, value) in api_object(img, req.serialize_options(app, false)) {
        let shown = match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let _ = write!(body, "<dt>{}</dt><dd>{}</dd>", esc(&key), esc(&shown));
    }
    body.push_str("</dl>\n");
    Ok(page(StatusCode::OK, &title, &body))
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_everything_html_cares_about() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(esc("plain é"), "plain é");
    }
}
