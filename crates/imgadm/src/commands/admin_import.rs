use crate::stdout::outln;
use serde_json::Value;

use super::create::{read_manifest, Upload};
use super::{label, Ctx, Failure};
use crate::cli::AdminImportArgs;

pub async fn run(ctx: &Ctx, args: AdminImportArgs) -> Result<(), Failure> {
    let manifest = read_manifest(&args.manifest)?;
    if manifest.get("uuid").and_then(Value::as_str).is_none() {
        return Err(Failure::usage(format!(
            "manifest {} has no \"uuid\" (admin-import keeps it; use `create` to get a new one)",
            args.manifest.display()
        )));
    }
    let upload = match &args.file {
        Some(file) => Some(Upload::prepare(
            file,
            args.compression.as_deref(),
            &manifest,
        )?),
        None => None,
    };
    // The signing key is checked before anything is imported.
    let upload = match (upload, args.sign) {
        (Some(upload), true) => {
            Some(upload.with_signer(super::signatures::image_signer(ctx.key.as_deref())?))
        }
        (upload, _) => upload,
    };
    let image = ctx.client.import_image(&manifest).await?;
    let uuid = image.uuid;
    if !ctx.json {
        outln!("Imported image {}", label(&image))?;
    }
    match upload {
        Some(upload) => upload.run(ctx, &uuid, "imported").await,
        None if ctx.json => super::print_json(&image),
        None => Ok(()),
    }
}
