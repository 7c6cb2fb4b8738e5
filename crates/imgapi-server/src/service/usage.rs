//! Storage usage for billing (`GET /usage`, `imgapi usage`): per owner, the
//! images and the bytes their files and icons take, broken down by billing
//! tag. One aggregate read of the MetaStore in one snapshot
//! ([`imgapi_meta::MetaStore::usage`]), so uploads and deletes in flight
//! never show half-counted: a file counts once its record update has
//! committed.

use std::collections::BTreeMap;

use imgapi_meta::{BinUsage, MetaStore, Usage};
use imgapi_types::{OwnerUsage, TagUsage, UsageTotals};
use serde_json::Value;
use uuid::Uuid;

use super::ServiceError;

/// Usage of `owner`, or of every owner.
pub async fn usage(meta: &dyn MetaStore, owner: Option<Uuid>) -> Result<Usage, ServiceError> {
    meta.usage(owner)
        .await
        .map_err(ServiceError::meta("error computing usage"))
}

/// What the recycle bin holds, of `owner` or of every owner (owners with
/// an empty bin absent): shown beside [`usage`], never counted in it.
pub async fn bin_usage(
    meta: &dyn MetaStore,
    owner: Option<Uuid>,
) -> Result<Vec<BinUsage>, ServiceError> {
    meta.bin_usage(owner)
        .await
        .map_err(ServiceError::meta("error computing recycle bin usage"))
}

/// The wire form (docs/operating.md "Usage for billing"):
///
/// ```json
/// {"owners": [{"owner": "…", "images": 3, "activeImages": 1, "files": 3,
///              "fileBytes": 1150, "icons": 1, "iconBytes": 10, "bytes": 1160,
///              "billingTags": {"small": {"images": 2, "bytes": 160}}}],
///  "billingTags": {"small": {"images": 2, "bytes": 160}},
///  "totals": {"owners": 1, "images": 3, "bytes": 1160}}
/// ```
///
/// Top-level `billingTags` sums the owners listed; an image with several
/// tags counts under each. `recycleBin` (owner → images, bytes) appears
/// only when `bin` is not empty.
pub fn wire(usage: &Usage, bin: &[BinUsage]) -> imgapi_types::Usage {
    let mut per_owner: BTreeMap<Uuid, BTreeMap<String, TagUsage>> = BTreeMap::new();
    let mut all_tags: BTreeMap<String, TagUsage> = BTreeMap::new();
    for t in &usage.billing_tags {
        let total = TagUsage {
            images: t.images,
            bytes: t.bytes,
        };
        per_owner
            .entry(t.owner)
            .or_default()
            .insert(t.tag.clone(), total);
        let sum = all_tags.entry(t.tag.clone()).or_default();
        sum.images = sum.images.saturating_add(t.images);
        sum.bytes = sum.bytes.saturating_add(t.bytes);
    }
    let owners: Vec<OwnerUsage> = usage
        .owners
        .iter()
        .map(|o| OwnerUsage {
            owner: o.owner,
            images: o.images,
            active_images: o.active,
            files: o.files,
            file_bytes: o.file_bytes,
            icons: o.icons,
            icon_bytes: o.icon_bytes,
            bytes: o.bytes(),
            billing_tags: per_owner.remove(&o.owner).unwrap_or_default(),
            quota: None,
        })
        .collect();
    let images: u64 = usage.owners.iter().map(|o| o.images).sum();
    let bytes = usage
        .owners
        .iter()
        .fold(0u64, |acc, o| acc.saturating_add(o.bytes()));
    imgapi_types::Usage {
        owners,
        billing_tags: all_tags,
        totals: UsageTotals {
            owners: u64::try_from(usage.owners.len()).unwrap_or(u64::MAX),
            images,
            bytes,
        },
        recycle_bin: bin
            .iter()
            .map(|b| {
                let held = imgapi_types::RecycleBinUsage {
                    images: b.images,
                    bytes: b.bytes,
                };
                (b.owner, held)
            })
            .collect(),
    }
}

/// [`wire`] as JSON.
pub fn to_json(usage: &Usage, bin: &[BinUsage]) -> Value {
    serde_json::to_value(wire(usage, bin)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use imgapi_meta::{BillingTagUsage, OwnerUsage};
    use serde_json::json;

    use super::*;

    #[test]
    fn wire_form_sums_tags_across_owners() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let usage = Usage {
            owners: vec![
                OwnerUsage {
                    owner: a,
                    images: 2,
                    active: 1,
                    files: 2,
                    file_bytes: 100,
                    icons: 1,
                    icon_bytes: 5,
                },
                OwnerUsage {
                    owner: b,
                    images: 1,
                    active: 1,
                    files: 1,
                    file_bytes: 7,
                    icons: 0,
                    icon_bytes: 0,
                },
            ],
            billing_tags: vec![
                BillingTagUsage {
                    owner: a,
                    tag: "t".into(),
                    images: 1,
                    bytes: 55,
                },
                BillingTagUsage {
                    owner: b,
                    tag: "t".into(),
                    images: 1,
                    bytes: 7,
                },
            ],
        };
        let v = to_json(&usage, &[]);
        assert_eq!(v["owners"][0]["bytes"], 105);
        assert_eq!(v["owners"][0]["billingTags"]["t"]["bytes"], 55);
        assert_eq!(v["owners"][1]["billingTags"]["t"]["images"], 1);
        assert_eq!(v["billingTags"]["t"], json!({"images": 2, "bytes": 62}));
        assert_eq!(v["totals"], json!({"owners": 2, "images": 3, "bytes": 112}));
        assert_eq!(to_json(&Usage::default(), &[])["owners"], json!([]));
    }
}
