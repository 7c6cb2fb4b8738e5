//! Conformance checks of [`crate::ImageSignatureStore`]. The store keeps
//! what it is given (the service verifies), so the rows here are plain text.

use imgapi_types::ChangeKind;
use uuid::Uuid;

use super::{fixture, ok};
use crate::{BinEntry, MetaError, MetaStore, StoredSignature};

fn signature(uuid: Uuid, key_id: &str, added_ms: i64) -> StoredSignature {
    StoredSignature {
        uuid,
        key_id: key_id.to_owned(),
        fingerprint: format!("SHA256:{key_id}"),
        algorithm: "ssh-ed25519".into(),
        public_key: format!("ssh-ed25519 AAAA{key_id}"),
        signature: format!(
            "-----BEGIN SSH SIGNATURE-----\n{key_id}\n-----END SSH SIGNATURE-----\n"
        ),
        added_ms,
        added_by: "operator".into(),
    }
}

/// Put (insert, replace by key), list in order, remove; a put on a missing
/// image or another revision changes nothing; each change bumps the
/// generation and leaves its event; signatures stay through the recycle bin
/// and go with the image for good (delete, purge, uuid change).
pub async fn signatures_follow_the_image(store: &dyn MetaStore) {
    let img = fixture(Uuid::new_v4());
    let revision = ok(store.insert(&img).await, "insert");
    let uuid = img.uuid;
    assert_eq!(ok(store.image_signatures(uuid).await, "list"), vec![]);

    let before = ok(store.generation().await, "generation");
    let start = ok(store.change_log_bounds().await, "bounds").last_seq;
    let b = signature(uuid, "bbbb", 2_000);
    ok(store.put_image_signature(&b, Some(revision)).await, "put b");
    assert!(ok(store.generation().await, "generation") > before);
    let a = signature(uuid, "aaaa", 1_000);
    ok(store.put_image_signature(&a, None).await, "put a");
    assert_eq!(
        ok(store.image_signatures(uuid).await, "list"),
        vec![a.clone(), b.clone()],
        "oldest first"
    );
    let mut b2 = signature(uuid, "bbbb", 3_000);
    b2.signature.push_str("again");
    ok(store.put_image_signature(&b2, None).await, "replace b");
    assert_eq!(
        ok(store.image_signatures(uuid).await, "list"),
        vec![a.clone(), b2.clone()],
        "one signature per key"
    );

    // Stale revision or missing image: nothing changes.
    let got = store
        .put_image_signature(&signature(uuid, "cccc", 4_000), Some(revision + 1_000))
        .await;
    assert!(
        matches!(got, Err(MetaError::Conflict(u)) if u == uuid),
        "{got:?}"
    );
    let ghost = Uuid::new_v4();
    let got = store
        .put_image_signature(&signature(ghost, "cccc", 4_000), None)
        .await;
    assert!(
        matches!(got, Err(MetaError::NotFound(u)) if u == ghost),
        "{got:?}"
    );
    assert_eq!(ok(store.image_signatures(uuid).await, "list").len(), 2);
    assert_eq!(ok(store.image_signatures(ghost).await, "list"), vec![]);

    assert!(ok(
        store.remove_image_signature(uuid, "aaaa").await,
        "remove a"
    ));
    assert!(!ok(
        store.remove_image_signature(uuid, "aaaa").await,
        "remove a again"
    ));
    let events = ok(store.changes_after(start, 100).await, "changes");
    let ours: Vec<(ChangeKind, Vec<String>)> = events
        .iter()
        .filter(|e| e.uuid == uuid)
        .map(|e| (e.kind, e.fields.clone()))
        .collect();
    assert_eq!(
        ours,
        vec![
            (ChangeKind::SignatureAdded, vec!["bbbb".to_owned()]),
            (ChangeKind::SignatureAdded, vec!["aaaa".to_owned()]),
            (ChangeKind::SignatureAdded, vec!["bbbb".to_owned()]),
            (ChangeKind::SignatureRemoved, vec!["aaaa".to_owned()]),
        ],
        "one event per change, none for a removal of nothing"
    );

    // Through the recycle bin and back, then gone for good with a purge.
    let Some(stored) = ok(store.get(uuid).await, "get") else {
        panic!("image {uuid} vanished");
    };
    let entry = BinEntry {
        image: stored.image.clone(),
        deleted_ms: 1,
        expires_ms: 2,
        deleted_by: None,
        deprecated_ms: None,
    };
    ok(store.move_to_bin(&entry, stored.revision).await, "to bin");
    assert_eq!(
        ok(store.image_signatures(uuid).await, "list").len(),
        1,
        "kept in the bin"
    );
    ok(store.restore_from_bin(uuid).await, "restore");
    assert_eq!(
        ok(store.image_signatures(uuid).await, "list"),
        vec![b2.clone()]
    );
    let Some(stored) = ok(store.get(uuid).await, "get") else {
        panic!("image {uuid} was not restored");
    };
    ok(
        store.move_to_bin(&entry, stored.revision).await,
        "to bin again",
    );
    assert!(ok(store.remove_from_bin(uuid).await, "purge"));
    assert_eq!(
        ok(store.image_signatures(uuid).await, "list"),
        vec![],
        "purged"
    );

    // A plain delete.
    let img = fixture(Uuid::new_v4());
    ok(store.insert(&img).await, "insert");
    ok(
        store
            .put_image_signature(&signature(img.uuid, "dddd", 1), None)
            .await,
        "put",
    );
    assert!(ok(store.delete(img.uuid).await, "delete"));
    assert_eq!(ok(store.image_signatures(img.uuid).await, "list"), vec![]);

    // A uuid change: the signatures named the old uuid.
    let img = fixture(Uuid::new_v4());
    let revision = ok(store.insert(&img).await, "insert");
    ok(
        store
            .put_image_signature(&signature(img.uuid, "eeee", 1), None)
            .await,
        "put",
    );
    let mut renamed = img.clone();
    renamed.uuid = Uuid::new_v4();
    ok(store.rename(img.uuid, revision, &renamed).await, "rename");
    assert_eq!(ok(store.image_signatures(img.uuid).await, "list"), vec![]);
    assert_eq!(
        ok(store.image_signatures(renamed.uuid).await, "list"),
        vec![]
    );
}

/// `image_signatures_after` pages every signature in (uuid, key) order.
pub async fn signatures_paging(store: &dyn MetaStore) {
    let mut mine = Vec::new();
    for _ in 0..3 {
        let img = fixture(Uuid::new_v4());
        ok(store.insert(&img).await, "insert");
        for key in ["k1", "k2"] {
            let s = signature(img.uuid, key, 1);
            ok(store.put_image_signature(&s, None).await, "put");
            mine.push(s);
        }
    }
    mine.sort_by(|a, b| (a.uuid.to_string(), &a.key_id).cmp(&(b.uuid.to_string(), &b.key_id)));
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = ok(store.image_signatures_after(after.clone(), 4).await, "page");
        let Some(last) = page.last() else { break };
        after = Some((last.uuid, last.key_id.clone()));
        seen.extend(page);
    }
    let ours: Vec<StoredSignature> = seen
        .into_iter()
        .filter(|s| mine.iter().any(|m| m.uuid == s.uuid))
        .collect();
    assert_eq!(ours, mine, "every signature once, in (uuid, key) order");
}
