//! Conformance: webhook endpoints and their leases. Every check uses
//! endpoints of its own (fresh ids and names), so runs may share a
//! database and run at the same time.

use uuid::Uuid;

use super::ok;
use crate::{MetaError, MetaStore, StoredWebhook, WebhookProgress, WebhookSource};

fn hook(source: WebhookSource, cursor: i64) -> StoredWebhook {
    let mut hook = StoredWebhook::new(
        format!("conformance-{}", Uuid::new_v4().simple()),
        "https://receiver.example.com/hook".into(),
        "s3cret".into(),
        Some(vec!["image.created".into(), "image.deleted".into()]),
        source,
        cursor,
        1_700_000_000_000,
    );
    hook.last_error = Some("an old error".into());
    hook
}

/// The endpoint in `found`, which must be there.
fn present(found: Option<StoredWebhook>, what: &str) -> StoredWebhook {
    match found {
        Some(hook) => hook,
        None => panic!("{what}: no endpoint"),
    }
}

fn progress(cursor: i64, lease_expires_ms: i64) -> WebhookProgress {
    WebhookProgress {
        cursor,
        delivered: 1,
        failures: 0,
        next_attempt_ms: 0,
        last_error: None,
        last_status: Some(204),
        dead_since_ms: None,
        lease_expires_ms,
        last_delivered_ms: Some(1_700_000_000_500),
    }
}

/// Endpoints round-trip with every field, list, keep names unique and
/// delete once.
pub async fn webhooks_round_trip(store: &dyn MetaStore) {
    let first = hook(WebhookSource::Api, 7);
    let mut second = hook(WebhookSource::Api, 0);
    second.events = None;
    second.created_ms += 1;
    ok(store.insert_webhook(&first).await, "insert_webhook");
    ok(store.insert_webhook(&second).await, "insert_webhook");
    let again = store.insert_webhook(&first).await;
    assert!(
        matches!(again, Err(MetaError::AlreadyExists(id)) if id == first.id),
        "a taken id is AlreadyExists: {again:?}"
    );
    let mut same_name = hook(WebhookSource::Api, 0);
    same_name.name = first.name.clone();
    let taken = store.insert_webhook(&same_name).await;
    assert!(
        matches!(taken, Err(MetaError::AlreadyExists(id)) if id == same_name.id),
        "a taken name is AlreadyExists: {taken:?}"
    );
    let got = ok(store.get_webhook(first.id).await, "get_webhook");
    assert_eq!(got.as_ref(), Some(&first), "an endpoint round-trips");
    let listed: Vec<StoredWebhook> = ok(store.webhooks().await, "webhooks")
        .into_iter()
        .filter(|h| h.id == first.id || h.id == second.id)
        .collect();
    assert_eq!(listed, vec![first.clone(), second.clone()], "oldest first");
    assert!(ok(store.delete_webhook(first.id).await, "delete_webhook"));
    assert!(!ok(store.delete_webhook(first.id).await, "delete_webhook"));
    assert_eq!(ok(store.get_webhook(first.id).await, "get_webhook"), None);
    assert!(ok(store.delete_webhook(second.id).await, "delete_webhook"));
}

/// A configured endpoint is upserted by name: its definition changes, its
/// id, cursor and delivery state stay.
pub async fn webhooks_upsert_by_name(store: &dyn MetaStore) {
    let original = hook(WebhookSource::Config, 3);
    let stored = ok(
        store.upsert_webhook_by_name(&original).await,
        "upsert_webhook_by_name",
    );
    assert_eq!(stored, original, "a new name inserts the endpoint");
    let holder = format!("conformance-{}", Uuid::new_v4());
    assert!(ok(
        store.claim_webhook(original.id, &holder, 10, 1_000).await,
        "claim_webhook"
    )
    .is_some());
    assert!(ok(
        store
            .record_webhook_progress(original.id, &holder, &progress(9, 1_000))
            .await,
        "record_webhook_progress"
    ));
    let mut redefined = hook(WebhookSource::Config, 0);
    redefined.name = original.name.clone();
    redefined.url = "https://elsewhere.example.com/".into();
    redefined.secret = "new secret".into();
    redefined.events = None;
    let stored = ok(
        store.upsert_webhook_by_name(&redefined).await,
        "upsert_webhook_by_name",
    );
    assert_eq!(stored.id, original.id, "the row of that name is kept");
    assert_eq!(stored.url, redefined.url);
    assert_eq!(stored.secret, redefined.secret);
    assert_eq!(stored.events, None);
    assert_eq!(stored.cursor, 9, "the cursor survives the upsert");
    assert_eq!(stored.delivered, 1);
    assert!(ok(
        store.delete_webhook(original.id).await,
        "delete_webhook"
    ));
}

/// One holder at a time; only the holder writes progress; the cursor
/// never moves back; dead endpoints are not claimed until resumed.
pub async fn webhooks_leases(store: &dyn MetaStore) {
    let h = hook(WebhookSource::Api, 5);
    ok(store.insert_webhook(&h).await, "insert_webhook");
    let a = format!("conformance-a-{}", Uuid::new_v4());
    let b = format!("conformance-b-{}", Uuid::new_v4());
    let claimed = ok(store.claim_webhook(h.id, &a, 100, 1_000).await, "claim");
    let claimed = present(claimed, "a free endpoint is claimed");
    assert_eq!(claimed.lease_holder.as_deref(), Some(a.as_str()));
    assert_eq!(claimed.lease_expires_ms, Some(1_000));
    assert_eq!(claimed.cursor, 5);
    assert!(
        ok(store.claim_webhook(h.id, &b, 500, 2_000).await, "claim").is_none(),
        "a held lease is not taken"
    );
    assert!(
        ok(store.claim_webhook(h.id, &a, 500, 1_500).await, "claim").is_some(),
        "the holder renews"
    );
    assert!(
        !ok(
            store
                .record_webhook_progress(h.id, &b, &progress(6, 2_000))
                .await,
            "progress"
        ),
        "only the holder records progress"
    );
    assert!(ok(
        store
            .record_webhook_progress(h.id, &a, &progress(8, 1_600))
            .await,
        "progress"
    ));
    assert!(ok(
        store
            .record_webhook_progress(h.id, &a, &progress(6, 1_600))
            .await,
        "progress"
    ));
    let now = present(ok(store.get_webhook(h.id).await, "get"), "stored");
    assert_eq!(now.cursor, 8, "the cursor never moves back");
    assert_eq!(now.delivered, 2);
    assert_eq!(now.last_status, Some(204));
    assert_eq!(now.last_error, None);
    assert_eq!(now.lease_expires_ms, Some(1_600));
    // An expired lease goes to another instance; the old holder is out.
    let taken = ok(store.claim_webhook(h.id, &b, 1_601, 3_000).await, "claim");
    assert!(taken.is_some(), "an expired lease is taken over");
    assert!(!ok(
        store
            .record_webhook_progress(h.id, &a, &progress(9, 4_000))
            .await,
        "progress"
    ));
    assert!(!ok(store.release_webhook(h.id, &a).await, "release"));
    assert!(ok(store.release_webhook(h.id, &b).await, "release"));
    assert!(ok(store.claim_webhook(h.id, &a, 1_700, 5_000).await, "claim").is_some());
    // Dead-letter: the lease ends, nobody claims it until resumed.
    let dead = WebhookProgress {
        delivered: 0,
        failures: 3,
        next_attempt_ms: 9_000,
        last_error: Some("HTTP 500".into()),
        last_status: Some(500),
        dead_since_ms: Some(1_800),
        last_delivered_ms: None,
        ..progress(8, 5_000)
    };
    assert!(ok(
        store.record_webhook_progress(h.id, &a, &dead).await,
        "progress"
    ));
    let now = present(ok(store.get_webhook(h.id).await, "get"), "stored");
    assert!(now.dead);
    assert_eq!(now.dead_since_ms, Some(1_800));
    assert_eq!(now.failures, 3);
    assert_eq!(now.lease_holder, None);
    assert_eq!(now.last_delivered_ms, Some(1_700_000_000_500), "kept");
    assert!(ok(
        store.claim_webhook(h.id, &b, 99_999, 100_000).await,
        "claim"
    )
    .is_none());
    assert!(ok(store.resume_webhook(h.id, None).await, "resume"));
    let now = present(ok(store.get_webhook(h.id).await, "get"), "stored");
    assert!(!now.dead);
    assert_eq!((now.failures, now.next_attempt_ms, now.cursor), (0, 0, 8));
    assert_eq!(now.last_error.as_deref(), Some("HTTP 500"), "history stays");
    // A resume ends a lease in flight and may move the cursor.
    assert!(ok(store.claim_webhook(h.id, &a, 2_000, 9_000).await, "claim").is_some());
    assert!(ok(store.resume_webhook(h.id, Some(2)).await, "resume"));
    assert!(!ok(
        store
            .record_webhook_progress(h.id, &a, &progress(9, 9_000))
            .await,
        "progress"
    ));
    let now = present(ok(store.get_webhook(h.id).await, "get"), "stored");
    assert_eq!((now.cursor, now.lease_holder), (2, None));
    assert!(!ok(
        store.resume_webhook(Uuid::new_v4(), None).await,
        "resume"
    ));
    assert!(ok(store.delete_webhook(h.id).await, "delete_webhook"));
    assert!(ok(store.claim_webhook(h.id, &a, 0, 1).await, "claim").is_none());
}

/// Racing claims of one endpoint: exactly one wins.
pub async fn webhooks_claim_race(store: &dyn MetaStore) {
    let h = hook(WebhookSource::Api, 0);
    ok(store.insert_webhook(&h).await, "insert_webhook");
    let claims = (0..8).map(|i| {
        let holder = format!("conformance-race-{i}-{}", Uuid::new_v4());
        async move { store.claim_webhook(h.id, &holder, 10, 60_000).await }
    });
    let results = super::futures_join_all(claims).await;
    let won = results
        .into_iter()
        .map(|r| ok(r, "claim_webhook"))
        .filter(Option::is_some)
        .count();
    assert_eq!(won, 1, "exactly one racing claim wins");
    assert!(ok(store.delete_webhook(h.id).await, "delete_webhook"));
}
