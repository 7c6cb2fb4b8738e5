//! Values as a person reads them: sizes, dates, short descriptions, links
//! and JSON. Each returns escaped HTML, with the exact value on hover where
//! the shown one is rounded.

use imgapi_domain::image::parse_iso_ms;
use imgapi_domain::units::human_size;
use serde_json::Value;

use super::html::esc;

/// Longest description the image list shows before cutting it.
const DESCRIPTION_PREVIEW_CHARS: usize = 140;

/// A size, rounded, with the exact byte count on hover.
pub fn size_html(bytes: u64) -> String {
    format!("<span title=\"{bytes} bytes\">{}</span>", human_size(bytes))
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM UTC`; `None` when it does not
/// parse (the caller then shows the raw value).
pub fn human_date(rfc3339: &str) -> Option<String> {
    let ms = parse_iso_ms(rfc3339)?;
    let at = chrono::DateTime::from_timestamp_millis(ms)?;
    Some(at.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// A time, to the minute, with the exact stored value on hover.
pub fn date_html(rfc3339: &str) -> String {
    match human_date(rfc3339) {
        Some(shown) => format!(
            "<time datetime=\"{raw}\" title=\"{raw}\">{shown}</time>",
            raw = esc(rfc3339)
        ),
        None => esc(rfc3339),
    }
}

/// The start of `text` for the list: at most
/// [`DESCRIPTION_PREVIEW_CHARS`] characters, cut at a word where one is
/// near, with an ellipsis; the whole text on hover when cut.
pub fn description_preview_html(text: &str) -> String {
    let text = text.trim();
    let Some((cut_at, _)) = text.char_indices().nth(DESCRIPTION_PREVIEW_CHARS) else {
        return format!("<div class=\"desc\">{}</div>", esc(text));
    };
    let head = &text[..cut_at];
    let head = match head.rfind(char::is_whitespace) {
        // A word boundary in the last quarter keeps most of the text.
        Some(space) if space > cut_at * 3 / 4 => &head[..space],
        _ => head,
    };
    format!(
        "<div class=\"desc\" title=\"{}\">{}\u{2026}</div>",
        esc(text),
        esc(head.trim_end())
    )
}

/// `url` without the blanks and control characters a browser ignores
/// around it, when it is an HTTP(S) URL; `None` for anything else
/// (`javascript:`, `data:`, relative…), which must never become a link.
pub fn http_url(url: &str) -> Option<&str> {
    let url = url.trim_matches(|c: char| c.is_ascii_whitespace() || c.is_ascii_control());
    let scheme_end = url.find("://")?;
    let scheme = &url[..scheme_end];
    let has_host = url.len() > scheme_end + 3;
    ((scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) && has_host)
        .then_some(url)
}

/// `url` as an outbound link when it is HTTP(S), as plain text otherwise.
pub fn external_link_html(url: &str) -> String {
    match http_url(url) {
        Some(url) => format!(
            "<a href=\"{u}\" rel=\"noopener noreferrer nofollow\">{u}</a>",
            u = esc(url)
        ),
        None => esc(url),
    }
}

/// A JSON value as text: strings bare, arrays of scalars comma-joined,
/// anything deeper as compact JSON. Not escaped.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(is_scalar) => {
            items.iter().map(value_text).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_rounded_with_the_exact_count_on_hover() {
        assert_eq!(size_html(2048), "<span title=\"2048 bytes\">2.0 KiB</span>");
    }

    #[test]
    fn dates_to_the_minute_in_utc() {
        assert_eq!(
            human_date("2026-12-07T10:11:12.345Z").as_deref(),
            Some("2026-12-07 10:11 UTC")
        );
        assert_eq!(
            human_date("2026-12-07T10:11:12+02:00").as_deref(),
            Some("2026-12-07 08:11 UTC")
        );
        assert_eq!(human_date("soon"), None);
        assert_eq!(
            date_html("2026-12-07T10:11:12.345Z"),
            "<time datetime=\"2026-12-07T10:11:12.345Z\" title=\"2026-12-07T10:11:12.345Z\">\
2026-12-07 10:11 UTC</time>"
        );
        assert_eq!(date_html("<b>"), "&lt;b&gt;");
    }

    #[test]
    fn long_descriptions_are_cut_with_the_whole_on_hover() {
        assert_eq!(
            description_preview_html("short <one>"),
            "<div class=\"desc\">short &lt;one&gt;</div>"
        );
        let long = "word ".repeat(60);
        let html = description_preview_html(&long);
        assert!(html.ends_with("word\u{2026}</div>"), "{html}");
        assert!(html.contains(&format!("title=\"{}\"", long.trim())));
        // No word boundary: cut at the limit, on a char boundary.
        let html = description_preview_html(&"é".repeat(500));
        assert!(html.contains(&format!(">{}\u{2026}<", "é".repeat(140))));
    }

    #[test]
    fn only_http_urls_become_links() {
        for url in ["http://example.com", "HTTPS://x.org/a?b=c", " https://x "] {
            assert!(http_url(url).is_some(), "{url}");
        }
        for url in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "\u{1}javascript:alert(1)",
            "data:text/html,<script>",
            "http://",
            "https:",
            "//example.com",
            "ftp://x",
            "",
        ] {
            assert_eq!(http_url(url), None, "{url}");
            assert!(!external_link_html(url).contains("<a"), "{url}");
        }
        assert_eq!(
            external_link_html("https://x.org/\"><script>"),
            "<a href=\"https://x.org/&quot;&gt;&lt;script&gt;\" rel=\"noopener noreferrer nofollow\">\
https://x.org/&quot;&gt;&lt;script&gt;</a>"
        );
    }

    #[test]
    fn values_read_as_text() {
        assert_eq!(value_text(&json!("a<b")), "a<b");
        assert_eq!(value_text(&json!(3)), "3");
        assert_eq!(value_text(&json!(["a", 1, true])), "a, 1, true");
        assert_eq!(value_text(&json!({"k": [1]})), "{\"k\":[1]}");
    }
}
