//! The read-only HTML catalog: `GET /catalog` ([`list`]) and
//! `GET /catalog/:uuid` ([`detail`]).
//!
//! Server-rendered with `format!` and one escape function rather than a
//! template engine: two small pages do not pay for a dependency, and a
//! single [`html::esc`] on every interpolated value is easy to audit. No
//! JavaScript and no external assets; every page carries a
//! Content-Security-Policy that allows only same-origin images and the
//! page's own stylesheet. Visibility is exactly ListImages' and GetImage's
//! for the same caller: the pages call the same services (`list_images`,
//! `load_image`) with the same account and channel.

mod detail;
mod format;
mod html;
mod list;

use imgapi_domain::ImageRecord;

use crate::http::request::Req;

pub use detail::image;
pub use list::index;

/// The query parameters every catalog link keeps (`account`, `channel`):
/// they decide what the caller may see, so following a link never changes
/// it.
fn carried(req: &Req) -> Vec<(&'static str, &str)> {
    let mut out = Vec::new();
    for key in ["account", "channel"] {
        if let Some(v) = req.query.get_nonempty(key) {
            out.push((key, v));
        }
    }
    out
}

/// The image's icon (GetImageIcon, under the same `account` and
/// `channel`) at `px` square, or nothing when it has none. The size is
/// fixed so the layout does not move while icons load.
fn icon_html(img: &ImageRecord, carry: &[(&'static str, &str)], px: u32) -> String {
    if img.icon.is_none() {
        return String::new();
    }
    let src = html::with_query(&format!("/images/{}/icon", img.uuid), carry);
    format!(
        "<img class=\"icon\" src=\"{}\" width=\"{px}\" height=\"{px}\" alt=\"icon of {}\" loading=\"lazy\">",
        html::esc(&src),
        html::esc(&img.name)
    )
}
