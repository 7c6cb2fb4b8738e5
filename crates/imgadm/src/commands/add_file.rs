use super::create::send_file;
use super::{label, Ctx, Failure};
use crate::cli::AddFileArgs;
use crate::reporters::Bar;

pub async fn run(ctx: &Ctx, args: AddFileArgs) -> Result<(), Failure> {
    let bar = Bar::new("Uploading");
    let image = send_file(
        ctx,
        &args.uuid,
        &args.file,
        &args.compression,
        None,
        &args.resume,
        &bar,
    )
    .await?;
    ctx.print_image(&format!("Added file to image {}", label(&image)), &image)
}
