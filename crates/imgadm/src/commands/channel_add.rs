use super::{label, Ctx, Failure};
use crate::cli::ChannelAddArgs;

pub async fn run(ctx: &Ctx, args: ChannelAddArgs) -> Result<(), Failure> {
    if args.channel.is_empty() {
        return Err(Failure::usage("the channel name is empty"));
    }
    let image = ctx
        .client
        .channel_add_image(&args.uuid, &args.channel)
        .await?;
    ctx.print_image(
        &format!("Added image {} to channel {}", label(&image), args.channel),
        &image,
    )
}
