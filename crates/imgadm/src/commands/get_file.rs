use std::path::PathBuf;

use imgapi_client::ClientError;
use uuid::Uuid;

use super::{until_interrupted, Ctx, Failure, RERUN_RESUMES};
use crate::cli::GetFileArgs;
use crate::reporters::Bar;
use crate::stdout::outln;

pub async fn run(ctx: &Ctx, args: GetFileArgs) -> Result<(), Failure> {
    let dest = match (args.output, args.output_by_uuid) {
        (Some(path), _) => path,
        (None, true) => name_by_uuid(ctx, &args.uuid).await?,
        (None, false) => return to_stdout(ctx, &args.uuid).await,
    };
    let bar = Bar::new("Downloading").about(format!("the download of {}", dest.display()));
    let download = async {
        ctx.client
            .get_image_file(&args.uuid, &dest, Some(&bar))
            .await
            .map_err(Failure::from)
    };
    let info = until_interrupted(download, || Failure::interrupted(RERUN_RESUMES)).await?;
    if !ctx.json {
        outln!(
            "Saved file of image {} to {} ({} bytes, sha1 {})",
            args.uuid,
            dest.display(),
            info.size,
            info.sha1
        )?;
    }
    Ok(())
}

/// The file name `-O` saves under, as sdc-imgapi-cli's `get-file -O` names
/// it: `UUID-file` and the usual extension of its compression (that client
/// knows no `.xz`; here xz gets one too).
async fn name_by_uuid(ctx: &Ctx, uuid: &Uuid) -> Result<PathBuf, Failure> {
    let image = ctx.client.get_image(uuid).await?;
    let compression = image.files.first().map(|f| f.compression.as_str());
    let ext = match compression {
        Some("gzip") => ".gz",
        Some("bzip2") => ".bz2",
        Some("xz") => ".xz",
        _ => "",
    };
    Ok(PathBuf::from(format!("{uuid}-file{ext}")))
}

/// Stream the file to stdout: only its bytes go there (progress, when
/// stderr is a terminal, goes to stderr).
async fn to_stdout(ctx: &Ctx, uuid: &Uuid) -> Result<(), Failure> {
    let bar = Bar::new("Downloading");
    let mut out = tokio::io::stdout();
    match ctx
        .client
        .get_image_file_to_writer(uuid, &mut out, Some(&bar))
        .await
    {
        Ok(_) => Ok(()),
        Err(ClientError::Io(e)) => Err(crate::stdout::failure(e)),
        Err(ClientError::Integrity { expected, actual }) => Err(Failure::other(format!(
            "the file written to stdout is not image {uuid}'s file (expected {expected}, \
             got {actual}): discard it"
        ))),
        Err(e) => Err(e.into()),
    }
}
