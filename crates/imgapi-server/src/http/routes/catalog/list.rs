//! `GET /catalog`: the filter form, the image list and its pages.

use std::fmt::Write as _;

use axum::response::Response;
use http::StatusCode;
use imgapi_domain::validate::{VALID_OSES, VALID_TYPES};
use imgapi_domain::ImageRecord;

use super::format::{date_html, description_preview_html, size_html};
use super::html::{error_page, esc, page, with_query};
use super::{carried, icon_html};
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::service::listing::list_images;
use crate::service::listing::{Filters, ListQuery};
use crate::service::{resolve_channel, ChannelRule};

/// Rows per page unless `limit` says otherwise.
const PER_PAGE: usize = 50;
/// The largest `limit` a catalog page accepts.
const PER_PAGE_MAX: usize = 500;
/// Side of an icon in the list, in CSS pixels.
const LIST_ICON_PX: u32 = 48;

/// What the person asked for: the form's fields, as received.
struct Search<'a> {
    name: &'a str,
    prefix: bool,
    os: &'a str,
    image_type: &'a str,
    owner: &'a str,
    limit: &'a str,
}

impl<'a> Search<'a> {
    fn from_req(req: &'a Req) -> Self {
        let get = |key| req.query.get_nonempty(key).unwrap_or_default();
        Search {
            name: get("name"),
            prefix: req.query.get("match") == Some("prefix"),
            os: get("os"),
            image_type: get("type"),
            owner: get("owner"),
            limit: get("limit"),
        }
    }

    fn per_page(&self) -> usize {
        self.limit
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&l| l > 0)
            .unwrap_or(PER_PAGE)
            .min(PER_PAGE_MAX)
    }

    /// The query pairs that repeat this search (page links).
    fn pairs(&self) -> Vec<(&'static str, &'a str)> {
        let mut out = Vec::new();
        if !self.name.is_empty() {
            out.push(("name", self.name));
            if self.prefix {
                out.push(("match", "prefix"));
            }
        }
        for (key, value) in [
            ("os", self.os),
            ("type", self.image_type),
            ("owner", self.owner),
            ("limit", self.limit),
        ] {
            if !value.is_empty() {
                out.push((key, value));
            }
        }
        out
    }
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
    let search = Search::from_req(req);
    let marker = req.query.get_nonempty("marker").unwrap_or_default();
    let per_page = search.per_page();

    // The ListImages query of the same filters, for the same caller, so
    // the page lists exactly what ListImages would (owner narrows within
    // what `account` may see, as it does there). One row more than shown
    // tells whether there is a next page (and is its marker: ListImages'
    // marker is inclusive).
    let nonempty = |v: &str| (!v.is_empty()).then(|| v.to_string());
    let q = ListQuery {
        limit: Some((per_page + 1).to_string()),
        marker: nonempty(marker),
        owner: nonempty(search.owner),
        filters: Filters {
            name: nonempty(search.name).map(|n| format!("~{n}")),
            os: nonempty(search.os),
            image_type: nonempty(search.image_type),
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
    if search.prefix && !search.name.is_empty() {
        images.retain(|img| img.name.starts_with(search.name));
    }

    let carry = carried(req);
    let mut body = String::with_capacity(4096 + images.len() * 600);
    body.push_str("<h1>Images</h1>\n");
    filter_form(&mut body, app, req, &search, channel.as_deref());
    if images.is_empty() {
        body.push_str("<p class=\"empty\">No images.</p>\n");
    } else {
        image_table(&mut body, &images, &carry);
    }
    body.push_str("<nav class=\"pages\">");
    if !marker.is_empty() {
        let mut first = carry.clone();
        first.extend(search.pairs());
        let _ = write!(
            body,
            "<a href=\"{}\">First page</a>",
            esc(&with_query("/catalog", &first))
        );
    }
    if let Some(next) = &next {
        let mut pairs = carry.clone();
        pairs.extend(search.pairs());
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

/// The search form (GET, so results are linkable). `account` rides along
/// hidden; `channel` is a choice only on a server with channels.
fn filter_form(
    body: &mut String,
    app: &AppState,
    req: &Req,
    search: &Search<'_>,
    channel: Option<&str>,
) {
    body.push_str("<form class=\"filters\" method=\"get\" action=\"/catalog\">");
    if let Some(account) = req.query.get_nonempty("account") {
        let _ = write!(
            body,
            "<input type=\"hidden\" name=\"account\" value=\"{}\">",
            esc(account)
        );
    }
    let _ = write!(
        body,
        "<label>Name <input type=\"search\" name=\"name\" value=\"{}\"></label>\
<label>Match <select name=\"match\"><option value=\"substring\"{}>contains</option>\
<option value=\"prefix\"{}>starts with</option></select></label>",
        esc(search.name),
        selected(!search.prefix),
        selected(search.prefix),
    );
    choice(body, "OS", "os", search.os, &VALID_OSES, ("", "any"));
    choice(
        body,
        "Type",
        "type",
        search.image_type,
        &VALID_TYPES,
        ("", "any"),
    );
    let _ = write!(
        body,
        "<label>Owner <input class=\"owner\" type=\"text\" name=\"owner\" \
placeholder=\"owner UUID\" spellcheck=\"false\" value=\"{}\"></label>",
        esc(search.owner)
    );
    if app.channels_enabled() {
        // The channel shown is the one listed: the named one, the default
        // when none is named, or all (`*`).
        let names: Vec<&str> = app.channels().iter().map(|c| c.name.as_str()).collect();
        choice(
            body,
            "Channel",
            "channel",
            channel.unwrap_or("*"),
            &names,
            ("*", "all channels"),
        );
    }
    if !search.limit.is_empty() {
        let _ = write!(
            body,
            "<input type=\"hidden\" name=\"limit\" value=\"{}\">",
            esc(search.limit)
        );
    }
    body.push_str("<button type=\"submit\">Search</button></form>\n");
}

fn selected(yes: bool) -> &'static str {
    if yes {
        " selected"
    } else {
        ""
    }
}

/// A `<select>` of `options` after the `all` choice (its value and its
/// text). A current value outside `options` stays selectable, so the
/// form shows what the list was filtered by.
fn choice(
    body: &mut String,
    label: &str,
    name: &str,
    current: &str,
    options: &[&str],
    (all_value, all_text): (&str, &str),
) {
    let all_selected = current.is_empty() || current == all_value;
    let _ = write!(
        body,
        "<label>{label} <select name=\"{name}\"><option value=\"{}\"{}>{}</option>",
        esc(all_value),
        selected(all_selected),
        esc(all_text)
    );
    for option in options {
        let _ = write!(
            body,
            "<option{}>{}</option>",
            selected(*option == current),
            esc(option)
        );
    }
    if !all_selected && !options.contains(&current) {
        let _ = write!(body, "<option selected>{}</option>", esc(current));
    }
    body.push_str("</select></label>");
}

fn image_table(body: &mut String, images: &[ImageRecord], carry: &[(&'static str, &str)]) {
    body.push_str(
        "<table class=\"images\"><thead><tr><th aria-label=\"Icon\"></th><th>Image</th>\
<th>Version</th><th>OS</th><th>Type</th><th>Size</th><th>Published</th></tr></thead><tbody>\n",
    );
    for img in images {
        let href = with_query(&format!("/catalog/{}", img.uuid), carry);
        let icon = icon_html(img, carry, LIST_ICON_PX);
        let description = img
            .description
            .as_deref()
            .map(description_preview_html)
            .unwrap_or_default();
        let size = img
            .files
            .first()
            .map_or_else(|| "-".to_string(), |f| size_html(f.size));
        let published = img
            .published_at
            .as_deref()
            .map_or_else(|| "-".into(), date_html);
        let _ = writeln!(
            body,
            "<tr><td class=\"icon\">{icon}</td>\
<td class=\"main\"><a class=\"name\" href=\"{}\">{}</a>{description}</td>\
<td class=\"nw\" data-label=\"Version\">{}</td><td class=\"nw\" data-label=\"OS\">{}</td>\
<td class=\"nw\" data-label=\"Type\">{}</td><td class=\"n\" data-label=\"Size\">{size}</td>\
<td class=\"nw date\" data-label=\"Published\">{published}</td></tr>",
            esc(&href),
            esc(&img.name),
            esc(&img.version),
            esc(&img.os),
            esc(&img.image_type),
        );
    }
    body.push_str("</tbody></table>\n");
}
