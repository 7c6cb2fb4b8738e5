//! Conformance checks of the change log ([`crate::ChangeStore`]).

use imgapi_domain::{ImageFile, ImageState};
use imgapi_types::ChangeKind;
use uuid::Uuid;

use super::{fixture, ok};
use crate::{BinEntry, FlagsChange, MetaStore, StoredChange};

/// Every event after `since` up to the log's end, read in pages of `page`.
async fn read_all(store: &dyn MetaStore, since: i64, page: u32) -> Vec<StoredChange> {
    let mut all = Vec::new();
    let mut at = since;
    loop {
        let got = ok(store.changes_after(at, page).await, "changes_after");
        let Some(last) = got.last() else { break };
        at = last.seq;
        all.extend(got);
    }
    all
}

/// Every kind of image write leaves one event in the log, in the order
/// of the writes, naming what changed and carrying the record visibility
/// is judged on; the numbers read between two bounds are exactly the
/// numbers in between (no gap, no duplicate), whatever else wrote meanwhile.
pub async fn changes_follow_every_image_write(store: &dyn MetaStore) {
    let start = ok(store.change_log_bounds().await, "change_log_bounds");
    let owner = Uuid::new_v4();
    let mut img = fixture(owner);
    let mut rev = ok(store.insert(&img).await, "insert");

    img.files = vec![ImageFile {
        sha1: "da39a3ee5e6b4b0d3255bfef95601890afd80709".into(),
        size: 0,
        compression: "none".into(),
        dataset_guid: None,
        content_md5: "1B2M2Y8AsgTpgAmY7PhCfg==".into(),
        sha256: None,
        mtime: "2020-02-03T04:05:06.000Z".into(),
        stor: "local".into(),
        digest: None,
        uncompressed_digest: None,
        blob_key: None,
    }];
    rev = ok(store.update(&img, rev).await, "update files");
    img.activated = true;
    img.state = ImageState::Active;
    img.published_at = Some("2024-01-01T00:00:00.000Z".into());
    rev = ok(store.update(&img, rev).await, "update activate");
    // Rewriting the same record changes nothing: no event.
    rev = ok(store.update(&img, rev).await, "update unchanged");
    img.acl = vec![Uuid::new_v4()];
    rev = ok(store.update(&img, rev).await, "update acl");
    img.channels = Some(vec!["dev".into(), "staging".into()]);
    rev = ok(store.update(&img, rev).await, "update channels");
    img.channels = Some(vec!["dev".into()]);
    rev = ok(store.update(&img, rev).await, "update channels");
    img.disabled = true;
    img.state = ImageState::Disabled;
    rev = ok(store.update(&img, rev).await, "update disable");
    img.disabled = false;
    img.state = ImageState::Active;
    rev = ok(store.update(&img, rev).await, "update enable");
    img.description = Some("now described".into());
    img.name = "renamed".into();
    ok(store.put(&img).await, "put");
    let change = FlagsChange {
        deprecated_ms: None,
        protected: Some(true),
        at_ms: 1,
        by: "operator".into(),
    };
    ok(store.change_image_flags(img.uuid, &change).await, "flags");
    // The same flags again change nothing: no event.
    ok(store.change_image_flags(img.uuid, &change).await, "flags");
    let unprotect = FlagsChange {
        protected: Some(false),
        ..change
    };
    ok(
        store.change_image_flags(img.uuid, &unprotect).await,
        "flags",
    );

    let old_uuid = img.uuid;
    let current = ok(store.get(old_uuid).await, "get").map(|s| s.revision);
    img.uuid = Uuid::new_v4();
    rev = ok(
        store.rename(old_uuid, current.unwrap_or(rev), &img).await,
        "rename",
    );
    let entry = BinEntry {
        image: img.clone(),
        deleted_ms: 1,
        expires_ms: 2,
        deleted_by: None,
        deprecated_ms: None,
    };
    ok(store.move_to_bin(&entry, rev).await, "move_to_bin");
    ok(store.restore_from_bin(img.uuid).await, "restore_from_bin");
    ok(store.delete(img.uuid).await, "delete");
    // Deleting what is not there changes nothing: no event.
    ok(store.delete(img.uuid).await, "delete again");

    let binned = fixture(owner);
    let binned_rev = ok(store.insert(&binned).await, "insert");
    let entry = BinEntry {
        image: binned.clone(),
        deleted_ms: 1,
        expires_ms: 2,
        deleted_by: None,
        deprecated_ms: None,
    };
    ok(store.move_to_bin(&entry, binned_rev).await, "move_to_bin");
    ok(store.remove_from_bin(binned.uuid).await, "remove_from_bin");

    let end = ok(store.change_log_bounds().await, "change_log_bounds");
    // Small pages, so paging is exercised too.
    let all = read_all(store, start.last_seq, 7).await;
    let seqs: Vec<i64> = all.iter().map(|c| c.seq).collect();
    let expected: Vec<i64> = (start.last_seq + 1..=seqs.last().copied().unwrap_or(0)).collect();
    assert_eq!(seqs, expected, "the log is gapless and strictly increasing");
    assert!(
        seqs.last().copied().unwrap_or(0) >= end.last_seq,
        "every number up to the bound read after the writes is there"
    );

    let ours: Vec<(ChangeKind, Uuid, Vec<String>)> = all
        .iter()
        .filter(|c| c.image.owner == owner)
        .map(|c| (c.kind, c.uuid, c.fields.clone()))
        .collect();
    let names = |fields: &[&str]| fields.iter().map(|f| (*f).to_owned()).collect::<Vec<_>>();
    let new_uuid = img.uuid;
    let expected = vec![
        (ChangeKind::Created, old_uuid, vec![]),
        (ChangeKind::FileAdded, old_uuid, names(&["files"])),
        (
            ChangeKind::Activated,
            old_uuid,
            names(&["activated", "published_at", "state"]),
        ),
        (ChangeKind::AclChanged, old_uuid, names(&["acl"])),
        (ChangeKind::ChannelAdded, old_uuid, names(&["channels"])),
        (ChangeKind::ChannelRemoved, old_uuid, names(&["channels"])),
        (
            ChangeKind::Disabled,
            old_uuid,
            names(&["disabled", "state"]),
        ),
        (ChangeKind::Enabled, old_uuid, names(&["disabled", "state"])),
        (
            ChangeKind::Updated,
            old_uuid,
            names(&["description", "name"]),
        ),
        (
            ChangeKind::LifecycleChanged,
            old_uuid,
            names(&["protected"]),
        ),
        (
            ChangeKind::LifecycleChanged,
            old_uuid,
            names(&["protected"]),
        ),
        (ChangeKind::Deleted, old_uuid, vec![]),
        (ChangeKind::Created, new_uuid, vec![]),
        (ChangeKind::Recycled, new_uuid, vec![]),
        (ChangeKind::Restored, new_uuid, vec![]),
        (ChangeKind::Deleted, new_uuid, vec![]),
        (ChangeKind::Created, binned.uuid, vec![]),
        (ChangeKind::Recycled, binned.uuid, vec![]),
        (ChangeKind::Purged, binned.uuid, vec![]),
    ];
    assert_eq!(ours, expected, "one event per changing write, in order");

    let ours: Vec<&StoredChange> = all.iter().filter(|c| c.image.owner == owner).collect();
    assert_eq!(
        ours[1].image.state,
        ImageState::Unactivated,
        "an event carries the record after its write"
    );
    assert_eq!(ours[8].image.name, "renamed");
    assert_eq!(
        ours[11].image.uuid, old_uuid,
        "a removal carries the record it removed"
    );
    assert!(ours.iter().all(|c| c.time_ms > 0));
    assert!(ours.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
}

/// Reading past the end yields nothing of what was written; `limit`
/// bounds a page.
pub async fn changes_paging_bounds(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    for _ in 0..3 {
        ok(store.insert(&fixture(owner)).await, "insert");
    }
    let bounds = ok(store.change_log_bounds().await, "change_log_bounds");
    assert!(bounds.last_seq >= 3 && bounds.purged_through < bounds.last_seq);
    // Other writers may share the database: only "none of ours" is checked.
    let past = ok(
        store.changes_after(bounds.last_seq, 10).await,
        "changes_after",
    );
    assert!(
        past.iter()
            .all(|c| c.seq > bounds.last_seq && c.image.owner != owner),
        "nothing of ours after the last number"
    );
    let page = ok(
        store.changes_after(bounds.last_seq - 3, 2).await,
        "changes_after",
    );
    assert_eq!(page.len(), 2, "limit bounds a page");
    assert_eq!(page[0].seq, bounds.last_seq - 2);
    assert!(ok(store.changes_after(0, 0).await, "changes_after").is_empty());
}

/// Purging drops the events before a time and every event before them,
/// and records how far it went; the numbering goes on. Needs a store of
/// its own: it purges other checks' events too.
pub async fn changes_purge(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    ok(store.insert(&fixture(owner)).await, "insert");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let cut = super::super::sql::changes::now_ms();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let kept = fixture(owner);
    ok(store.insert(&kept).await, "insert");
    let before = ok(store.change_log_bounds().await, "change_log_bounds");
    let purged = ok(store.purge_changes_before(cut).await, "purge");
    assert!(purged >= 1, "the first event went");
    let after = ok(store.change_log_bounds().await, "change_log_bounds");
    assert_eq!(after.last_seq, before.last_seq, "numbering unchanged");
    assert_eq!(after.purged_through, before.last_seq - 1);
    let left = ok(store.changes_after(0, 100).await, "changes_after");
    assert_eq!(left.len(), 1, "only the young event is left");
    assert_eq!(left[0].uuid, kept.uuid);
    assert_eq!(
        ok(store.purge_changes_before(cut).await, "purge again"),
        0,
        "a second purge finds nothing"
    );
    ok(store.insert(&fixture(owner)).await, "insert");
    let later = ok(store.change_log_bounds().await, "change_log_bounds");
    assert_eq!(
        later.last_seq,
        before.last_seq + 1,
        "numbers are never reused"
    );

    // Continuing another database's log.
    let other_end = later.last_seq + 100;
    ok(
        store.continue_change_log_after(other_end).await,
        "continue_change_log_after",
    );
    let moved = ok(store.change_log_bounds().await, "change_log_bounds");
    assert_eq!(
        (moved.purged_through, moved.last_seq),
        (other_end, other_end)
    );
    assert!(
        ok(store.changes_after(0, 100).await, "changes_after").is_empty(),
        "this log's older events do not pose as the other's"
    );
    let next = fixture(owner);
    ok(store.insert(&next).await, "insert");
    let page = ok(store.changes_after(other_end, 10).await, "changes_after");
    assert_eq!(page.len(), 1);
    assert_eq!((page[0].seq, page[0].uuid), (other_end + 1, next.uuid));
    ok(
        store.continue_change_log_after(other_end).await,
        "continue_change_log_after again",
    );
    let same = ok(store.change_log_bounds().await, "change_log_bounds");
    assert_eq!(
        same.last_seq,
        other_end + 1,
        "a log already past is left alone"
    );
}
