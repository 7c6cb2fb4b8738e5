//! Retention rules (docs/lifecycle.md "Retention rules"): the rules of
//! `[retention]` and of the operator API (`/retention/rules`), the plan
//! they make (`imgapi_domain::retention`), and its execution as a
//! `retention` job (`/retention/runs`, scheduled by `interval_hours`).

use std::collections::BTreeSet;

use imgapi_domain::filter::{ImageQuery, Predicate, SortOrder};
use imgapi_domain::image::now_iso;
use imgapi_domain::retention::{self as rules, Plan, PlanImage, Rule, RuleSpec};
use imgapi_domain::{ImageRecord, ImageState};
use imgapi_meta::{JobExecution, JobRecord, StoredRetentionRule};
use imgapi_types::{FieldError, RetentionPlan, RetentionPlanImage, RetentionRule};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::app::AppState;
use crate::service::ServiceError;

pub mod run;
pub mod schedule;

/// The job name (and `params.task`) of retention runs.
pub const RETENTION_TASK: &str = "retention";
/// Images read per page while planning.
const PAGE: u32 = 500;
/// The id prefix of configured rules.
const CONFIG_PREFIX: &str = "config-";

/// Every rule: the configured ones first (`config-1`, …), then those of
/// the API, oldest first.
pub async fn list_rules(app: &AppState) -> Result<Vec<RetentionRule>, ServiceError> {
    let mut out: Vec<RetentionRule> = app
        .config
        .retention
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| RetentionRule {
            id: format!("{CONFIG_PREFIX}{}", i + 1),
            source: "config".into(),
            owner: r.owner,
            name: r.name.clone(),
            keep_versions: r.keep_versions,
            keep_days: r.keep_days,
            created_at: None,
        })
        .collect();
    out.extend(stored_rules(app).await?.into_iter().map(|r| RetentionRule {
        id: r.id.to_string(),
        source: "api".into(),
        owner: r.owner,
        name: r.name,
        keep_versions: r.keep_versions,
        keep_days: r.keep_days,
        created_at: Some(r.created_at),
    }));
    Ok(out)
}

async fn stored_rules(app: &AppState) -> Result<Vec<StoredRetentionRule>, ServiceError> {
    app.meta
        .retention_rules()
        .await
        .map_err(ServiceError::meta("error loading retention rules"))
}

/// The rules as the planner takes them.
async fn planner_rules(app: &AppState) -> Result<Vec<Rule>, ServiceError> {
    Ok(list_rules(app)
        .await?
        .into_iter()
        .map(|r| Rule {
            id: r.id,
            spec: RuleSpec {
                owner: r.owner,
                name: r.name,
                keep_versions: r.keep_versions,
                keep_days: r.keep_days,
            },
        })
        .collect())
}

/// AddRetentionRule: the body `{"owner"?, "name", "keep_versions"?,
/// "keep_days"?}`, checked and stored.
pub async fn add_rule(app: &AppState, body: Option<Value>) -> Result<RetentionRule, ServiceError> {
    let spec = parse_rule(body)?;
    let rule = StoredRetentionRule {
        id: Uuid::new_v4(),
        owner: spec.owner,
        name: spec.name,
        keep_versions: spec.keep_versions,
        keep_days: spec.keep_days,
        created_at: now_iso(),
    };
    app.meta
        .insert_retention_rule(&rule)
        .await
        .map_err(ServiceError::meta("error storing the retention rule"))?;
    tracing::info!(rule = %rule.id, name = %rule.name, "retention rule added");
    Ok(RetentionRule {
        id: rule.id.to_string(),
        source: "api".into(),
        owner: rule.owner,
        name: rule.name,
        keep_versions: rule.keep_versions,
        keep_days: rule.keep_days,
        created_at: Some(rule.created_at),
    })
}

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::invalid_parameter(message, vec![FieldError::invalid(field)])
}

fn parse_rule(body: Option<Value>) -> Result<RuleSpec, ServiceError> {
    let Some(Value::Object(fields)) = body else {
        return Err(invalid(
            "name",
            "a retention rule needs a JSON object body (Content-Type: application/json) with \"name\" and \"keep_versions\" and/or \"keep_days\"",
        ));
    };
    if let Some(extra) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "owner" | "name" | "keep_versions" | "keep_days"))
    {
        return Err(invalid(
            extra,
            format!("unknown field \"{extra}\" (fields: owner, name, keep_versions, keep_days)"),
        ));
    }
    let owner = match fields.get("owner") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if imgapi_domain::validate::is_lower_uuid(s) => {
            Uuid::parse_str(s).ok()
        }
        Some(other) => {
            return Err(invalid(
                "owner",
                format!("invalid \"owner\": {other} is not a UUID"),
            ))
        }
    };
    let name = match fields.get("name") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(invalid("name", "\"name\" (a string) is required")),
    };
    let count = |field: &'static str| -> Result<Option<u32>, ServiceError> {
        match fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    invalid(
                        field,
                        format!("\"{field}\" must be a positive integer (got {v})"),
                    )
                }),
        }
    };
    let spec = RuleSpec {
        owner,
        name,
        keep_versions: count("keep_versions")?,
        keep_days: count("keep_days")?,
    };
    spec.validate().map_err(|e| invalid(e.field, e.message))?;
    Ok(spec)
}

/// DeleteRetentionRule: rules of the configuration file stay (edit the
/// file), unknown ids are 404.
pub async fn delete_rule(app: &AppState, id: &str) -> Result<(), ServiceError> {
    if id.starts_with(CONFIG_PREFIX) {
        return Err(invalid(
            "id",
            format!(
                "retention rule \"{id}\" comes from the configuration file ([retention] rules): remove it there and restart"
            ),
        ));
    }
    let not_found = || ServiceError::not_found(format!("retention rule \"{id}\" not found"));
    let uuid = Uuid::parse_str(id).map_err(|_| not_found())?;
    let deleted = app
        .meta
        .delete_retention_rule(uuid)
        .await
        .map_err(ServiceError::meta(format!(
            "error deleting retention rule {id}"
        )))?;
    if !deleted {
        return Err(not_found());
    }
    tracing::info!(rule = %uuid, "retention rule deleted");
    Ok(())
}

/// The images that cannot be deleted now, of `among`: the protected ones
/// (docs/lifecycle.md, Protection).
pub async fn protected_images(
    app: &AppState,
    among: &[Uuid],
) -> Result<BTreeSet<Uuid>, ServiceError> {
    let protected = app
        .meta
        .protected_images()
        .await
        .map_err(ServiceError::meta(
            "error loading the protected images".to_owned(),
        ))?;
    let among: BTreeSet<Uuid> = among.iter().copied().collect();
    Ok(protected
        .into_iter()
        .filter(|u| among.contains(u))
        .collect())
}

/// What the planner needs of a record.
pub(crate) fn plan_image(image: &ImageRecord) -> PlanImage {
    PlanImage {
        uuid: image.uuid,
        owner: image.owner,
        name: image.name.clone(),
        version: image.version.clone(),
        published_at: image.published_at.clone(),
        published_ms: image.published_at_ms(),
        origin: image.origin,
        active: image.state == ImageState::Active,
    }
}

/// Every published image (any state or owner: an image out of the rules'
/// scope still holds on to its origins), read page by page in
/// `published_at` order, never in one query.
async fn published_images(app: &AppState) -> Result<Vec<PlanImage>, ServiceError> {
    let mut out: Vec<PlanImage> = Vec::new();
    let mut seen: BTreeSet<Uuid> = BTreeSet::new();
    let mut from = i64::MIN;
    let mut limit = PAGE;
    loop {
        let query = ImageQuery {
            any_of: vec![vec![Predicate::PublishedAtGe(from)]],
            order: SortOrder::Asc,
            limit: Some(limit),
        };
        let page = app
            .meta
            .list(&query)
            .await
            .map_err(ServiceError::meta("error listing images for retention"))?;
        let full = page.len() >= usize::try_from(limit).unwrap_or(usize::MAX);
        let last = page.last().and_then(ImageRecord::published_at_ms);
        let mut new = 0;
        for image in &page {
            if seen.insert(image.uuid) {
                out.push(plan_image(image));
                new += 1;
            }
        }
        match last {
            Some(ms) if full => {
                // A page of one instant only (or nothing new): widen the
                // page rather than loop on the same marker.
                if ms == from || new == 0 {
                    limit = limit.saturating_mul(2);
                } else {
                    limit = PAGE;
                }
                from = ms;
            }
            _ => return Ok(out),
        }
    }
}

/// The plan of the current rules for the images stored now.
pub async fn plan_now(app: &AppState) -> Result<Plan, ServiceError> {
    let rules = planner_rules(app).await?;
    if rules.is_empty() {
        return Ok(Plan::default());
    }
    let mut images = published_images(app).await?;
    let uuids: Vec<Uuid> = images.iter().map(|i| i.uuid).collect();
    let protected = protected_images(app, &uuids).await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    // Images never published (unactivated) are not read above; those that
    // name a planned image as their origin are added, and the plan made
    // again, until no planned image has a dependent the planner has not
    // seen. Each round adds at least one image, so this ends.
    loop {
        let plan = rules::plan(&rules, &images, now_ms, &protected);
        let unseen = unseen_dependents(app, &plan, &images).await?;
        if unseen.is_empty() {
            return Ok(plan);
        }
        images.extend(unseen);
    }
}

/// Images the planner has not seen whose origin is a planned image.
async fn unseen_dependents(
    app: &AppState,
    plan: &Plan,
    images: &[PlanImage],
) -> Result<Vec<PlanImage>, ServiceError> {
    let known: BTreeSet<Uuid> = images.iter().map(|i| i.uuid).collect();
    let mut out = Vec::new();
    for planned in &plan.delete {
        let uuid = planned.image.uuid;
        let dependents = app
            .meta
            .dependents(uuid, None)
            .await
            .map_err(ServiceError::meta(format!(
                "error loading dependents of {uuid}"
            )))?;
        for dependent in dependents.into_iter().filter(|d| !known.contains(d)) {
            let stored = app
                .meta
                .get(dependent)
                .await
                .map_err(ServiceError::meta(format!(
                    "error loading image {dependent}"
                )))?;
            out.extend(stored.map(|s| plan_image(&s.image)));
        }
    }
    Ok(out)
}

/// A plan on the wire.
pub fn plan_body(plan: &Plan) -> RetentionPlan {
    let entry = |p: &rules::Planned, reason: Option<String>| RetentionPlanImage {
        uuid: p.image.uuid,
        owner: p.image.owner,
        name: p.image.name.clone(),
        version: p.image.version.clone(),
        published_at: p.image.published_at.clone(),
        rule: p.rule.clone(),
        reason,
    };
    RetentionPlan {
        delete: plan.delete.iter().map(|p| entry(p, None)).collect(),
        kept: plan
            .kept
            .iter()
            .map(|(p, why)| entry(p, Some(why.to_string())))
            .collect(),
    }
}

/// RunRetention with `dry_run=true`: the plan, nothing deleted.
pub async fn dry_run(app: &AppState) -> Result<RetentionPlan, ServiceError> {
    Ok(plan_body(&plan_now(app).await?))
}

/// A queued retention job (not yet stored).
fn new_job() -> JobRecord {
    JobRecord {
        uuid: Uuid::new_v4(),
        image_uuid: Uuid::nil(),
        name: RETENTION_TASK.into(),
        execution: JobExecution::Queued,
        params: json!({ "task": RETENTION_TASK }),
        chain_results: Vec::new(),
        created_at: now_iso(),
        started_at: None,
        finished_at: None,
        lease: None,
        attempts: 0,
    }
}

/// ListRetentionRuns: the retention jobs (kept as long as the job
/// retention keeps finished jobs), newest first.
pub async fn list_runs(app: &AppState) -> Result<Vec<JobRecord>, ServiceError> {
    let mut jobs = app
        .meta
        .image_jobs(Uuid::nil())
        .await
        .map_err(ServiceError::meta("error loading retention jobs"))?;
    jobs.retain(|j| j.name == RETENTION_TASK);
    jobs.reverse();
    Ok(jobs)
}

/// RunRetention: queue a retention job, wake this instance's runner.
pub async fn start_run(app: &AppState) -> Result<JobRecord, ServiceError> {
    let job = new_job();
    app.meta
        .insert_job(&job)
        .await
        .map_err(ServiceError::meta("error creating the retention job"))?;
    app.jobs.wake();
    tracing::info!(job = %job.uuid, "retention job queued");
    Ok(job)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rule_bodies() {
        let ok = parse_rule(Some(json!({"name": "base-*", "keep_versions": 2}))).unwrap();
        assert_eq!(ok.keep_versions, Some(2));
        assert!(parse_rule(None).is_err());
        assert!(parse_rule(Some(json!({"name": "x"}))).is_err());
        assert!(parse_rule(Some(json!({"name": "x", "keep_days": -1}))).is_err());
        assert!(parse_rule(Some(json!({"name": "x", "keep_days": 1, "bogus": 1}))).is_err());
        assert!(parse_rule(Some(json!({"name": "x", "keep_days": 1, "owner": "nope"}))).is_err());
    }
}
