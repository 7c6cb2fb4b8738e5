//! Retention rules added through the operator API (docs/lifecycle.md
//! "Retention rules"): the [`RetentionRuleStore`] role. Rules from the
//! configuration file are not stored; the server lists both.

use async_trait::async_trait;
use uuid::Uuid;

use crate::MetaError;

/// One stored rule: per owner (or every owner, `None`) and name pattern,
/// keep the newest `keep_versions` and/or those published within
/// `keep_days`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRetentionRule {
    pub id: Uuid,
    pub owner: Option<Uuid>,
    pub name: String,
    pub keep_versions: Option<u32>,
    pub keep_days: Option<u32>,
    /// ISO 8601, as the rule was added.
    pub created_at: String,
}

/// Retention rules of the operator API, shared by every instance.
#[async_trait]
pub trait RetentionRuleStore: Send + Sync + 'static {
    /// Every stored rule, oldest first (ties by id).
    async fn retention_rules(&self) -> Result<Vec<StoredRetentionRule>, MetaError>;

    /// Store a new rule. `MetaError::AlreadyExists` if its id is taken.
    async fn insert_retention_rule(&self, rule: &StoredRetentionRule) -> Result<(), MetaError>;

    /// Delete a rule; `Ok(false)` if there was none with this id.
    async fn delete_retention_rule(&self, id: Uuid) -> Result<bool, MetaError>;
}
