use crate::stdout::outln;
use imgapi_client::DockerImportRequest;

use super::docker_stream::{follow, warn_about, Operation};
use super::{Ctx, Failure};
use crate::cli::DockerImportArgs;
use crate::docker_ref::ImageRef;
use crate::registry_auth;

/// The statuses of a layer the server has (now or already).
const LAYER_DONE: &[&str] = &["Pull complete", "Already exists"];

pub async fn run(ctx: &Ctx, args: DockerImportArgs) -> Result<(), Failure> {
    let image = ImageRef::parse(&args.image).map_err(Failure::usage)?;
    let found = registry_auth::from_command_line(&args.login, &image.registry)?;
    warn_about(&found);
    let request = DockerImportRequest {
        repo: image.repo.clone(),
        reference: image.reference.clone(),
        // Unset, the server's default (public) applies.
        public: match (args.public, args.no_public) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
    };
    let operation = Operation {
        doing: format!("importing {}", image.display()),
        layer_done: LAYER_DONE,
        done_word: "imported",
    };
    let start = ctx
        .client
        .admin_import_docker_image(&request, found.auth.as_ref());
    let outcome = follow(ctx, &operation, start).await?;
    let Some(created) = outcome.created else {
        return Err(Failure::other(format!(
            "the server's answer ended without the imported image of {} \
             (no create-docker-image message)",
            image.display()
        )));
    };
    if !ctx.json {
        outln!("Image UUID: {}", created.image_uuid)?;
    }
    Ok(())
}
