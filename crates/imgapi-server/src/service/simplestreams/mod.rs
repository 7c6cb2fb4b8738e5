//! This registry as a simplestreams image server for `lxc` / `incus`
//! (`[simplestreams] enabled`, docs/lxd.md): the active, public, enabled
//! images of type `lxd` (on a server with channels: of the default
//! channel), described by `describe`, written by `document`. Routing and
//! responses are `http::routes::simplestreams`; downloads go through
//! GetImageFile's download path.

mod describe;
mod document;

use bytes::Bytes;
use imgapi_domain::filter::{build_list_query, ListFilter, Predicate, SortOrder, StateFilter};
use imgapi_domain::{ImageFile, ImageRecord};
use uuid::Uuid;

pub use document::{INDEX_PATH, PRODUCTS_PATH};

use super::{lifecycle, resolve_channel, ChannelRule, ServiceError};
use crate::app::AppState;

/// Which of the two documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    Index,
    Products,
}

fn listed(img: &ImageRecord, channel: Option<&str>) -> bool {
    img.activated
        && !img.disabled
        && img.public
        && img.image_type == "lxd"
        && channel.is_none_or(|ch| img.in_channel(ch))
}

/// The listed images that can be described, oldest first.
async fn described(
    app: &AppState,
    channel: Option<&str>,
) -> Result<Vec<(Uuid, describe::LxdImage)>, ServiceError> {
    let mut common = vec![Predicate::TypeEq("lxd".into())];
    if let Some(ch) = channel {
        common.push(Predicate::Channel(ch.to_string()));
    }
    // Anyone may read the documents: deprecated images are left out.
    common.extend(lifecycle::hide_deprecated(
        lifecycle::Viewer::Anonymous,
        lifecycle::now_ms(),
    ));
    let filter = ListFilter {
        account: None,
        owner: None,
        state: Some(StateFilter::Active),
        public: Some(true),
        common,
        order: SortOrder::Asc,
        limit: None,
    };
    let images = app
        .meta
        .list(&build_list_query(&filter))
        .await
        .map_err(ServiceError::meta("error listing lxd images"))?;
    Ok(images
        .iter()
        .filter(|img| listed(img, channel))
        .filter_map(|img| Some((img.uuid, describe::describe(img)?)))
        .collect())
}

/// The JSON body of `doc`, cached like ListImages' answers: until the next
/// write committed by any instance (`service::list_cache`).
pub async fn document(app: &AppState, doc: Document) -> Result<Bytes, ServiceError> {
    let channel = resolve_channel(app, None, ChannelRule::ChannelOrStar)?;
    let generation = app
        .meta
        .generation()
        .await
        .map_err(ServiceError::meta("error reading the metadata generation"))?;
    // A key no ListImages URL can have (those start with `/`).
    let key = format!(
        "simplestreams|{doc:?}|{}",
        channel.as_deref().unwrap_or("*")
    );
    if let Some(body) = app.list_cache.get(&key, generation) {
        return Ok(body);
    }
    let valid_until = lifecycle::listing_valid_until(app).await?;
    let images = described(app, channel.as_deref()).await?;
    let value = match doc {
        Document::Index => document::index_document(&images),
        Document::Products => document::products_document(&images),
    };
    let bytes = Bytes::from(serde_json::to_vec_pretty(&value).unwrap_or_default());
    app.list_cache
        .put(key, generation, valid_until, bytes.clone());
    Ok(bytes)
}

/// The image and file an item path (`streams/v1/files/<uuid>/<item>`)
/// names, if that item is in the served documents.
pub async fn item_file(
    app: &AppState,
    uuid: &str,
    item_name: &str,
) -> Result<(ImageRecord, ImageFile), ServiceError> {
    let not_found = || ServiceError::not_found(format!("{uuid}/{item_name} not found"));
    if !imgapi_domain::validate::is_lower_uuid(uuid) {
        return Err(not_found());
    }
    let uuid = Uuid::parse_str(uuid).map_err(|_| not_found())?;
    let channel = resolve_channel(app, None, ChannelRule::ChannelOrStar)?;
    let img = app
        .meta
        .get(uuid)
        .await
        .map_err(ServiceError::meta(format!("error loading image {uuid}")))?
        .map(|stored| stored.image)
        .filter(|img| listed(img, channel.as_deref()))
        .ok_or_else(not_found)?;
    let index = describe::describe(&img)
        .and_then(|d| d.items.into_iter().find(|i| i.name == item_name))
        .map(|item| item.file_index)
        .ok_or_else(not_found)?;
    let file = img.files.get(index).cloned().ok_or_else(not_found)?;
    Ok((img, file))
}
