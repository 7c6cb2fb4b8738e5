//! Retention rules (an IMGAPI extension, docs/lifecycle.md "Retention
//! rules"): what `/retention/rules` and a dry run of `/retention/runs`
//! answer.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One retention rule, from the configuration file or the operator API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RetentionRule {
    /// `config-N` for the N-th rule of `[retention] rules`, a UUID for a
    /// rule added through the API (DeleteRetentionRule takes it).
    pub id: String,
    /// Where the rule comes from.
    #[schemars(extend("enum" = ["config", "api"]))]
    pub source: String,
    /// The owner whose images the rule applies to; `null` = every owner.
    pub owner: Option<Uuid>,
    /// Image name, or a pattern with `*` (any run of characters) and `?`
    /// (one character).
    pub name: String,
    /// Keep the newest N active versions of each (owner, name).
    pub keep_versions: Option<u32>,
    /// Keep the images published within the last D days.
    pub keep_days: Option<u32>,
    /// When an API rule was added (ISO 8601); absent for config rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// An image of a retention plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RetentionPlanImage {
    pub uuid: Uuid,
    pub owner: Uuid,
    pub name: String,
    pub version: String,
    pub published_at: Option<String>,
    /// The id of the rule that selected the image.
    pub rule: String,
    /// `kept` only: why the image stays (`protected`, `origin of UUID`,
    /// `last active version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a retention run removes (`delete`, oldest first) and which images
/// a rule selected that stay anyway (`kept`, with the reason).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct RetentionPlan {
    pub delete: Vec<RetentionPlanImage>,
    pub kept: Vec<RetentionPlanImage>,
}
