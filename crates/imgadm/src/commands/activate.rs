use super::{label, Ctx, Failure};
use crate::cli::UuidArg;

pub async fn run(ctx: &Ctx, args: UuidArg) -> Result<(), Failure> {
    let image = ctx.client.activate_image(&args.uuid).await?;
    ctx.print_image(&format!("Activated image {}", label(&image)), &image)
}
