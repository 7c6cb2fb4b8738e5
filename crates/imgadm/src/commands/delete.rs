use super::{Ctx, Failure};
use crate::cli::UuidArg;
use crate::stdout::outln;

pub async fn run(ctx: &Ctx, args: UuidArg) -> Result<(), Failure> {
    ctx.client.delete_image(&args.uuid).await?;
    if !ctx.json {
        outln!("Deleted image {}", args.uuid)?;
    }
    Ok(())
}
