//! `deprecate`, `protect`, `unprotect`, `lifecycle`: an image's lifecycle
//! flags (docs/lifecycle.md), and the deprecation warning of `import`.

use imgapi_client::{Client, Image, ImageLifecycle};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{print_json, Ctx, Failure};
use crate::cli::{DeprecateArgs, UuidArg};
use crate::stdout::outln;

/// The flags as one line per flag (or JSON with `-j`).
fn print(ctx: &Ctx, line: &str, flags: &ImageLifecycle) -> Result<(), Failure> {
    if ctx.json {
        return print_json(flags);
    }
    if !line.is_empty() {
        outln!("{line}")?;
    }
    let deprecated = match (&flags.deprecated_at, flags.deprecated) {
        (None, _) => "no".to_string(),
        (Some(at), true) => format!("yes, since {at}"),
        (Some(at), false) => format!("from {at}"),
    };
    outln!("deprecated: {deprecated}")?;
    outln!("protected:  {}", if flags.protected { "yes" } else { "no" })
}

async fn change(ctx: &Ctx, uuid: &Uuid, body: Value) -> Result<ImageLifecycle, Failure> {
    Ok(ctx.client.update_image_lifecycle(uuid, &body).await?)
}

pub async fn deprecate(ctx: &Ctx, args: DeprecateArgs) -> Result<(), Failure> {
    let at = if args.clear {
        Value::Null
    } else {
        json!(args.at.as_deref().unwrap_or("now"))
    };
    let flags = change(ctx, &args.uuid, json!({ "deprecated_at": at })).await?;
    let line = if args.clear {
        format!("Cleared the deprecation of image {}", args.uuid)
    } else {
        format!("Deprecated image {}", args.uuid)
    };
    print(ctx, &line, &flags)
}

pub async fn protect(ctx: &Ctx, args: UuidArg, protected: bool) -> Result<(), Failure> {
    let flags = change(ctx, &args.uuid, json!({ "protected": protected })).await?;
    let verb = if protected {
        "Protected"
    } else {
        "Unprotected"
    };
    print(ctx, &format!("{verb} image {}", args.uuid), &flags)
}

pub async fn show(ctx: &Ctx, args: UuidArg) -> Result<(), Failure> {
    let flags = ctx.client.get_image_lifecycle(&args.uuid).await?;
    print(ctx, "", &flags)
}

/// Warn on stderr when `image` is deprecated on the server `client` talks
/// to. A server without lifecycle flags (an original IMGAPI answers 404 for
/// the path) or any failure to ask means no warning: importing goes on.
pub async fn warn_if_deprecated(client: &Client, image: &Image) {
    let Ok(flags) = client.get_image_lifecycle(&image.uuid).await else {
        return;
    };
    if flags.deprecated {
        eprintln!(
            "imgadm: warning: image {} ({}@{}) is deprecated (since {}): its owner has retired it",
            image.uuid,
            image.name,
            image.version,
            flags.deprecated_at.as_deref().unwrap_or("?")
        );
    }
}
