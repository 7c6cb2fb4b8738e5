//! Conformance checks of [`MetaStore::usage`] and
//! [`MetaStore::count_jobs_by_execution`].

use std::collections::BTreeMap;

use imgapi_domain::{ImageFile, ImageRecord, ImageState};
use uuid::Uuid;

use super::{fixture, job_fixture, ok, rich_fixture};
use crate::{BillingTagUsage, MetaStore, OwnerUsage};

/// A file entry of `size` bytes.
fn file(size: u64) -> ImageFile {
    let mut f = rich_fixture(Uuid::nil()).files.remove(0);
    f.size = size;
    f
}

fn image(
    owner: Uuid,
    state: ImageState,
    files: &[u64],
    icon: Option<u64>,
    tags: &[&str],
) -> ImageRecord {
    let mut img = fixture(owner);
    img.state = state;
    img.activated = matches!(state, ImageState::Active | ImageState::Disabled);
    img.disabled = state == ImageState::Disabled;
    img.files = files.iter().map(|&s| file(s)).collect();
    img.icon = icon.and_then(|size| {
        let mut i = rich_fixture(owner).icon?;
        i.size = size;
        Some(i)
    });
    img.billing_tags = (!tags.is_empty()).then(|| tags.iter().map(|t| t.to_string()).collect());
    img
}

fn tag(owner: Uuid, tag: &str, images: u64, bytes: u64) -> BillingTagUsage {
    BillingTagUsage {
        owner,
        tag: tag.into(),
        images,
        bytes,
    }
}

/// Images, files and icons are summed per owner (every state counts), and
/// per owner and billing tag; the owner filter restricts both; a delete
/// takes the image's bytes away.
pub async fn usage_per_owner_and_billing_tag(store: &dyn MetaStore) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let a1 = image(
        a,
        ImageState::Active,
        &[100, 50],
        Some(10),
        &["small", "fast"],
    );
    let a2 = image(a, ImageState::Unactivated, &[], None, &["small"]);
    let a3 = image(a, ImageState::Disabled, &[1000], None, &[]);
    let b1 = image(b, ImageState::Active, &[7], None, &["small"]);
    for img in [&a1, &a2, &a3, &b1] {
        ok(store.insert(img).await, "insert fixture");
    }
    let want_a = OwnerUsage {
        owner: a,
        images: 3,
        active: 1,
        files: 3,
        file_bytes: 1150,
        icons: 1,
        icon_bytes: 10,
    };
    let got = ok(store.usage(Some(a)).await, "usage(owner)");
    assert_eq!(got.owners, vec![want_a.clone()], "usage of one owner");
    assert_eq!(want_a.bytes(), 1160);
    assert_eq!(
        got.billing_tags,
        vec![tag(a, "fast", 1, 160), tag(a, "small", 2, 160)],
        "billing tags of one owner, sorted by tag"
    );

    // Everyone: both owners appear (other runs may share the database).
    let all = ok(store.usage(None).await, "usage(all)");
    let owners: BTreeMap<Uuid, &OwnerUsage> = all.owners.iter().map(|o| (o.owner, o)).collect();
    assert_eq!(owners.len(), all.owners.len(), "each owner once");
    assert_eq!(owners.get(&a), Some(&&want_a));
    assert_eq!(
        owners.get(&b).map(|o| (o.images, o.bytes())),
        Some((1, 7)),
        "second owner"
    );
    assert!(all.billing_tags.contains(&tag(b, "small", 1, 7)));
    assert!(
        all.owners.windows(2).all(|w| w[0].owner < w[1].owner),
        "owners sorted by uuid"
    );

    // Nobody's usage is empty, not an error.
    let none = ok(store.usage(Some(Uuid::new_v4())).await, "usage(unknown)");
    assert!(none.owners.is_empty() && none.billing_tags.is_empty());

    ok(store.delete(a1.uuid).await, "delete");
    let got = ok(store.usage(Some(a)).await, "usage after delete");
    assert_eq!(
        got.owners
            .first()
            .map(|o| (o.images, o.active, o.files, o.bytes())),
        Some((2, 0, 1, 1000))
    );
    assert_eq!(got.billing_tags, vec![tag(a, "small", 1, 0)]);
}

/// The owner totals and the billing-tag totals come from one snapshot:
/// with every image of the owner carrying the same tag, both always agree
/// while images are inserted and deleted concurrently.
pub async fn usage_is_one_snapshot(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let writer = async {
        let mut live: Vec<Uuid> = Vec::new();
        for i in 0..40 {
            let img = image(owner, ImageState::Active, &[100, 23], Some(1), &["t"]);
            ok(store.insert(&img).await, "insert");
            live.push(img.uuid);
            if i % 3 == 2 {
                let gone = live.remove(0);
                ok(store.delete(gone).await, "delete");
            }
        }
        live.len()
    };
    let reader = async {
        let mut seen = 0;
        for _ in 0..60 {
            let got = ok(store.usage(Some(owner)).await, "usage");
            match (got.owners.as_slice(), got.billing_tags.as_slice()) {
                ([], []) => {}
                ([o], [t]) => {
                    assert_eq!(
                        (o.images, o.bytes()),
                        (t.images, t.bytes),
                        "owner and tag totals from different snapshots"
                    );
                    assert_eq!(o.bytes(), o.images * 124, "whole images only");
                    seen += 1;
                }
                other => panic!("unexpected usage rows {other:?}"),
            }
            tokio::task::yield_now().await;
        }
        seen
    };
    let (live, _seen) = tokio::join!(writer, reader);
    let end = ok(store.usage(Some(owner)).await, "usage at the end");
    assert_eq!(end.owners.first().map(|o| o.images), Some(live as u64));
}

/// Jobs are counted per execution.
pub async fn jobs_counted_by_execution(store: &dyn MetaStore) {
    let counts = |v: Vec<(String, u64)>| -> BTreeMap<String, u64> { v.into_iter().collect() };
    let before = counts(ok(store.count_jobs_by_execution().await, "count_jobs"));
    for _ in 0..2 {
        let job = job_fixture(Uuid::new_v4(), "2024-01-01T00:00:00.000Z");
        ok(store.insert_job(&job).await, "insert_job");
    }
    let after = counts(ok(store.count_jobs_by_execution().await, "count_jobs"));
    let get = |m: &BTreeMap<String, u64>| m.get("queued").copied().unwrap_or(0);
    // `>=`: other writers may share the database.
    assert!(get(&after) >= get(&before) + 2, "{before:?} → {after:?}");
    assert!(
        after
            .keys()
            .all(|k| crate::JobExecution::parse(k).is_some()),
        "executions by name: {after:?}"
    );
}
