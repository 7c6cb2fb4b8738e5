use crate::stdout::outln;
use serde_json::{json, Value};

use super::local::Local;
use super::{print_json, Failure};
use crate::cli::{SourcesAction, SourcesArgs};

/// Validate a source URL (it must parse and be http or https) and normalise
/// it (no trailing slash).
fn validate(url: &str) -> Result<String, Failure> {
    let client = imgapi_client::Client::new(url)
        .map_err(|e| Failure::usage(format!("invalid source URL {url:?}: {e}")))?;
    let scheme = client.base_url().scheme();
    if scheme != "http" && scheme != "https" {
        return Err(Failure::usage(format!(
            "invalid source URL {url:?}: scheme must be http or https, not {scheme:?}"
        )));
    }
    Ok(url.trim_end_matches('/').to_string())
}

pub fn run(local: &Local, args: SourcesArgs) -> Result<(), Failure> {
    let mut sources = local.sources()?;
    match args.action.unwrap_or(SourcesAction::List) {
        SourcesAction::List => {
            if local.json {
                let v: Vec<Value> = sources.iter().map(|u| json!({"url": u})).collect();
                return print_json(&Value::Array(v));
            }
            for s in &sources {
                outln!("{s}")?;
            }
            Ok(())
        }
        SourcesAction::Add(a) => {
            let url = validate(&a.url)?;
            if sources.contains(&url) {
                outln!("Source {url} is already configured")?;
                return Ok(());
            }
            sources.push(url.clone());
            local.save_sources(&sources)?;
            outln!("Added source {url}")?;
            Ok(())
        }
        SourcesAction::Delete(a) => {
            let url = a.url.trim_end_matches('/').to_string();
            let before = sources.len();
            sources.retain(|s| *s != url);
            if sources.len() == before {
                return Err(Failure::not_found(format!(
                    "source {url} is not configured"
                )));
            }
            local.save_sources(&sources)?;
            outln!("Deleted source {url}")?;
            Ok(())
        }
    }
}
