//! `imgadm retention rules|add|delete|run` (operators; docs/lifecycle.md
//! "Retention rules"): the retention rules, and a run (or its plan).

use std::time::Duration;

use clap::{Args, Subcommand};
use imgapi_client::RetentionPlan;
use serde_json::json;
use uuid::Uuid;

use super::{print_json, Ctx, Failure};
use crate::output;
use crate::stdout::{out, outln};

#[derive(Debug, Args)]
pub struct RetentionArgs {
    #[command(subcommand)]
    pub action: RetentionAction,
}

#[derive(Debug, Subcommand)]
pub enum RetentionAction {
    /// List the rules, those of the server's configuration (`config-N`) too.
    Rules {
        /// Omit the header row.
        #[arg(short = 'H')]
        no_header: bool,
    },
    /// Add a rule: per owner (default: every owner) and name pattern (`*`, `?`),
    /// keep the newest N versions and/or those published within D days.
    Add {
        /// Owner whose images the rule applies to.
        #[arg(long)]
        owner: Option<Uuid>,
        /// Image name, or a pattern with `*` and `?`.
        #[arg(long)]
        name: String,
        /// Keep the newest N active versions of each owner and name.
        #[arg(long)]
        keep_versions: Option<u32>,
        /// Keep the images published within the last D days.
        #[arg(long)]
        keep_days: Option<u32>,
    },
    /// Delete a rule added with `add` (by its id).
    Delete {
        /// The rule's id.
        id: String,
    },
    /// Run the rules now: wait for the job and print its result (progress on
    /// stderr); with --dry-run, print what would be deleted and kept.
    Run {
        /// Print the plan; delete nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
}

/// How often a running job is looked at.
const POLL: Duration = Duration::from_millis(500);

pub async fn run(ctx: &Ctx, args: RetentionArgs) -> Result<(), Failure> {
    match args.action {
        RetentionAction::Rules { no_header } => rules(ctx, no_header).await,
        RetentionAction::Add {
            owner,
            name,
            keep_versions,
            keep_days,
        } => {
            if keep_versions.is_none() && keep_days.is_none() {
                return Err(Failure::usage(
                    "a rule needs --keep-versions and/or --keep-days",
                ));
            }
            let body = json!({"owner": owner, "name": name,
                "keep_versions": keep_versions, "keep_days": keep_days});
            let rule = ctx.client.add_retention_rule(&body).await?;
            if ctx.json {
                return print_json(&rule);
            }
            outln!("Added retention rule {}", rule.id)
        }
        RetentionAction::Delete { id } => {
            ctx.client.delete_retention_rule(&id).await?;
            if ctx.json {
                return Ok(());
            }
            outln!("Deleted retention rule {id}")
        }
        RetentionAction::Run { dry_run: true } => {
            let plan = ctx.client.retention_plan().await?;
            if ctx.json {
                return print_json(&plan);
            }
            print_plan(&plan)
        }
        RetentionAction::Run { dry_run: false } => run_job(ctx).await,
    }
}

async fn rules(ctx: &Ctx, no_header: bool) -> Result<(), Failure> {
    let rules = ctx.client.list_retention_rules().await?;
    if ctx.json {
        return print_json(&rules);
    }
    let columns: Vec<String> = [
        "id",
        "source",
        "owner",
        "name",
        "keep_versions",
        "keep_days",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect();
    out!(
        "{}",
        output::table(&columns, &output::rows(&rules)?, !no_header)
    )
}

fn print_plan(plan: &RetentionPlan) -> Result<(), Failure> {
    let columns = |extra: &str| -> Vec<String> {
        [
            "uuid",
            "owner",
            "name",
            "version",
            "published",
            "rule",
            extra,
        ]
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| c.to_string())
        .collect()
    };
    outln!("Would delete {} image(s):", plan.delete.len())?;
    if !plan.delete.is_empty() {
        out!(
            "{}",
            output::table(&columns(""), &output::rows(&plan.delete)?, true)
        )?;
    }
    outln!("Kept although a rule selected them: {}", plan.kept.len())?;
    if !plan.kept.is_empty() {
        out!(
            "{}",
            output::table(&columns("reason"), &output::rows(&plan.kept)?, true)
        )?;
    }
    Ok(())
}

/// Queue a run, follow it (each finished step on stderr), print the summary.
async fn run_job(ctx: &Ctx) -> Result<(), Failure> {
    let job = ctx.client.run_retention().await?;
    eprintln!("Retention job {} queued", job.uuid);
    let mut shown = 0;
    let job = loop {
        let job = ctx.client.get_job(&job.uuid).await?;
        for step in job.chain_results.iter().skip(shown) {
            if step.finished_at.is_none() {
                break;
            }
            let image = step.image_uuid.map(|u| format!(" {u}")).unwrap_or_default();
            let what = if step.error.is_empty() {
                &step.result
            } else {
                &step.error
            };
            eprintln!("  {}{image}: {what}", step.name);
            shown += 1;
        }
        if job.execution != "queued" && job.execution != "running" {
            break job;
        }
        tokio::time::sleep(POLL).await;
    };
    if ctx.json {
        return print_json(&job);
    }
    let summary = job
        .chain_results
        .iter()
        .rev()
        .find(|s| s.name == "summary")
        .map(|s| {
            if s.error.is_empty() {
                s.result.clone()
            } else {
                s.error.clone()
            }
        })
        .unwrap_or_default();
    if job.execution != "succeeded" {
        let last = job.chain_results.last().map(|s| s.error.clone());
        return Err(Failure::other(format!(
            "retention job {} {}: {}",
            job.uuid,
            job.execution,
            if summary.is_empty() {
                last.unwrap_or_default()
            } else {
                summary
            }
        )));
    }
    outln!("Retention job {} succeeded: {summary}", job.uuid)
}
