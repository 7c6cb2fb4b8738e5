//! Legacy DSAPI `/datasets` in `dsapi = "serve"` mode: which images an
//! anonymous SDC 6.5-era client sees. Rendering (the v1 manifest) is
//! `imgapi_domain::dsapi`; routing and responses are `http::routes::datasets`.
//!
//! Visibility is ListImages' for a caller without account, narrowed to what
//! anyone may see: activated, not disabled, public; on a server with
//! channels, the `channel` parameter or else the default channel. Only
//! images a v1 client can install are offered: a v1 manifest cannot name
//! an `origin`, so an incremental image would hand such a client a zfs
//! stream it has no base for.

use imgapi_domain::filter::{build_list_query, ListFilter, Predicate, SortOrder, StateFilter};
use imgapi_domain::validate::is_lower_uuid;
use imgapi_domain::ImageRecord;
use uuid::Uuid;

use super::listing::{common_predicates, Filters};
use super::{resolve_channel, ChannelRule, ServiceError};
use crate::app::AppState;

/// Active, public, installable by a v1 client, and in the channel (if any).
fn anonymous_may_see(img: &ImageRecord, channel: Option<&str>) -> bool {
    img.activated
        && !img.disabled
        && img.public
        && installable_by_v1_client(img)
        && channel.is_none_or(|ch| img.in_channel(ch))
}

fn installable_by_v1_client(img: &ImageRecord) -> bool {
    img.origin.is_none()
}

async fn query(app: &AppState, common: Vec<Predicate>) -> Result<Vec<ImageRecord>, ServiceError> {
    let filter = ListFilter {
        account: None,
        owner: None,
        state: Some(StateFilter::Active),
        public: Some(true),
        common,
        order: SortOrder::Asc,
        limit: None,
    };
    let mut images = app
        .meta
        .list(&build_list_query(&filter))
        .await
        .map_err(ServiceError::meta("error listing datasets"))?;
    // The query has no limit, so dropping incremental images here never
    // shortens what a client asked for.
    images.retain(installable_by_v1_client);
    Ok(images)
}

/// `GET /datasets`: every visible image, oldest first, filtered by the
/// ListImages parameters `name`, `version`, `os`, `type` (and `tag.*`,
/// `billing_tag`, `channel`), with ListImages' semantics.
pub async fn list(
    app: &AppState,
    filters: &Filters,
    channel: Option<&str>,
) -> Result<Vec<ImageRecord>, ServiceError> {
    let channel = resolve_channel(app, channel, ChannelRule::ChannelOrStar)?;
    query(app, common_predicates(filters, channel.as_deref())).await
}

fn not_found(arg: &str) -> ServiceError {
    ServiceError::not_found(format!("dataset {arg} not found"))
}

/// `GET /datasets/<arg>`: a UUID, or, as the redirect table of api.md §6,
/// `name:version`, a URN `cloud:creator:name[:version]` or a bare name;
/// the newest visible match (by `published_at`).
pub async fn find(
    app: &AppState,
    arg: &str,
    channel: Option<&str>,
) -> Result<ImageRecord, ServiceError> {
    let channel = resolve_channel(app, channel, ChannelRule::ChannelOrStar)?;
    if is_lower_uuid(arg) {
        let uuid = Uuid::parse_str(arg).map_err(|_| not_found(arg))?;
        let stored = app
            .meta
            .get(uuid)
            .await
            .map_err(ServiceError::meta(format!("error loading dataset {uuid}")))?;
        return stored
            .map(|s| s.image)
            .filter(|img| anonymous_may_see(img, channel.as_deref()))
            .ok_or_else(|| not_found(arg));
    }
    let parts: Vec<&str> = arg.split(':').collect();
    let (name, version) = match parts.as_slice() {
        [name, version] | [_, _, name, version] => (*name, Some(*version)),
        [_, _, name] => (*name, None),
        _ => (arg, None),
    };
    let mut common = vec![Predicate::NameEq(name.into())];
    if let Some(v) = version {
        common.push(Predicate::VersionEq(v.into()));
    }
    if let Some(ch) = &channel {
        common.push(Predicate::Channel(ch.clone()));
    }
    query(app, common)
        .await?
        .pop()
        .ok_or_else(|| not_found(arg))
}
