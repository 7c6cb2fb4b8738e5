use imgapi_client::DockerReference;

use super::docker_stream::{follow, warn_about, Operation};
use super::{Ctx, Failure};
use crate::cli::DockerPushArgs;
use crate::docker_ref::ImageRef;
use crate::registry_auth;

/// How the status of a layer the registry has (now or already) starts.
const LAYER_DONE: &[&str] = &["Pushed", "Layer already exists", "Mounted from"];

pub async fn run(ctx: &Ctx, args: DockerPushArgs) -> Result<(), Failure> {
    let target = ImageRef::parse(&args.target).map_err(Failure::usage)?;
    if let DockerReference::Digest(_) = target.reference {
        return Err(Failure::usage(format!(
            "cannot push to a digest ({}): give REPO:TAG",
            args.target
        )));
    }
    let found = registry_auth::from_command_line(&args.login, &target.registry)?;
    warn_about(&found);
    let repo_and_tag = target.display();
    let operation = Operation {
        doing: format!("pushing image {} to {repo_and_tag}", args.uuid),
        layer_done: LAYER_DONE,
        done_word: "pushed",
    };
    let start =
        ctx.client
            .admin_push_docker_image(&args.uuid, &repo_and_tag, None, found.auth.as_ref());
    let outcome = follow(ctx, &operation, start).await?;
    if outcome.pushed.is_none() {
        return Err(Failure::other(format!(
            "the server's answer ended without the pushed manifest of {repo_and_tag} \
             (no message with \"aux\")"
        )));
    }
    Ok(())
}
