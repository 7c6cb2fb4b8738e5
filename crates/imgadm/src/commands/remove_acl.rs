use super::{label, Ctx, Failure};
use crate::cli::AclArgs;

pub async fn run(ctx: &Ctx, args: AclArgs) -> Result<(), Failure> {
    let image = ctx.client.remove_acl(&args.uuid, &args.accounts).await?;
    let line = format!(
        "Removed {} account(s) from the ACL of image {}",
        args.accounts.len(),
        label(&image)
    );
    ctx.print_image(&line, &image)
}
