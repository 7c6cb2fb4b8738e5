use crate::stdout::{out, outln};
use serde_json::Value;

use super::local::{Local, DEL_PREFIX};
use super::{manifest_label, print_json, Failure};
use crate::cli::{InstalledAction, InstalledArgs};
use crate::output;

pub fn run(local: &Local, args: InstalledArgs) -> Result<(), Failure> {
    match args.action.unwrap_or(InstalledAction::List) {
        InstalledAction::List => {
            let images = local.all_installed()?;
            if local.json {
                return print_json(&images);
            }
            let columns: Vec<String> = ["uuid", "name", "version", "os", "type"]
                .iter()
                .map(|c| c.to_string())
                .collect();
            out!("{}", output::table(&columns, &images, !args.no_header))?;
            Ok(())
        }
        InstalledAction::Get(a) => match local.installed(&a.uuid)? {
            Some(m) => print_json(&m),
            None => Err(Failure::not_found(format!(
                "image {} is not installed",
                a.uuid
            ))),
        },
        InstalledAction::Delete(a) => {
            let Some(m) = local.installed(&a.uuid)? else {
                return Err(Failure::not_found(format!(
                    "image {} is not installed",
                    a.uuid
                )));
            };
            let uuid = a.uuid.to_string();
            let children: Vec<String> = local
                .all_installed()?
                .iter()
                .filter(|c| c.get("origin").and_then(Value::as_str) == Some(uuid.as_str()))
                .map(manifest_label)
                .collect();
            if !children.is_empty() {
                return Err(Failure::other(format!(
                    "image {} is the origin of installed image(s) {}: delete those first",
                    manifest_label(&m),
                    children.join(", ")
                )));
            }
            // Rename first so a half-deleted image never looks installed.
            let doomed = local.store.join(format!("{DEL_PREFIX}{uuid}"));
            std::fs::rename(local.image_dir(&a.uuid), &doomed)
                .and_then(|()| std::fs::remove_dir_all(&doomed))
                .map_err(|e| Failure::other(format!("cannot delete image {uuid}: {e}")))?;
            outln!("Deleted image {}", manifest_label(&m))?;
            Ok(())
        }
    }
}
