use super::{label, Ctx, Failure};
use crate::cli::UuidArg;

pub async fn run(ctx: &Ctx, args: UuidArg) -> Result<(), Failure> {
    let image = ctx.client.disable_image(&args.uuid).await?;
    ctx.print_image(&format!("Disabled image {}", label(&image)), &image)
}
