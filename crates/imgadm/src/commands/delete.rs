use super::{Ctx, Failure};
use crate::cli::UuidArg;

pub async fn run(ctx: &Ctx, args: UuidArg) -> Result<(), Failure> {
    ctx.client.delete_image(&args.uuid).await?;
    if !ctx.json {
        println!("Deleted image {}", args.uuid);
    }
    Ok(())
}
