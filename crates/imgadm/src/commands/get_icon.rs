use crate::stdout::outln;
use serde_json::json;

use super::{print_json, Ctx, Failure};
use crate::cli::GetIconArgs;

pub async fn run(ctx: &Ctx, args: GetIconArgs) -> Result<(), Failure> {
    let info = ctx.client.get_image_icon(&args.uuid, &args.output).await?;
    if ctx.json {
        return print_json(&json!({
            "uuid": args.uuid.to_string(),
            "path": args.output.display().to_string(),
            "contentType": info.content_type,
            "size": info.size,
            "sha1": info.sha1,
        }));
    }
    outln!(
        "Saved icon of image {} to {} ({}, {} bytes, sha1 {})",
        args.uuid,
        args.output.display(),
        info.content_type,
        info.size,
        info.sha1
    )?;
    Ok(())
}
