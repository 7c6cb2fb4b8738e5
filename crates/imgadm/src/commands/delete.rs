use imgapi_client::Image;

use super::{Ctx, Failure};
use crate::cli::UuidArg;
use crate::stdout::outln;

/// DeleteImage. On a server with channels, an image in several channels is
/// only removed from the request's channel (`--channel`, else the server's
/// default): the image is read before and, when it was in several
/// channels, through any channel after, so the message says which of the
/// two happened.
pub async fn run(ctx: &Ctx, args: UuidArg) -> Result<(), Failure> {
    let before = ctx.client.get_image_with_channels(&args.uuid).await?;
    ctx.client.delete_image(&args.uuid).await?;
    let in_several_channels = before.channels.as_ref().is_some_and(|c| c.len() > 1);
    let after = if !in_several_channels {
        None
    } else {
        match ctx
            .client
            .clone()
            .with_channel("*")
            .get_image_with_channels(&args.uuid)
            .await
        {
            Ok(image) => Some(image),
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                return Err(Failure::from(e).context(format!(
                "image {} was deleted (or removed from its channel), but reading it back failed",
                args.uuid
            )))
            }
        }
    };
    if !ctx.json {
        outln!(
            "{}",
            outcome(&args.uuid.to_string(), &before, after.as_ref())
        )?;
    }
    Ok(())
}

/// `Deleted image X`, or `Removed image X from channel C (still in channels
/// a, b)` when the image is still there afterwards.
fn outcome(uuid: &str, before: &Image, after: Option<&Image>) -> String {
    let Some(after) = after else {
        return format!("Deleted image {uuid}");
    };
    let channels = |image: &Image| image.channels.clone().unwrap_or_default();
    let remaining = channels(after);
    let removed: Vec<String> = channels(before)
        .into_iter()
        .filter(|c| !remaining.contains(c))
        .collect();
    format!(
        "Removed image {uuid} from channel {} (still in channels {})",
        removed.join(", "),
        remaining.join(", ")
    )
}
