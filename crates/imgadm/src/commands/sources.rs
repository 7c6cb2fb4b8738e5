use crate::stdout::outln;
use serde_json::Value;

use super::local::{Local, Source};
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

/// Check a trust file (it must read as an allowed_signers file with at
/// least one key) and make its path absolute, as it is kept.
fn validate_trust(path: &std::path::Path) -> Result<std::path::PathBuf, Failure> {
    let absolute = std::path::absolute(path)
        .map_err(|e| Failure::usage(format!("invalid trust file path {}: {e}", path.display())))?;
    let trust = super::signatures::read_trust(&absolute)?;
    if trust.signers.is_empty() {
        return Err(Failure::usage(format!(
            "trust file {} holds no key: every image would be refused",
            absolute.display()
        )));
    }
    Ok(absolute)
}

pub fn run(local: &Local, args: SourcesArgs) -> Result<(), Failure> {
    let mut sources = local.source_entries()?;
    match args.action.unwrap_or(SourcesAction::List) {
        SourcesAction::List => {
            if local.json {
                let v: Vec<Value> = sources.iter().map(Source::to_json).collect();
                return print_json(&Value::Array(v));
            }
            for s in &sources {
                match &s.trust {
                    None => outln!("{}", s.url)?,
                    Some(trust) => outln!("{} (trust {})", s.url, trust.display())?,
                }
            }
            Ok(())
        }
        SourcesAction::Add(a) => {
            let url = validate(&a.source.url)?;
            let trust = a.trust.as_deref().map(validate_trust).transpose()?;
            if let Some(existing) = sources.iter_mut().find(|s| s.url == url) {
                match trust {
                    Some(trust) if existing.trust.as_ref() != Some(&trust) => {
                        existing.trust = Some(trust.clone());
                        local.save_source_entries(&sources)?;
                        outln!(
                            "Source {url} is already configured; it now trusts {}",
                            trust.display()
                        )?;
                    }
                    _ => outln!("Source {url} is already configured")?,
                }
                return Ok(());
            }
            let added = match &trust {
                Some(t) => format!("Added source {url} (trust {})", t.display()),
                None => format!("Added source {url}"),
            };
            sources.push(Source { url, trust });
            local.save_source_entries(&sources)?;
            outln!("{added}")?;
            Ok(())
        }
        SourcesAction::Delete(a) => {
            let url = a.url.trim_end_matches('/').to_string();
            let before = sources.len();
            sources.retain(|s| s.url != url);
            if sources.len() == before {
                return Err(Failure::not_found(format!(
                    "source {url} is not configured"
                )));
            }
            local.save_source_entries(&sources)?;
            outln!("Deleted source {url}")?;
            Ok(())
        }
    }
}
