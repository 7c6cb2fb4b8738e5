//! The two simplestreams documents (`index:1.0` and `products:1.0`), as
//! LXD's image servers write them, from described images.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::describe::LxdImage;

/// Where the index is served.
pub const INDEX_PATH: &str = "streams/v1/index.json";
/// Where the products file is served (the index names it).
pub const PRODUCTS_PATH: &str = "streams/v1/images.json";
/// The one content id of this server's index.
const CONTENT_ID: &str = "images";
const DATATYPE: &str = "image-downloads";

/// The download path of an item, relative to the server root as
/// simplestreams paths are.
pub fn item_path(uuid: Uuid, item_name: &str) -> String {
    format!("streams/v1/files/{uuid}/{item_name}")
}

fn item_json(uuid: Uuid, item: &super::describe::Item) -> Value {
    let mut out = Map::new();
    out.insert("ftype".into(), json!(item.ftype));
    out.insert("path".into(), json!(item_path(uuid, item.name)));
    out.insert("sha256".into(), json!(item.sha256));
    out.insert("size".into(), json!(item.size));
    for (key, fingerprint) in &item.combined {
        out.insert((*key).into(), json!(fingerprint));
    }
    Value::Object(out)
}

/// The products, by name, each with its versions; images oldest first so
/// that a version-key clash (two images of a product in one minute) keeps
/// the older image's key and suffixes the newer one's with its uuid.
fn products(images: &[(Uuid, LxdImage)]) -> BTreeMap<&str, (&LxdImage, BTreeMap<String, Value>)> {
    let mut out: BTreeMap<&str, (&LxdImage, BTreeMap<String, Value>)> = BTreeMap::new();
    for (uuid, img) in images {
        let (newest, versions) = out
            .entry(img.product.as_str())
            .or_insert_with(|| (img, BTreeMap::new()));
        // The product's fields (aliases, titles) come from its newest image.
        *newest = img;
        let mut key = img.version.clone();
        if versions.contains_key(&key) {
            key = format!("{key}_{}", &uuid.simple().to_string()[..8]);
        }
        let items: Map<String, Value> = img
            .items
            .iter()
            .map(|item| (item.name.to_string(), item_json(*uuid, item)))
            .collect();
        versions.insert(key, json!({"items": items}));
    }
    out
}

/// The products file (`products:1.0`, datatype `image-downloads`).
pub fn products_document(images: &[(Uuid, LxdImage)]) -> Value {
    let mut products_json = Map::new();
    for (name, (img, versions)) in products(images) {
        products_json.insert(
            name.to_string(),
            json!({
                "aliases": img.aliases,
                "arch": img.arch,
                "os": img.os,
                "release": img.release,
                "release_title": img.release_title,
                "variant": img.variant,
                "versions": versions,
            }),
        );
    }
    json!({
        "content_id": CONTENT_ID,
        "datatype": DATATYPE,
        "format": "products:1.0",
        "products": products_json,
    })
}

/// The index (`index:1.0`) naming the products file and its products.
pub fn index_document(images: &[(Uuid, LxdImage)]) -> Value {
    let names: Vec<&str> = products(images).into_keys().collect();
    json!({
        "format": "index:1.0",
        "index": {
            CONTENT_ID: {
                "datatype": DATATYPE,
                "format": "products:1.0",
                "path": PRODUCTS_PATH,
                "products": names,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::describe::Item;
    use super::*;

    fn image(product: &str, version: &str) -> LxdImage {
        LxdImage {
            product: product.into(),
            os: "Alpine".into(),
            release: "3.18".into(),
            release_title: "3.18".into(),
            arch: "amd64".into(),
            variant: "default".into(),
            aliases: "alpine/3.18".into(),
            version: version.into(),
            fingerprint: "f".repeat(64),
            items: vec![Item {
                name: "lxd_combined.tar.gz",
                ftype: "lxd_combined.tar.gz",
                file_index: 0,
                size: 3,
                sha256: "f".repeat(64),
                combined: Vec::new(),
            }],
        }
    }

    #[test]
    fn versions_of_one_product_share_it_and_clashing_keys_stay_apart() {
        let a = Uuid::from_u128(0xaaaa_aaaa_0000_0000_0000_0000_0000_0001);
        let b = Uuid::from_u128(0xbbbb_bbbb_0000_0000_0000_0000_0000_0002);
        let images = vec![
            (a, image("alpine:3.18:amd64:default", "20261207_14:28")),
            (b, image("alpine:3.18:amd64:default", "20261207_14:28")),
        ];
        let doc = products_document(&images);
        let versions = &doc["products"]["alpine:3.18:amd64:default"]["versions"];
        assert_eq!(versions.as_object().unwrap().len(), 2);
        let item = &versions["20261207_14:28"]["items"]["lxd_combined.tar.gz"];
        assert_eq!(
            item["path"],
            format!("streams/v1/files/{a}/lxd_combined.tar.gz")
        );
        assert!(versions["20261207_14:28_bbbbbbbb"].is_object());
        let index = index_document(&images);
        assert_eq!(index["index"]["images"]["path"], PRODUCTS_PATH);
        assert_eq!(
            index["index"]["images"]["products"],
            json!(["alpine:3.18:amd64:default"])
        );
    }
}
