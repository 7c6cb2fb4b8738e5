//! Conformance checks of [`crate::RecycleBinStore`].

use imgapi_domain::ImageState;
use uuid::Uuid;

use super::{fixture, ok, rich_fixture, upload_fixture};
use crate::{BinEntry, MetaError, MetaStore};

fn entry(image: imgapi_domain::ImageRecord, deleted_ms: i64, expires_ms: i64) -> BinEntry {
    BinEntry {
        image,
        deleted_ms,
        expires_ms,
        deleted_by: Some("tester".into()),
        deprecated_ms: None,
    }
}

/// Move to the bin, get, list, restore, purge; the uuid stays taken
/// while binned; every move bumps the generation.
pub async fn recycle_bin_move_restore_purge(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let img = rich_fixture(owner);
    let revision = ok(store.insert(&img).await, "insert");
    let before = ok(store.generation().await, "generation");
    let binned = entry(img.clone(), 1_000, 2_000);
    ok(store.move_to_bin(&binned, revision).await, "move_to_bin");
    assert!(
        ok(store.generation().await, "generation") > before,
        "move_to_bin must bump the generation"
    );
    assert_eq!(
        ok(store.get(img.uuid).await, "get"),
        None,
        "binned image left images"
    );
    let got = ok(store.binned(img.uuid).await, "binned");
    assert_eq!(got.as_ref(), Some(&binned), "bin entry round-trips");
    assert_eq!(binned.size(), img.files.iter().map(|f| f.size).sum::<u64>());

    match store.insert(&img).await {
        Err(MetaError::AlreadyExists(u)) => assert_eq!(u, img.uuid),
        other => panic!("insert of a binned uuid must be AlreadyExists, got {other:?}"),
    }
    let listed = ok(store.list_bin(Some(owner), 0, 10).await, "list_bin");
    assert_eq!(listed, vec![binned.clone()], "list_bin by owner");
    assert!(ok(
        store.list_bin(Some(Uuid::new_v4()), 0, 10).await,
        "list_bin"
    )
    .is_empty());
    let usage = ok(store.bin_usage(Some(owner)).await, "bin_usage");
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].owner, usage[0].images), (owner, 1));
    assert_eq!(usage[0].bytes, binned.size());

    let restored = ok(store.restore_from_bin(img.uuid).await, "restore");
    let Some(back) = ok(store.get(img.uuid).await, "get") else {
        panic!("restore_from_bin must put the record back");
    };
    assert_eq!(back.image, img, "restored record is the deleted one");
    assert_eq!(back.revision, restored);
    assert_eq!(ok(store.binned(img.uuid).await, "binned"), None);
    assert!(ok(store.bin_usage(Some(owner)).await, "bin_usage").is_empty());
    match store.restore_from_bin(img.uuid).await {
        Err(MetaError::NotFound(_)) => {}
        other => panic!("restore of a uuid not in the bin must be NotFound, got {other:?}"),
    }

    ok(
        store.move_to_bin(&binned, back.revision).await,
        "move_to_bin",
    );
    assert!(ok(store.remove_from_bin(img.uuid).await, "remove_from_bin"));
    assert!(!ok(
        store.remove_from_bin(img.uuid).await,
        "remove_from_bin"
    ));
    ok(store.insert(&img).await, "insert after purge");
}

/// A stale revision is a Conflict and leaves both tables as they were;
/// restore onto a taken uuid is AlreadyExists and keeps the entry.
pub async fn recycle_bin_conflicts(store: &dyn MetaStore) {
    let img = fixture(Uuid::new_v4());
    let revision = ok(store.insert(&img).await, "insert");
    let mut changed = img.clone();
    changed.description = Some("changed".into());
    ok(store.update(&changed, revision).await, "update");
    match store.move_to_bin(&entry(img.clone(), 1, 2), revision).await {
        Err(MetaError::Conflict(u)) => assert_eq!(u, img.uuid),
        other => panic!("move_to_bin at a stale revision must be Conflict, got {other:?}"),
    }
    assert_eq!(
        ok(store.binned(img.uuid).await, "binned"),
        None,
        "rolled back"
    );
    assert!(ok(store.get(img.uuid).await, "get").is_some());
    let missing = fixture(Uuid::new_v4());
    match store.move_to_bin(&entry(missing, 1, 2), 1).await {
        Err(MetaError::NotFound(_)) => {}
        other => panic!("move_to_bin of a missing image must be NotFound, got {other:?}"),
    }

    // Force the uuid to be both binned and live (restore refuses).
    let Some(current) = ok(store.get(img.uuid).await, "get") else {
        panic!("a failed move_to_bin must leave the record");
    };
    ok(
        store
            .move_to_bin(&entry(current.image.clone(), 1, 2), current.revision)
            .await,
        "bin",
    );
    ok(store.put(&current.image).await, "put");
    match store.restore_from_bin(img.uuid).await {
        Err(MetaError::AlreadyExists(_)) => {}
        other => panic!("restore onto a live uuid must be AlreadyExists, got {other:?}"),
    }
    assert!(
        ok(store.binned(img.uuid).await, "binned").is_some(),
        "entry kept"
    );
    let Some(live) = ok(store.get(img.uuid).await, "get") else {
        panic!("the put record is live");
    };
    match store
        .move_to_bin(&entry(live.image, 1, 2), live.revision)
        .await
    {
        Err(MetaError::AlreadyExists(_)) => {}
        other => panic!("binning a uuid the bin holds must be AlreadyExists, got {other:?}"),
    }
    assert!(
        ok(store.get(img.uuid).await, "get").is_some(),
        "rolled back"
    );
    ok(store.remove_from_bin(img.uuid).await, "cleanup");
    ok(store.delete(img.uuid).await, "cleanup");
}

/// Expired entries by expiry, and abandoned (never activated) images by age.
pub async fn recycle_bin_expiry_and_abandoned(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let mut uuids = Vec::new();
    for expires in [100, 200, i64::MAX - 1] {
        let img = fixture(owner);
        let revision = ok(store.insert(&img).await, "insert");
        ok(
            store
                .move_to_bin(&entry(img.clone(), 50, expires), revision)
                .await,
            "bin",
        );
        uuids.push(img.uuid);
    }
    let expired = ok(store.expired_bin_entries(1_000, 1_000).await, "expired");
    let mine: Vec<Uuid> = expired
        .iter()
        .map(|e| e.image.uuid)
        .filter(|u| uuids.contains(u))
        .collect();
    assert_eq!(mine, uuids[..2].to_vec(), "expired, oldest expiry first");
    for uuid in &uuids {
        ok(store.remove_from_bin(*uuid).await, "cleanup");
    }

    let fresh = fixture(owner);
    ok(store.insert(&fresh).await, "insert");
    let mut active = fixture(owner);
    active.state = ImageState::Active;
    active.activated = true;
    ok(store.insert(&active).await, "insert");
    let future = i64::MAX;
    let abandoned = ok(store.abandoned_images(future, 100_000).await, "abandoned");
    assert!(abandoned.contains(&fresh.uuid), "unactivated counts");
    assert!(!abandoned.contains(&active.uuid), "activated never does");
    let none = ok(store.abandoned_images(0, 100_000).await, "abandoned");
    assert!(!none.contains(&fresh.uuid), "created after the cut-off");
    let mut upload = upload_fixture(i64::MAX);
    upload.image_uuid = fresh.uuid;
    ok(store.insert_upload(&upload).await, "insert_upload");
    let sessions = ok(store.uploads_of_image(fresh.uuid).await, "uploads_of_image");
    assert_eq!(sessions, vec![upload.clone()], "an image's upload sessions");
    assert!(ok(
        store.uploads_of_image(active.uuid).await,
        "uploads_of_image"
    )
    .is_empty());
    ok(store.delete_upload(upload.id).await, "cleanup");
    ok(store.delete(fresh.uuid).await, "cleanup");
    ok(store.delete(active.uuid).await, "cleanup");
}
