use crate::stdout::out;
use std::collections::HashSet;

use serde_json::Value;

use super::local::Local;
use super::{print_json, Failure};
use crate::cli::AvailArgs;
use crate::output;

const COLUMNS: &[&str] = &[
    "uuid",
    "name",
    "version",
    "os",
    "type",
    "published",
    "source",
];

pub async fn run(local: &Local, args: AvailArgs) -> Result<(), Failure> {
    let sources = local.sources()?;
    if sources.is_empty() {
        return Err(Failure::usage(
            "no sources configured: add one with `imgadm sources add URL`",
        ));
    }
    let mut seen = HashSet::new();
    let mut images = Vec::new();
    let mut failures = 0;
    for url in &sources {
        let listed = match local.client(url) {
            Ok(c) => c
                .list_images(&[("state", "active")])
                .await
                .map_err(Failure::from),
            Err(f) => Err(f),
        };
        match listed {
            Ok(list) => {
                for mut img in list {
                    if seen.insert(img.uuid) {
                        img.extra
                            .insert("source".into(), Value::String(url.clone()));
                        images.push(img);
                    }
                }
            }
            Err(f) => {
                failures += 1;
                eprintln!("imgadm: warning: source {url}: {}", f.message);
            }
        }
    }
    if failures == sources.len() {
        return Err(Failure::other("no source could be reached"));
    }
    images.sort_by_key(|m| (m.name.clone(), m.version.clone(), m.uuid.to_string()));
    if local.json {
        return print_json(&images);
    }
    let columns: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    out!(
        "{}",
        output::table(&columns, &output::rows(&images)?, !args.no_header)
    )?;
    Ok(())
}
