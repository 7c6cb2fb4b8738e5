//! The upstream listing: every page of ListImages, or a DSAPI listing.

use std::collections::HashSet;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{policy_hint, MirrorError, MirrorOptions};
use crate::app::AppState;
use crate::service::import::fetch::FetchError;
use crate::service::import::manifest::dsapi_to_v2;
use crate::service::import::source::Source;

/// ListImages page size (the documented maximum).
const PAGE: usize = 1000;
const PAGE_STR: &str = "1000";
/// Largest listing answer read (one page, or a whole DSAPI listing).
const MAX_LISTING: usize = 256 * 1024 * 1024;

/// One listing entry: a v2 manifest with its uuid, or why it is unusable.
pub(super) type Entry = Result<(Uuid, Map<String, Value>), String>;

/// The upstream images, in the listing's order (oldest first).
pub(super) struct Listing {
    pub(super) entries: Vec<Entry>,
}

fn listing_error(e: FetchError) -> MirrorError {
    match e {
        FetchError::Refused(r) => MirrorError::List(format!(
            "refused by the [remote] policy: {}{}",
            r.0,
            policy_hint(&r.0)
        )),
        other => MirrorError::List(other.to_string()),
    }
}

/// One listing entry as a v2 manifest with its uuid.
fn entry(item: Value, dsapi: bool) -> Entry {
    let Value::Object(map) = item else {
        return Err("an entry is not a JSON object".into());
    };
    let map = if dsapi { dsapi_to_v2(map) } else { map };
    let uuid = map
        .get("uuid")
        .and_then(Value::as_str)
        .and_then(|u| Uuid::parse_str(u).ok())
        .ok_or_else(|| "an entry has no valid uuid".to_string())?;
    Ok((uuid, map))
}

pub(super) async fn list_upstream(
    app: &AppState,
    src: &Source,
    opts: &MirrorOptions,
) -> Result<Listing, MirrorError> {
    let mut filters: Vec<(&str, &str)> = Vec::new();
    for (key, value) in [
        ("name", &opts.name),
        ("os", &opts.os),
        ("type", &opts.image_type),
        ("owner", &opts.owner),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            filters.push((key, v));
        }
    }
    if src.dsapi {
        // One unpaged answer; DSAPI servers may not know every filter.
        let items = app
            .remote
            .get_array(src.list_url(&filters), src.trust, MAX_LISTING)
            .await
            .map_err(listing_error)?;
        let entries = items
            .into_iter()
            .map(|item| entry(item, true))
            .filter(|e| e.as_ref().map_or(true, |(_, m)| matches_filters(m, opts)))
            .collect();
        return Ok(Listing { entries });
    }
    // `include_deprecated`: a deprecated image is still installable by uuid
    // (the origin of a live image may be one), so a mirror keeps it; an
    // original IMGAPI ignores unknown ListImages parameters (api.md §5.1).
    let mut params = vec![
        ("state", "all"),
        ("sort", "published_at.asc"),
        ("limit", PAGE_STR),
        ("include_deprecated", "true"),
    ];
    params.extend(filters);
    let mut seen = HashSet::new();
    let mut entries = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut query = params.clone();
        if let Some(m) = marker.as_deref() {
            query.push(("marker", m));
        }
        let page = app
            .remote
            .get_array(src.list_url(&query), src.trust, MAX_LISTING)
            .await
            .map_err(listing_error)?;
        let full = page.len() >= PAGE;
        let mut added = 0;
        let mut next = None;
        for item in page {
            let got = entry(item, false);
            if let Ok((uuid, m)) = &got {
                if m.get("published_at").and_then(Value::as_str).is_some() {
                    next = Some(uuid.to_string());
                }
                if !seen.insert(*uuid) {
                    continue;
                }
            }
            added += 1;
            entries.push(got);
        }
        // The marker image comes again (ListImages' marker is inclusive).
        // A short page may be a server's own page cap: ask again until a
        // page brings nothing new.
        match next {
            Some(n) if added > 0 && marker.as_deref() != Some(n.as_str()) => marker = Some(n),
            _ if !full => break,
            _ => {
                return Err(MirrorError::List(format!(
                    "the listing does not advance after {} images (more than {PAGE} images share one published_at?)",
                    entries.len()
                )))
            }
        }
    }
    Ok(Listing { entries })
}

/// ListImages' filter semantics, for DSAPI listings (which may ignore
/// them) and for one image a change feed names: `name` exact or `~substring`, `type` exact or `!type`, `os` and
/// `owner` exact.
pub(super) fn matches_filters(m: &Map<String, Value>, opts: &MirrorOptions) -> bool {
    let field = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
    let name_ok = match opts.name.as_deref().filter(|v| !v.is_empty()) {
        None => true,
        Some(v) => match v.strip_prefix('~') {
            Some(sub) => field("name").contains(sub),
            None => field("name") == v,
        },
    };
    let type_ok = match opts.image_type.as_deref().filter(|v| !v.is_empty()) {
        None => true,
        Some(v) => match v.strip_prefix('!') {
            Some(not) => field("type") != not,
            None => field("type") == v,
        },
    };
    let exact = |k: &str, want: &Option<String>| {
        want.as_deref()
            .filter(|v| !v.is_empty())
            .is_none_or(|v| field(k) == v)
    };
    name_ok && type_ok && exact("os", &opts.os) && exact("owner", &opts.owner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dsapi_filters() {
        let m: Map<String, Value> = serde_json::from_value(
            json!({"name": "base-64", "os": "smartos", "type": "zone-dataset", "owner": "x"}),
        )
        .unwrap();
        let opts = |name: Option<&str>, ty: Option<&str>| MirrorOptions {
            name: name.map(str::to_string),
            image_type: ty.map(str::to_string),
            ..MirrorOptions::default()
        };
        assert!(matches_filters(&m, &opts(None, None)));
        assert!(matches_filters(&m, &opts(Some("base-64"), None)));
        assert!(matches_filters(
            &m,
            &opts(Some("~base"), Some("zone-dataset"))
        ));
        assert!(!matches_filters(&m, &opts(Some("base"), None)));
        assert!(!matches_filters(&m, &opts(None, Some("!zone-dataset"))));
        assert!(matches_filters(&m, &opts(None, Some("!zvol"))));
    }
}
