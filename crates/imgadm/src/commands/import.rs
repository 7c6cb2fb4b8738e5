use crate::stdout::outln;
use std::collections::HashSet;

use imgapi_client::{part_path, Client, FileInfo, Image};
use uuid::Uuid;

use super::local::{write_synced, Local, Lock};
use super::{label, manifest_label, until_interrupted, Failure, RERUN_RESUMES};
use crate::cli::ImportArgs;
use crate::reporters::Bar;

/// Find `uuid` on the first source that has it.
async fn find(local: &Local, uuid: &Uuid) -> Result<(Client, Image), Failure> {
    let sources = local.sources()?;
    if sources.is_empty() {
        return Err(Failure::usage(
            "no sources configured: add one with `imgadm sources add URL`",
        ));
    }
    let mut last_err = None;
    for url in &sources {
        let client = local.client(url)?;
        match client.get_image(uuid).await {
            Ok(m) => return Ok((client, m)),
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                eprintln!("imgadm: warning: source {url}: {e}");
                last_err = Some(Failure::from(e));
            }
        }
    }
    Err(last_err
        .unwrap_or_else(|| Failure::not_found(format!("image {uuid} not found on any source"))))
}

/// Import the image and its missing origins; Ctrl-C stops with the partial
/// download kept for the rerun.
pub async fn run(local: &Local, args: ImportArgs) -> Result<(), Failure> {
    until_interrupted(import_chain(local, args), || {
        Failure::interrupted(RERUN_RESUMES)
    })
    .await
}

async fn import_chain(local: &Local, args: ImportArgs) -> Result<(), Failure> {
    if let Some(m) = local.installed(&args.uuid)? {
        outln!("Image {} is already installed", manifest_label(&m))?;
        return Ok(());
    }
    // The chain from the image down to the first installed origin.
    let mut chain = Vec::new();
    let mut seen = HashSet::new();
    let mut cur = Some(args.uuid);
    while let Some(uuid) = cur {
        if !seen.insert(uuid) {
            return Err(Failure::other(format!("origin loop at image {uuid}")));
        }
        if local.installed(&uuid)?.is_some() {
            break;
        }
        let (client, manifest) = find(local, &uuid).await?;
        super::lifecycle::warn_if_deprecated(&client, &manifest).await;
        cur = manifest.origin;
        chain.push((uuid, client, manifest));
    }
    for (uuid, client, manifest) in chain.into_iter().rev() {
        install(local, &uuid, &client, &manifest).await?;
    }
    Ok(())
}

/// Download into `<store>/.tmp-<uuid>/` (resuming what an earlier run left
/// there), verify, then rename into place.
async fn install(
    local: &Local,
    uuid: &Uuid,
    client: &Client,
    manifest: &Image,
) -> Result<(), Failure> {
    std::fs::create_dir_all(&local.store)
        .map_err(|e| Failure::other(format!("cannot create {}: {e}", local.store.display())))?;
    let _lock = Lock::acquire(local.lock_path(uuid), uuid)?;
    // Another process may have finished it while we waited for the lock.
    if local.installed(uuid)?.is_some() {
        outln!("Image {} is already installed", label(manifest))?;
        return Ok(());
    }
    if FileInfo::of(manifest).is_none() {
        return Err(Failure::other(format!(
            "image {} has no file to import",
            label(manifest)
        )));
    }
    let tmp = local.tmp_dir(uuid);
    std::fs::create_dir_all(&tmp)
        .map_err(|e| Failure::other(format!("cannot create {}: {e}", tmp.display())))?;
    if !local.json {
        outln!("Importing image {}", label(manifest))?;
    }
    let file = tmp.join("file");
    // An import stopped (e.g. Ctrl-C) after its download was verified and
    // renamed to `file` but before the directory was renamed into place:
    // hand the file back as a complete `.part`, which the client verifies
    // again instead of downloading it all over.
    let part = part_path(&file);
    if file.is_file() && !part.exists() {
        std::fs::rename(&file, &part).map_err(|e| {
            Failure::other(format!(
                "cannot rename {} to {}: {e}",
                file.display(),
                part.display()
            ))
        })?;
    }
    let bar = Bar::new("Downloading").about(format!("the download of image {uuid}"));
    let info = client
        .get_image_file(uuid, &file, Some(&bar))
        .await
        .map_err(|e| Failure::from(e).context(format!("downloading image {uuid}")))?;
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| Failure::other(format!("cannot encode JSON: {e}")))?;
    let mtmp = tmp.join("manifest.json.tmp");
    write_synced(&mtmp, format!("{text}\n").as_bytes())?;
    let mpath = tmp.join("manifest.json");
    std::fs::rename(&mtmp, &mpath)
        .map_err(|e| Failure::other(format!("cannot write {}: {e}", mpath.display())))?;
    let dest = local.image_dir(uuid);
    std::fs::rename(&tmp, &dest).map_err(|e| {
        Failure::other(format!(
            "cannot install {} as {}: {e}",
            tmp.display(),
            dest.display()
        ))
    })?;
    if let Ok(d) = std::fs::File::open(&local.store) {
        let _ = d.sync_all();
    }
    outln!(
        "Installed image {} ({} bytes, sha1 {})",
        label(manifest),
        info.size,
        info.sha1
    )?;
    Ok(())
}
