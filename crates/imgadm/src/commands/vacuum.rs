use super::local::{lock_is_stale, Local, DEL_PREFIX, LOCK_PREFIX, TMP_PREFIX};
use super::Failure;
use crate::cli::VacuumArgs;
use crate::stdout::outln;

pub fn run(local: &Local, args: VacuumArgs) -> Result<(), Failure> {
    let entries = match std::fs::read_dir(&local.store) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            outln!("Nothing to remove")?;
            return Ok(());
        }
        Err(e) => {
            return Err(Failure::other(format!(
                "cannot read {}: {e}",
                local.store.display()
            )))
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    let mut removed = 0;
    for name in names {
        let path = local.store.join(&name);
        let doomed = if let Some(uuid) = name
            .strip_prefix(TMP_PREFIX)
            .or_else(|| name.strip_prefix(DEL_PREFIX))
        {
            // An import in progress holds a live lock: leave its tmp dir alone.
            let lock = local.store.join(format!("{LOCK_PREFIX}{uuid}"));
            !lock.exists() || lock_is_stale(&lock)
        } else if name.starts_with(LOCK_PREFIX) {
            lock_is_stale(&path)
        } else {
            false
        };
        if !doomed {
            continue;
        }
        removed += 1;
        if args.dry_run {
            outln!("Would remove {}", path.display())?;
            continue;
        }
        let res = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        res.map_err(|e| Failure::other(format!("cannot remove {}: {e}", path.display())))?;
        outln!("Removed {}", path.display())?;
    }
    if removed == 0 {
        outln!("Nothing to remove")?;
    }
    Ok(())
}
