use super::{label, Ctx, Failure};
use crate::cli::UuidArg;

pub async fn run(ctx: &Ctx, args: UuidArg) -> Result<(), Failure> {
    let image = ctx.client.delete_image_icon(&args.uuid).await?;
    ctx.print_image(&format!("Deleted icon of image {}", label(&image)), &image)
}
