use crate::stdout::outln;
use std::path::{Path, PathBuf};

use imgapi_client::{Image, ImageSigner, ResumableOptions};
use serde_json::Value;
use uuid::Uuid;

use super::{label, until_interrupted, Ctx, Failure};
use crate::cli::{CreateArgs, ResumeArgs};
use crate::reporters::Bar;

pub async fn run(ctx: &Ctx, args: CreateArgs) -> Result<(), Failure> {
    let mut manifest = read_manifest(&args.manifest)?;
    let upload = match &args.file {
        Some(file) => Some(
            Upload::prepare(file, args.compression.as_deref(), &manifest)?
                .with_resume(args.resume.clone()),
        ),
        None => None,
    };
    // The signing key is checked before anything is created.
    let upload = match (upload, args.sign) {
        (Some(upload), true) => {
            Some(upload.with_signer(super::signatures::image_signer(ctx.key.as_deref())?))
        }
        (upload, _) => upload,
    };
    // CreateImage assigns the uuid and refuses one in the body; a manifest
    // from `create-manifest` (or another IMGAPI) has one: publish it anyway.
    if let Value::Object(map) = &mut manifest {
        if let Some(old) = map.shift_remove("uuid") {
            eprintln!(
                "imgadm: note: the server assigns a new uuid; the manifest's uuid {} is \
                 not used (admin-import keeps it)",
                old.as_str().unwrap_or("?")
            );
        }
    }
    let image = ctx.client.create_image(&manifest).await?;
    let uuid = image.uuid;
    if !ctx.json {
        outln!("Created image {}", label(&image))?;
    }
    let Some(upload) = upload else {
        return if ctx.json {
            super::print_json(&image)
        } else {
            Ok(())
        };
    };
    upload.run(ctx, &uuid, "created").await
}

/// Read and parse a manifest file (errors are usage errors).
pub(super) fn read_manifest(path: &Path) -> Result<Value, Failure> {
    read_json_arg(path, "manifest")
}

/// Read and parse the JSON file `path` names, stdin for `-`; errors are
/// usage errors naming it as `what`.
pub(super) fn read_json_arg(path: &Path, what: &str) -> Result<Value, Failure> {
    let from_stdin = path.as_os_str() == "-";
    let name = if from_stdin {
        "(stdin)".to_string()
    } else {
        path.display().to_string()
    };
    let text = if from_stdin {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| Failure::usage(format!("cannot read {what} {name}: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| Failure::usage(format!("{what} {name} is not JSON: {e}")))
}

/// A file to upload after creating (or importing) an image, then activate.
///
/// Nothing is left half-done: the file is checked against the manifest
/// before the image exists ([`Upload::prepare`]); a later failure deletes
/// the image again, except an upload through a resumable session that
/// stopped part-way, which is left for the one command printed to resume it.
pub(super) struct Upload<'a> {
    file: &'a Path,
    compression: String,
    /// `files[0].sha1` of the manifest: the server refuses other bytes.
    sha1: Option<String>,
    resume: ResumeArgs,
    /// Sign the image after its file is added, before activating it.
    signer: Option<ImageSigner>,
}

impl<'a> Upload<'a> {
    /// Decide the compression (`-c`, else the manifest's
    /// `files[0].compression`, else `none`) and check, before anything is
    /// created, that the file can be read and is the one the manifest's
    /// `files[0]` describes (its size, then its sha1, hashed here).
    pub(super) fn prepare(
        file: &'a Path,
        compression: Option<&str>,
        manifest: &Value,
    ) -> Result<Upload<'a>, Failure> {
        let described = manifest.get("files").and_then(|f| f.get(0));
        let field = |k: &str| described.and_then(|d| d.get(k));
        let from_manifest = field("compression").and_then(Value::as_str);
        let compression = match (compression, from_manifest) {
            (Some(c), Some(m)) if c != m => {
                return Err(Failure::usage(format!(
                    "-c {c} contradicts the manifest's files[0].compression \"{m}\""
                )))
            }
            (Some(c), _) | (None, Some(c)) => c.to_string(),
            (None, None) => "none".to_string(),
        };
        let size = std::fs::File::open(file)
            .and_then(|f| f.metadata())
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?
            .len();
        if let Some(want) = field("size").and_then(Value::as_u64) {
            if size != want {
                return Err(Failure::usage(format!(
                    "{} is {size} bytes but the manifest's files[0].size is {want}: \
                     not the file the manifest describes",
                    file.display(),
                )));
            }
        }
        let sha1 = field("sha1").and_then(Value::as_str).map(str::to_string);
        if let Some(want) = &sha1 {
            let (got, _) =
                super::create_manifest::hash_file(file).map_err(|f| Failure::usage(f.message))?;
            if !got.eq_ignore_ascii_case(want) {
                return Err(Failure::usage(format!(
                    "{} has sha1 {got} but the manifest's files[0].sha1 is {want}: \
                     not the file the manifest describes",
                    file.display(),
                )));
            }
        }
        Ok(Upload {
            file,
            compression,
            sha1,
            resume: ResumeArgs::default(),
            signer: None,
        })
    }

    /// How to upload (a resumable session above a size, or one PUT).
    pub(super) fn with_resume(mut self, resume: ResumeArgs) -> Upload<'a> {
        self.resume = resume;
        self
    }

    /// Sign the image with `signer` between adding its file and activating
    /// it (a server requiring signatures activates only signed images).
    pub(super) fn with_signer(mut self, signer: ImageSigner) -> Upload<'a> {
        self.signer = Some(signer);
        self
    }

    /// Upload, then activate image `uuid` (which was `done`: "created",
    /// "imported"). A failure names the step and either deletes the image
    /// again or, for a resumable upload stopped part-way, prints the
    /// command that resumes it.
    pub(super) async fn run(self, ctx: &Ctx, uuid: &Uuid, done: &str) -> Result<(), Failure> {
        let bar = Bar::new("Uploading").about(format!("the upload of {}", self.file.display()));
        let sending = send_file(
            ctx,
            uuid,
            self.file,
            &self.compression,
            self.sha1.as_deref(),
            &self.resume,
            &bar,
        );
        let sent = match until_interrupted(async { Ok(sending.await) }, || {
            Failure::interrupted(format!(
                "interrupted while uploading the file of image {uuid}"
            ))
        })
        .await
        {
            Ok(sent) => sent,
            Err(interrupted) => {
                drop(bar);
                if self.through_session() {
                    let mut failure = interrupted.context(format!(
                        "image {uuid} was {done}, its upload can resume (left unactivated)"
                    ));
                    failure.details.push(format!(
                        "resume it with: {}",
                        self.resume_command(ctx, uuid)
                    ));
                    return Err(failure);
                }
                return Err(roll_back(ctx, uuid, interrupted).await);
            }
        };
        drop(bar);
        if let Err(e) = sent {
            let resumable = self.through_session() && stopped_part_way(&e);
            let failure = Failure::from(e);
            if resumable {
                let mut failure = failure.context(format!(
                    "image {uuid} was {done} but its upload stopped part-way (left unactivated)"
                ));
                failure.details.push(format!(
                    "resume it with: {}",
                    self.resume_command(ctx, uuid)
                ));
                return Err(failure);
            }
            let failure = failure.context(format!(
                "image {uuid} was {done} but adding its file failed"
            ));
            return Err(roll_back(ctx, uuid, failure).await);
        }
        if !ctx.json {
            outln!("Added file {}", self.file.display())?;
        }
        if let Some(signer) = &self.signer {
            if let Err(failure) = self.sign(ctx, uuid, signer).await {
                let failure = failure.context(format!(
                    "image {uuid} was {done} with its file but signing it failed"
                ));
                return Err(roll_back(ctx, uuid, failure).await);
            }
        }
        match ctx.client.activate_image(uuid).await {
            Ok(image) => ctx.print_image(&format!("Activated image {}", label(&image)), &image),
            Err(e) => {
                let failure = Failure::from(e).context(format!(
                    "image {uuid} was {done} with its file but activating it failed"
                ));
                Err(roll_back(ctx, uuid, failure).await)
            }
        }
    }

    /// Sign image `uuid`, whose statement must name this file's SHA-256.
    async fn sign(&self, ctx: &Ctx, uuid: &Uuid, signer: &ImageSigner) -> Result<(), Failure> {
        let (sha256, size) = super::signatures::sha256_file(self.file)?;
        let (image, added) =
            super::sign::sign_image(ctx, uuid, signer, Some((&sha256, size))).await?;
        if ctx.json {
            return Ok(());
        }
        super::sign::print_signed(&image, &added)
    }

    /// True when the file goes through a resumable upload session.
    fn through_session(&self) -> bool {
        uses_session(&self.resume, self.file)
    }

    /// The command that resumes this upload and activates the image.
    pub(super) fn resume_command(&self, ctx: &Ctx, uuid: &Uuid) -> String {
        let channel = ctx
            .client
            .channel()
            .map_or_else(String::new, |c| format!(" --channel {c}"));
        format!(
            "imgadm{channel} add-file {uuid} -f {} -c {} && imgadm{channel} activate {uuid}",
            self.file.display(),
            self.compression
        )
    }
}

/// An upload error after which the server may hold part of the file and a
/// rerun can go on from there: the connection or the server failed (not a
/// refusal of the request, which a rerun would meet again).
fn stopped_part_way(e: &imgapi_client::ClientError) -> bool {
    match e.status() {
        Some(status) => status >= 500,
        None => !matches!(e, imgapi_client::ClientError::Integrity { .. }),
    }
}

/// Delete image `uuid` after `failure`, so that nothing is left half-done;
/// the failure says whether that worked.
pub(super) async fn roll_back(ctx: &Ctx, uuid: &Uuid, mut failure: Failure) -> Failure {
    match ctx.client.delete_image(uuid).await {
        Ok(()) => failure.details.push(format!(
            "image {uuid} was deleted again: nothing is left half-done"
        )),
        Err(e) => failure.details.push(format!(
            "deleting image {uuid} again failed too ({}): delete it with `imgadm delete {uuid}`",
            Failure::from(e).message
        )),
    }
    failure
}

/// Files of at least the threshold go through a resumable upload session,
/// unless `--no-resume`.
fn uses_session(resume: &ResumeArgs, file: &Path) -> bool {
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    !resume.no_resume && size >= resume.resume_threshold
}

/// Upload `file` as image `uuid`'s file: through a resumable upload session
/// when it is at least the threshold (and not `--no-resume`), resuming an
/// unfinished one from an earlier run; else with one PUT. A server without
/// sessions gets the PUT (the client library falls back by itself).
pub async fn send_file(
    ctx: &Ctx,
    uuid: &Uuid,
    file: &Path,
    compression: &str,
    sha1: Option<&str>,
    resume: &ResumeArgs,
    bar: &Bar,
) -> Result<Image, imgapi_client::ClientError> {
    if !uses_session(resume, file) {
        return ctx
            .client
            .add_image_file_checked(uuid, file, compression, sha1, Some(bar))
            .await;
    }
    let options = ResumableOptions {
        chunk_size: resume.chunk_size.max(1),
        state_dir: resume.upload_state_dir.clone().or_else(default_state_dir),
        expected_sha1: sha1.map(str::to_string),
    };
    ctx.client
        .add_image_file_resumable_with(uuid, file, compression, &options, Some(bar))
        .await
}

/// `<config dir>/uploads` (`$IMGADM_CONFIG_DIR`, else `~/.imgadm`).
fn default_state_dir() -> Option<PathBuf> {
    let given = std::env::var_os("IMGADM_CONFIG_DIR").map(PathBuf::from);
    crate::profile::config_dir(given.as_deref()).map(|d| d.join("uploads"))
}
