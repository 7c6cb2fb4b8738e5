//! `GET /catalog/:uuid`: one image, readable: its facts, its file, its
//! tags, requirements and traits as tables, and the whole manifest.

use std::fmt::Write as _;

use axum::response::Response;
use http::StatusCode;
use imgapi_domain::serialize::api_object;
use imgapi_domain::ImageRecord;
use serde_json::{Map, Value};

use super::format::{date_html, external_link_html, size_html, value_text};
use super::html::{error_page, esc, page, with_query};
use super::{carried, icon_html};
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::service::{load_image, resolve_channel, ChannelRule};

/// Side of the icon on an image's page, in CSS pixels.
const PAGE_ICON_PX: u32 = 96;

/// Manifest keys shown elsewhere on the page than the facts list.
const OWN_SECTION: [&str; 8] = [
    "name",
    "description",
    "files",
    "icon",
    "tags",
    "requirements",
    "traits",
    "v",
];

/// Object-valued manifest keys shown as key/value tables, with their
/// headings.
const TABLES: [(&str, &str); 3] = [
    ("tags", "Tags"),
    ("requirements", "Requirements"),
    ("traits", "Traits"),
];

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
    // What GetImage shows this caller (no admin fields): the facts and
    // tables come from it, so the page reveals nothing more.
    let manifest = api_object(img, req.serialize_options(app, false));
    let title = format!("{} {}", img.name, img.version);

    let mut body = String::with_capacity(8192);
    let _ = writeln!(
        body,
        "<nav class=\"back\"><a href=\"{}\">&larr; All images</a></nav>\n<div class=\"head\">{}<h1>{}</h1></div>",
        esc(&with_query("/catalog", &carry)),
        icon_html(img, &carry, PAGE_ICON_PX),
        esc(&title)
    );
    if let Some(desc) = &img.description {
        let _ = writeln!(body, "<p class=\"lead description\">{}</p>", esc(desc));
    }
    facts(&mut body, &manifest, &carry);
    files_section(&mut body, img, &carry);
    let signatures = crate::service::signatures::of_image(app, img).await?;
    signatures_section(&mut body, &signatures, &carry);
    for (key, heading) in TABLES {
        if let Some(Value::Object(map)) = manifest.get(key) {
            key_value_table(&mut body, key, heading, map);
        }
    }
    let json = serde_json::to_string_pretty(&Value::Object(manifest)).unwrap_or_default();
    let _ = writeln!(
        body,
        "<details><summary>Manifest (JSON)</summary><pre><code>{}</code></pre></details>",
        esc(&json)
    );
    Ok(page(StatusCode::OK, &title, &body))
}

/// The manifest's other fields as a definition list, each as a person
/// reads it: dates to the minute, http(s) URLs as links, the origin as
/// its catalog page.
fn facts(body: &mut String, manifest: &Map<String, Value>, carry: &[(&'static str, &str)]) {
    body.push_str("<h2>Details</h2>\n<dl class=\"facts\">");
    for (key, value) in manifest {
        if OWN_SECTION.contains(&key.as_str()) {
            continue;
        }
        let shown = match (key.as_str(), value) {
            ("published_at" | "expires_at", Value::String(at)) => date_html(at),
            ("homepage" | "eula", Value::String(url)) => external_link_html(url),
            ("origin", Value::String(origin)) if imgapi_domain::validate::is_lower_uuid(origin) => {
                format!(
                    "<a href=\"{}\"><code>{}</code></a>",
                    esc(&with_query(&format!("/catalog/{origin}"), carry)),
                    esc(origin)
                )
            }
            ("uuid" | "owner", _) => format!("<code>{}</code>", esc(&value_text(value))),
            _ => esc(&value_text(value)),
        };
        let _ = write!(body, "<dt>{}</dt><dd>{shown}</dd>", esc(&label(key)));
    }
    body.push_str("</dl>\n");
}

/// A manifest key as a heading: the well-known ones in words, others as
/// they are spelled.
fn label(key: &str) -> String {
    let known = match key {
        "uuid" => "UUID",
        "owner" => "Owner",
        "version" => "Version",
        "homepage" => "Homepage",
        "eula" => "EULA",
        "state" => "State",
        "disabled" => "Disabled",
        "public" => "Public",
        "published_at" => "Published",
        "expires_at" => "Expires",
        "type" => "Type",
        "os" => "OS",
        "origin" => "Origin",
        "urn" => "URN",
        "acl" => "ACL",
        "users" => "Users",
        "billing_tags" => "Billing tags",
        "channels" => "Channels",
        "image_size" => "Image size (MiB)",
        _ => return key.to_string(),
    };
    known.to_string()
}

/// The image's file: digests, size (rounded and exact), compression, and
/// the download link. SHA-256 is shown though GetImage keeps it for
/// operators: it is a digest of public bytes, useful to verify them.
fn files_section(body: &mut String, img: &ImageRecord, carry: &[(&'static str, &str)]) {
    body.push_str("<h2>Files</h2>\n");
    if img.files.is_empty() {
        body.push_str("<p>No file uploaded.</p>\n");
        return;
    }
    body.push_str(
        "<table class=\"files stack\"><thead><tr><th>SHA-1</th><th>SHA-256</th><th>Size</th>\
<th>Compression</th></tr></thead><tbody>",
    );
    for file in &img.files {
        let sha256 = file
            .sha256
            .as_deref()
            .map_or_else(|| "-".to_string(), |s| format!("<code>{}</code>", esc(s)));
        let _ = write!(
            body,
            "<tr><td data-label=\"SHA-1\"><code>{}</code></td><td data-label=\"SHA-256\">{sha256}</td>\
<td class=\"nw\" data-label=\"Size\">{}<div class=\"exact\">{} bytes</div></td>\
<td data-label=\"Compression\">{}</td></tr>",
            esc(&file.sha1),
            size_html(file.size),
            file.size,
            esc(&file.compression),
        );
    }
    body.push_str("</tbody></table>\n");
    let href = with_query(&format!("/images/{}/file", img.uuid), carry);
    let _ = writeln!(
        body,
        "<p><a class=\"download\" href=\"{}\" download>Download</a></p>",
        esc(&href)
    );
}

/// The image's signatures (docs/signing.md), when it has any: whose key,
/// whether it verifies now, and the link to the JSON a consumer checks.
fn signatures_section(
    body: &mut String,
    signed: &imgapi_types::ImageSignatures,
    carry: &[(&'static str, &str)],
) {
    if signed.signatures.is_empty() {
        return;
    }
    body.push_str(
        "<h2>Signatures</h2>\n<table class=\"signatures stack\"><thead><tr><th>Key</th>\
<th>Algorithm</th><th>Known as</th><th>Verifies</th><th>Added</th></tr></thead><tbody>",
    );
    for sig in &signed.signatures {
        let _ = write!(
            body,
            "<tr><td data-label=\"Key\"><code>{}</code></td><td data-label=\"Algorithm\">{}</td>\
<td data-label=\"Known as\">{}</td><td data-label=\"Verifies\">{}</td>\
<td class=\"nw\" data-label=\"Added\">{}</td></tr>",
            esc(&sig.fingerprint),
            esc(&sig.algorithm),
            esc(sig.role.as_deref().unwrap_or("-")),
            if sig.valid { "yes" } else { "no" },
            date_html(&sig.added_at),
        );
    }
    body.push_str("</tbody></table>\n");
    let href = with_query(&format!("/images/{}/signatures", signed.uuid), carry);
    let _ = writeln!(
        body,
        "<p><a href=\"{}\">Signatures and statement (JSON)</a>: check them with <code>ssh-keygen -Y verify -n imgapi</code>.</p>",
        esc(&href)
    );
}

/// An object field (tags, requirements, traits) as a two-column table
/// (two columns fit a phone too, so it never stacks).
fn key_value_table(body: &mut String, class: &str, heading: &str, map: &Map<String, Value>) {
    if map.is_empty() {
        return;
    }
    let _ = write!(
        body,
        "<h2>{}</h2>\n<table class=\"{} pairs\"><thead><tr><th>Key</th><th>Value</th></tr></thead><tbody>",
        esc(heading),
        esc(class)
    );
    for (key, value) in map {
        let _ = write!(
            body,
            "<tr><td><code>{}</code></td><td>{}</td></tr>",
            esc(key),
            esc(&value_text(value))
        );
    }
    body.push_str("</tbody></table>\n");
}
