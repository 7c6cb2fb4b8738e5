use crate::stdout::outln;
use std::collections::HashSet;

use std::path::PathBuf;

use imgapi_client::{part_path, Client, FileInfo, Image};
use imgapi_signing::{AllowedSigners, FileDigest};
use uuid::Uuid;

use super::local::{write_synced, Local, Lock};
use super::signatures::{self, FetchError};
use super::{label, manifest_label, until_interrupted, Failure, RERUN_RESUMES};
use crate::cli::ImportArgs;
use crate::reporters::Bar;

/// Find `uuid` on the first source that has it; that source's URL too.
async fn find(local: &Local, uuid: &Uuid) -> Result<(Client, Image, String), Failure> {
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
            Ok(m) => return Ok((client, m, url.clone())),
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

/// One image of the chain to install, and where it was found.
struct Member {
    uuid: Uuid,
    client: Client,
    manifest: Image,
    source: String,
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
        let (client, manifest, source) = find(local, &uuid).await?;
        super::lifecycle::warn_if_deprecated(&client, &manifest).await;
        cur = manifest.origin;
        chain.push(Member {
            uuid,
            client,
            manifest,
            source,
        });
    }
    let signed_files = check_signatures(local, &chain).await?;
    if signed_files.iter().all(Option::is_none) {
        for member in chain.iter().rev() {
            if let Some(staged) = stage(local, member, None).await? {
                staged.install()?;
            }
        }
        return Ok(());
    }
    // Signed images: every file is downloaded and checked against its
    // signed statement before any image of the chain is installed.
    let mut staged = Vec::new();
    for (member, signed) in chain.iter().zip(&signed_files).rev() {
        staged.extend(stage(local, member, signed.as_ref()).await?);
    }
    for s in staged {
        s.install()?;
    }
    Ok(())
}

/// With trust files, before anything is downloaded: every image of the
/// chain must have a valid signature by a key of the trust file of its own
/// source and of the sources of the images above it (an image's trust
/// covers its whole origin chain, wherever an origin is found). The signed
/// file digests of each image, `None` for images no trust file covers.
async fn check_signatures(
    local: &Local,
    chain: &[Member],
) -> Result<Vec<Option<FileDigest>>, Failure> {
    let sources = local.source_entries()?;
    let mut required: Vec<(PathBuf, AllowedSigners)> = Vec::new();
    let mut signed_files = Vec::new();
    for (depth, member) in chain.iter().enumerate() {
        let trust = sources
            .iter()
            .find(|s| s.url == member.source)
            .and_then(|s| s.trust.clone());
        if let Some(path) = trust {
            if !required.iter().any(|(p, _)| *p == path) {
                let trust = signatures::read_trust(&path)?;
                required.push((path, trust));
            }
        }
        if required.is_empty() {
            signed_files.push(None);
            continue;
        }
        let what = if depth == 0 {
            format!("image {}", label(&member.manifest))
        } else {
            format!(
                "image {}: its origin {}",
                chain[0].uuid,
                label(&member.manifest)
            )
        };
        let refuse = |why: String| {
            Failure::other(format!(
                "refusing to import {what} from {}: {why}; nothing was installed",
                member.source
            ))
        };
        let listed = match signatures::fetch(&member.client, &member.uuid).await {
            Ok(l) => l,
            Err(FetchError::Refused(r)) => return Err(refuse(r.to_string())),
            Err(FetchError::Client(e)) => {
                return Err(Failure::from(e)
                    .context(format!("reading the signatures of image {}", member.uuid)))
            }
        };
        let statement = signatures::checked_statement(&member.manifest, &listed)
            .map_err(|r| refuse(r.to_string()))?;
        let checked = signatures::verify_all(&statement, &listed.signatures);
        for (path, trust) in &required {
            let principals =
                signatures::trusted_by(&checked, trust, path).map_err(|r| refuse(r.to_string()))?;
            if !local.json {
                outln!(
                    "Image {} is signed by {principals} (trusted by {})",
                    label(&member.manifest),
                    path.display()
                )?;
            }
        }
        signed_files.push(Some(statement.files.first().cloned().ok_or_else(|| {
            refuse("its signed statement names no file".to_string())
        })?));
    }
    Ok(signed_files)
}

/// A downloaded, verified image waiting in `<store>/.tmp-<uuid>/` under its
/// lock.
struct Staged {
    _lock: Lock,
    tmp: PathBuf,
    dest: PathBuf,
    store: PathBuf,
    label: String,
    info: imgapi_client::FileInfo,
}

impl Staged {
    /// Rename the image into place.
    fn install(self) -> Result<(), Failure> {
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| {
            Failure::other(format!(
                "cannot install {} as {}: {e}",
                self.tmp.display(),
                self.dest.display()
            ))
        })?;
        if let Ok(d) = std::fs::File::open(&self.store) {
            let _ = d.sync_all();
        }
        outln!(
            "Installed image {} ({} bytes, sha1 {})",
            self.label,
            self.info.size,
            self.info.sha1
        )?;
        Ok(())
    }
}

/// Download into `<store>/.tmp-<uuid>/` (resuming what an earlier run left
/// there) and verify (with `signed`, also the file's SHA-256 and size
/// against the signed statement); `None` when another process installed it
/// meanwhile.
async fn stage(
    local: &Local,
    member: &Member,
    signed: Option<&FileDigest>,
) -> Result<Option<Staged>, Failure> {
    let (uuid, client, manifest) = (&member.uuid, &member.client, &member.manifest);
    std::fs::create_dir_all(&local.store)
        .map_err(|e| Failure::other(format!("cannot create {}: {e}", local.store.display())))?;
    let lock = Lock::acquire(local.lock_path(uuid), uuid)?;
    // Another process may have finished it while we waited for the lock.
    if local.installed(uuid)?.is_some() {
        outln!("Image {} is already installed", label(manifest))?;
        return Ok(None);
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
    drop(bar);
    if let Some(signed) = signed {
        let (sha256, size) = signatures::sha256_file(&file)?;
        if sha256 != signed.sha256 || size != signed.size {
            // Not the signed bytes: nothing of it may be kept or resumed.
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Failure::other(format!(
                "refusing to import image {} from {}: its file differs from the signed one \
                 (sha256 {sha256}, {size} bytes; signed: sha256 {}, {} bytes); nothing was installed",
                label(manifest),
                member.source,
                signed.sha256,
                signed.size
            )));
        }
    }
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| Failure::other(format!("cannot encode JSON: {e}")))?;
    let mtmp = tmp.join("manifest.json.tmp");
    write_synced(&mtmp, format!("{text}\n").as_bytes())?;
    let mpath = tmp.join("manifest.json");
    std::fs::rename(&mtmp, &mpath)
        .map_err(|e| Failure::other(format!("cannot write {}: {e}", mpath.display())))?;
    Ok(Some(Staged {
        _lock: lock,
        dest: local.image_dir(uuid),
        tmp,
        store: local.store.clone(),
        label: label(manifest),
        info,
    }))
}
