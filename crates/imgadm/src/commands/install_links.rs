//! `install-links DIR`: the node tools' names as symlinks to this binary,
//! so that `joyent-imgadm …` (and the others) run it as that tool.

use std::path::Path;

use super::Failure;
use crate::cli::InstallLinksArgs;
use crate::personality;
use crate::stdout::outln;

pub fn run(args: InstallLinksArgs) -> Result<(), Failure> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| Failure::other(format!("cannot find this program's path: {e}")))?;
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| Failure::other(format!("cannot create {}: {e}", args.dir.display())))?;
    for p in personality::ALL {
        let link = args.dir.join(p.name);
        if points_to(&link, &exe) {
            outln!("{} already links to {}", link.display(), exe.display())?;
            continue;
        }
        if link.symlink_metadata().is_ok() {
            if !args.force {
                return Err(Failure::usage(format!(
                    "{} exists and is not a link to {} (--force replaces it)",
                    link.display(),
                    exe.display()
                )));
            }
            std::fs::remove_file(&link)
                .map_err(|e| Failure::other(format!("cannot replace {}: {e}", link.display())))?;
        }
        std::os::unix::fs::symlink(&exe, &link)
            .map_err(|e| Failure::other(format!("cannot link {}: {e}", link.display())))?;
        outln!("Linked {} -> {}", link.display(), exe.display())?;
    }
    Ok(())
}

fn points_to(link: &Path, exe: &Path) -> bool {
    link.symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
        && link.canonicalize().is_ok_and(|target| target == exe)
}
