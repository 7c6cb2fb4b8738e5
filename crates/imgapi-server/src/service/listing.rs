//! ListImages (api.md §5.1): parameter checks in the original's order, then
//! one query pushed down to the metadata store.

use imgapi_domain::filter::{build_list_query, ListFilter, Predicate, SortOrder, StateFilter};
use imgapi_domain::image::parse_iso_ms;
use imgapi_domain::validate::is_lower_uuid;
use imgapi_domain::{ImageRecord, Mode};
use imgapi_types::{FieldError, LIST_LIMIT_MAX};
use uuid::Uuid;

use super::lifecycle::{hide_deprecated, now_ms, Viewer};
use super::{parse_bool_param, ServiceError};
use crate::app::AppState;

/// Parse `limit` with JavaScript `Number()` semantics.
/// Returns `Ok(None)` for "no limit" (0 or empty) and `Ok(Some(0))` for
/// negative values (which match nothing).
fn parse_limit(raw: &str) -> Result<Option<u32>, ServiceError> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let is_numeric = t
        .trim_start_matches(['+', '-'])
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    let n = t.parse::<f64>().ok().filter(|n| is_numeric && !n.is_nan());
    match n {
        None => Err(ServiceError::invalid_parameter(
            format!("invalid limit: \"{raw}\""),
            vec![FieldError::invalid("state")],
        )),
        Some(n) if n < 0.0 => Ok(Some(0)),
        Some(0.0) => Ok(None),
        Some(n) => Ok(Some(n.ceil().min(f64::from(u32::MAX)) as u32)),
    }
}

fn parse_sort(raw: Option<&str>) -> Result<SortOrder, ServiceError> {
    let Some(raw) = raw else {
        return Ok(SortOrder::Asc);
    };
    let (attr, order) = raw.split_once('.').unwrap_or((raw, "asc"));
    if attr != "published_at" {
        return Err(ServiceError::invalid_parameter(
            format!("invalid 'sort': not a valid sorting attribute: '{attr}'"),
            vec![FieldError::invalid("sort")],
        ));
    }
    // The original sorts any order but `asc` descending; api.md recommends
    // refusing what is neither, so a typo does not silently reverse a page.
    if order.eq_ignore_ascii_case("asc") {
        Ok(SortOrder::Asc)
    } else if order.eq_ignore_ascii_case("desc") {
        Ok(SortOrder::Desc)
    } else {
        Err(ServiceError::invalid_parameter(
            format!("invalid 'sort': not a valid sorting order: '{order}'"),
            vec![FieldError::invalid("sort")],
        ))
    }
}

/// The simple filters ListImages and the legacy `/datasets` share, as
/// received (each is checked where the spec checks it).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub name: Option<String>,
    pub version: Option<String>,
    pub os: Option<String>,
    pub image_type: Option<String>,
    /// `tag.KEY=VALUE` pairs: the first of each key.
    pub tags: Vec<(String, String)>,
    pub billing_tags: Vec<String>,
}

/// ListImages' query, as received: `list_images` checks it in the
/// original's order.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub incl_admin_fields: Option<String>,
    pub limit: Option<String>,
    pub state: Option<String>,
    pub public: Option<String>,
    pub sort: Option<String>,
    pub marker: Option<String>,
    pub owner: Option<String>,
    /// `include_deprecated=true`: deprecated images too (docs/lifecycle.md).
    pub include_deprecated: Option<String>,
    pub filters: Filters,
}

/// The predicates of the simple filters (name, version, os, type, tags…).
pub(crate) fn common_predicates(q: &Filters, channel: Option<&str>) -> Vec<Predicate> {
    let mut preds = Vec::new();
    if let Some(name) = &q.name {
        preds.push(match name.strip_prefix('~') {
            Some(sub) => Predicate::NameContains(sub.into()),
            None => Predicate::NameEq(name.into()),
        });
    }
    if let Some(version) = &q.version {
        preds.push(match version.strip_prefix('~') {
            Some(sub) => Predicate::VersionContains(sub.into()),
            None => Predicate::VersionEq(version.into()),
        });
    }
    if let Some(os) = &q.os {
        preds.push(Predicate::OsEq(os.into()));
    }
    if let Some(ty) = &q.image_type {
        preds.push(match ty.strip_prefix('!') {
            Some(not) => Predicate::TypeNe(not.into()),
            None => Predicate::TypeEq(ty.into()),
        });
    }
    for (tag, value) in &q.tags {
        preds.push(Predicate::Tag {
            key: tag.clone(),
            value: (!value.is_empty()).then(|| value.clone()),
        });
    }
    for bt in &q.billing_tags {
        preds.push(Predicate::BillingTag(bt.clone()));
    }
    if let Some(ch) = channel {
        preds.push(Predicate::Channel(ch.into()));
    }
    preds
}

async fn marker_predicate(
    app: &AppState,
    raw: &str,
    order: SortOrder,
) -> Result<Option<Predicate>, ServiceError> {
    let ms = if is_lower_uuid(raw) {
        let uuid = Uuid::parse_str(raw)
            .map_err(|_| ServiceError::not_found(format!("image {raw} not found")))?;
        let marker = app
            .meta
            .get(uuid)
            .await
            .map_err(ServiceError::meta(format!(
                "error loading marker image {uuid}"
            )))?
            .ok_or_else(|| ServiceError::not_found(format!("image {uuid} not found")))?;
        match marker.image.published_at_ms() {
            Some(ms) => ms,
            None => return Ok(None),
        }
    } else {
        parse_iso_ms(raw).ok_or_else(|| {
            ServiceError::invalid_parameter(
                format!(
                    "invalid value for \"marker\" param: \"{raw}\" is not a UUID or date string"
                ),
                vec![FieldError::invalid("marker")],
            )
        })?
    };
    Ok(Some(match order {
        SortOrder::Asc => Predicate::PublishedAtGe(ms),
        SortOrder::Desc => Predicate::PublishedAtLe(ms),
    }))
}

/// Parsed `inclAdminFields`, checked against the caller (shared with GetImage).
pub fn admin_fields_allowed(
    app: &AppState,
    raw: Option<&str>,
    authenticated: bool,
) -> Result<bool, ServiceError> {
    let wanted = parse_bool_param("inclAdminFields", raw)?.unwrap_or(false);
    if wanted && app.config.mode != Mode::Dc && !authenticated {
        return Err(ServiceError::Unauthorized(
            "Unauthorized (auth required to use \"inclAdminFields\" parameter)".into(),
        ));
    }
    Ok(wanted)
}

/// Run ListImages for an already-resolved channel. Returns the images and
/// whether admin fields were requested.
pub async fn list_images(
    app: &AppState,
    q: &ListQuery,
    account: Option<&str>,
    channel: Option<&str>,
    authenticated: bool,
) -> Result<(Vec<ImageRecord>, bool), ServiceError> {
    let admin_fields = admin_fields_allowed(app, q.incl_admin_fields.as_deref(), authenticated)?;
    let limit = match q.limit.as_deref() {
        Some(raw) => parse_limit(raw)?,
        None => None,
    };
    let limit = Some(limit.map_or(LIST_LIMIT_MAX, |l| l.min(LIST_LIMIT_MAX)));
    let limit_to_active = app.config.mode != Mode::Dc && !authenticated;
    let state = match q.state.as_deref() {
        None => None,
        Some(raw) => Some(StateFilter::parse(raw).ok_or_else(|| {
            ServiceError::invalid_parameter(
                format!("invalid state: \"{raw}\""),
                vec![FieldError::invalid("state")],
            )
        })?),
    };
    let state = match (state, limit_to_active) {
        (Some(StateFilter::All), true) => Some(StateFilter::Active),
        (Some(StateFilter::Active | StateFilter::All) | None, _) => state,
        (Some(_), true) => return Ok((Vec::new(), admin_fields)),
        (Some(s), false) => Some(s),
    };
    let public = parse_bool_param("public", q.public.as_deref())?;
    let order = parse_sort(q.sort.as_deref())?;
    let include_deprecated =
        parse_bool_param("include_deprecated", q.include_deprecated.as_deref())?.unwrap_or(false);
    let mut common = common_predicates(&q.filters, channel);
    if !include_deprecated {
        let viewer = match account {
            Some(account) => Viewer::Account(account),
            None if limit_to_active => Viewer::Anonymous,
            None => Viewer::Operator,
        };
        common.extend(hide_deprecated(viewer, now_ms()));
    }
    if let Some(raw) = q.marker.as_deref() {
        if let Some(pred) = marker_predicate(app, raw, order).await? {
            common.push(pred);
        }
    }
    let filter = ListFilter {
        account: account.map(str::to_string),
        owner: q.owner.clone(),
        state,
        public,
        common,
        order,
        limit,
    };
    let query = build_list_query(&filter);
    let images = app
        .meta
        .list(&query)
        .await
        .map_err(ServiceError::meta("error listing images"))?;
    Ok((images, admin_fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_semantics() {
        assert!(matches!(parse_limit(""), Ok(None)));
        assert!(matches!(parse_limit("0"), Ok(None)));
        assert!(matches!(parse_limit("-1"), Ok(Some(0))));
        assert!(matches!(parse_limit("10"), Ok(Some(10))));
        assert!(matches!(parse_limit("1e3"), Ok(Some(1000))));
        assert!(parse_limit("abc").is_err());
        assert!(parse_limit("2abc").is_err());
    }

    #[test]
    fn sort_semantics() {
        assert!(matches!(
            parse_sort(Some("published_at")),
            Ok(SortOrder::Asc)
        ));
        assert!(matches!(
            parse_sort(Some("published_at.DESC")),
            Ok(SortOrder::Desc)
        ));
        assert!(matches!(
            parse_sort(Some("published_at.ASC")),
            Ok(SortOrder::Asc)
        ));
        assert!(matches!(
            parse_sort(Some("published_at.asc")),
            Ok(SortOrder::Asc)
        ));
        assert!(matches!(
            parse_sort(Some("published_at.desc")),
            Ok(SortOrder::Desc)
        ));
        for refused in [
            "published_at.bogus",
            "published_at.sideways",
            "published_at.",
            "published_at.desc.x",
            "name",
            "name.asc",
            "",
        ] {
            assert!(parse_sort(Some(refused)).is_err(), "{refused} accepted");
        }
    }
}
