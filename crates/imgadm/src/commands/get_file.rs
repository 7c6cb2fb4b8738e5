use super::{Ctx, Failure};
use crate::cli::GetFileArgs;
use crate::reporters::Bar;
use crate::stdout::outln;

pub async fn run(ctx: &Ctx, args: GetFileArgs) -> Result<(), Failure> {
    let bar = Bar::new("Downloading");
    let info = ctx
        .client
        .get_image_file(&args.uuid, &args.output, Some(&bar))
        .await?;
    if !ctx.json {
        outln!(
            "Saved file of image {} to {} ({} bytes, sha1 {})",
            args.uuid,
            args.output.display(),
            info.size,
            info.sha1
        )?;
    }
    Ok(())
}
