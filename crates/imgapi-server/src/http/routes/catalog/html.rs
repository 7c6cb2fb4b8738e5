//! The catalog's HTML shell: escaping, links, the page frame with its one
//! stylesheet, and the security headers every catalog page carries.

use std::sync::LazyLock;

use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use http::{header, HeaderName, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use crate::http::error::{ApiError, ErrorCause};

/// The whole stylesheet, inline (no external assets). Narrow screens get
/// the image list as cards and the other tables as stacked label/value
/// rows, so nothing scrolls sideways at phone width.
pub const CSS: &str = "*{box-sizing:border-box}\
body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;background:#f6f8fa}\
header.top{background:#24292f;padding:.7em 1.2em}\
header.top a{color:#fff;text-decoration:none;font-weight:600}\
main{max-width:1200px;margin:0 auto;padding:.6em 1.2em 2em}\
h1{font-size:1.5em;margin:.5em 0 .3em;overflow-wrap:anywhere}\
h2{font-size:1.1em;margin:1.5em 0 .5em}\
a{color:#0969da}\
p.lead{color:#57606a;margin:.2em 0 1em;overflow-wrap:anywhere}\
form.filters{display:flex;flex-wrap:wrap;gap:.6em 1em;align-items:flex-end;background:#fff;\
border:1px solid #d0d7de;border-radius:6px;padding:.8em;margin:1em 0}\
form.filters label{display:flex;flex-direction:column;gap:.2em;font-size:.85em;color:#57606a}\
input,select,button{font:inherit;font-size:.95rem;padding:.35em .5em;border:1px solid #d0d7de;\
border-radius:6px;background:#fff;color:#1f2328;max-width:100%}\
input.owner{width:22em}\
button{background:#1f883d;border-color:#1a7f37;color:#fff;font-weight:600;cursor:pointer}\
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de}\
th,td{border-bottom:1px solid #d8dee4;padding:.5em .7em;text-align:left;vertical-align:top}\
th{background:#f6f8fa;font-size:.85em;color:#57606a;font-weight:600}\
td.n{text-align:right;white-space:nowrap}td.nw{white-space:nowrap}\
nav.back{margin:.8em 0 .4em}\
td.icon{width:64px}\
img.icon{display:block;object-fit:contain}\
a.name{font-weight:600}\
div.desc{color:#57606a;font-size:.9em;margin-top:.2em;overflow-wrap:anywhere}\
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85em;overflow-wrap:anywhere}\
td{overflow-wrap:anywhere}div.exact{color:#57606a;font-size:.8em}table.pairs td:first-child{width:30%}\
span[title],time[title]{text-decoration:underline dotted #8c959f}\
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.35em 1.2em;margin:0;\
background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.8em}\
dt{font-weight:600;color:#57606a}dd{margin:0;overflow-wrap:anywhere}\
div.head{display:flex;gap:1em;align-items:center}\
nav.pages{display:flex;gap:1.5em;margin:1em 0}\
p.empty{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:1em}\
a.download{display:inline-block;margin-top:.6em;padding:.4em .9em;border-radius:6px;background:#1f883d;\
color:#fff;text-decoration:none;font-weight:600}\
details{margin-top:1.5em}summary{cursor:pointer;font-weight:600}\
@media (max-width:700px){\
main{padding:.4em .7em 2em}\
table.images,table.images tbody,table.stack,table.stack tbody{display:block;border:0;background:none}\
table.images thead,table.stack thead{display:none}\
table.images tr{display:grid;grid-template-columns:56px 1fr 1fr;gap:.25em .7em;background:#fff;\
border:1px solid #d0d7de;border-radius:6px;margin-bottom:.6em;padding:.6em}\
table.images td{border:0;padding:0;text-align:left;width:auto}\
table.images td.icon{grid-row:1/span 4}\
table.images td.main,table.images td.date{grid-column:2/4}\
table.stack tr{display:block;background:#fff;border:1px solid #d0d7de;border-radius:6px;margin-bottom:.6em;padding:.4em .6em}\
table.stack td{display:block;border:0;padding:.15em 0;text-align:left}\
td[data-label]::before{content:attr(data-label) ': ';color:#57606a;font-size:.85em}\
dl.facts{grid-template-columns:1fr;gap:0}dd{margin-bottom:.4em}\
input.owner{width:100%}form.filters label{flex:1 1 9em}}";

/// `Content-Security-Policy` of every catalog page: nothing loads but
/// same-origin images (the icons) and the one inline stylesheet, named by
/// its hash; no scripts, frames, plugins or foreign form targets.
static CONTENT_SECURITY_POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()));
    let policy = format!(
        "default-src 'none'; img-src 'self'; style-src 'sha256-{hash}'; \
frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    );
    // Base64 and the fixed text are visible ASCII: always a valid value.
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
});

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

/// `path`, with `pairs` as its percent-encoded query (values may hold
/// anything).
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return path.to_string();
    }
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    format!("{path}?{}", ser.finish())
}

/// A complete catalog page: `body` goes inside `<main>` as is (already
/// escaped by the caller), `title` is escaped here.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\">\
<title>{}</title><style>{CSS}</style></head><body>\n\
<header class=\"top\"><a href=\"/catalog\">Image catalog</a></header>\n\
<main>\n{body}\n</main>\n</body></html>\n",
        esc(title)
    );
    let mut resp = Response::new(Body::from(html));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY.clone(),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// An error as an HTML page with the status the JSON API would answer.
pub fn error_page(err: ApiError) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_html_cares_about() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(esc("plain é"), "plain é");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(with_query("/catalog", &[]), "/catalog");
        assert_eq!(
            with_query("/catalog", &[("name", "a&b=\"c\""), ("os", "linux")]),
            "/catalog?name=a%26b%3D%22c%22&os=linux"
        );
    }

    #[test]
    fn css_holds_nothing_that_ends_the_style_element() {
        // The stylesheet is emitted raw; its hash in the CSP must cover
        // exactly the element's text.
        assert!(!CSS.contains('<'));
        let policy = CONTENT_SECURITY_POLICY.to_str().unwrap_or_default();
        assert!(policy.contains("style-src 'sha256-"), "{policy}");
    }
}
