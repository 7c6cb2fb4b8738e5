use serde_json::Value;

use super::{label, Ctx, Failure};
use crate::cli::CreateArgs;
use crate::reporters::Bar;

pub async fn run(ctx: &Ctx, args: CreateArgs) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&args.manifest).map_err(|e| {
        Failure::usage(format!(
            "cannot read manifest {}: {e}",
            args.manifest.display()
        ))
    })?;
    let manifest: Value = serde_json::from_str(&text).map_err(|e| {
        Failure::usage(format!(
            "manifest {} is not JSON: {e}",
            args.manifest.display()
        ))
    })?;
    let image = ctx.client.create_image(&manifest).await?;
    let uuid = image
        .get("uuid")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<uuid::Uuid>().ok())
        .ok_or_else(|| Failure::other("server answered without an image uuid"))?;
    if !ctx.json {
        println!("Created image {}", label(&image));
    }
    let Some(file) = args.file else {
        return if ctx.json {
            super::print_json(&image)
        } else {
            Ok(())
        };
    };
    let bar = Bar::new("Uploading");
    ctx.client
        .add_image_file(&uuid, &file, &args.compression, Some(&bar))
        .await
        .map_err(|e| {
            Failure::from(e).context(format!(
                "image {uuid} was created but adding its file failed (left unactivated)"
            ))
        })?;
    drop(bar);
    if !ctx.json {
        println!("Added file {}", file.display());
    }
    let image = ctx.client.activate_image(&uuid).await.map_err(|e| {
        Failure::from(e).context(format!(
            "image {uuid} was created with its file but activating it failed (left unactivated)"
        ))
    })?;
    ctx.print_image(&format!("Activated image {}", label(&image)), &image)
}
