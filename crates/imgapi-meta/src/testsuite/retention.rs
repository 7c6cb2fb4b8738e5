//! Conformance: retention rules of the operator API.

use uuid::Uuid;

use super::ok;
use crate::{MetaError, MetaStore, StoredRetentionRule};

/// Rules round-trip with every field (absent ones too), list oldest
/// first, and delete once; a taken id is `AlreadyExists`.
pub async fn retention_rules_round_trip(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let first = StoredRetentionRule {
        id: Uuid::new_v4(),
        owner: Some(owner),
        name: "base-*".into(),
        keep_versions: Some(3),
        keep_days: None,
        created_at: "2026-01-01T00:00:00.000Z".into(),
    };
    let second = StoredRetentionRule {
        id: Uuid::new_v4(),
        owner: None,
        name: "exact".into(),
        keep_versions: None,
        keep_days: Some(30),
        created_at: "2026-01-02T00:00:00.000Z".into(),
    };
    ok(
        store.insert_retention_rule(&second).await,
        "insert_retention_rule",
    );
    ok(
        store.insert_retention_rule(&first).await,
        "insert_retention_rule",
    );
    let again = store.insert_retention_rule(&first).await;
    assert!(
        matches!(again, Err(MetaError::AlreadyExists(id)) if id == first.id),
        "a taken rule id is AlreadyExists: {again:?}"
    );
    let listed: Vec<StoredRetentionRule> = ok(store.retention_rules().await, "retention_rules")
        .into_iter()
        .filter(|r| r.id == first.id || r.id == second.id)
        .collect();
    assert_eq!(
        listed,
        vec![first.clone(), second.clone()],
        "rules round-trip, oldest first"
    );
    assert!(ok(
        store.delete_retention_rule(first.id).await,
        "delete_retention_rule"
    ));
    assert!(!ok(
        store.delete_retention_rule(first.id).await,
        "delete_retention_rule"
    ));
    assert!(ok(
        store.delete_retention_rule(second.id).await,
        "delete_retention_rule"
    ));
    let left = ok(store.retention_rules().await, "retention_rules");
    assert!(left.iter().all(|r| r.id != first.id && r.id != second.id));
}
