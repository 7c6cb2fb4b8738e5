use super::{print_json, Ctx, Failure};
use crate::cli::UuidArg;

pub async fn run(ctx: &Ctx, args: UuidArg) -> Result<(), Failure> {
    print_json(&ctx.client.get_image(&args.uuid).await?)
}
