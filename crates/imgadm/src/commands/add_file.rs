use super::create::send_file;
use super::{label, until_interrupted, Ctx, Failure, RERUN_RESUMES};
use crate::cli::AddFileArgs;
use crate::reporters::Bar;

pub async fn run(ctx: &Ctx, args: AddFileArgs) -> Result<(), Failure> {
    let bar = Bar::new("Uploading").about(format!("the upload of {}", args.file.display()));
    let sending = async {
        send_file(
            ctx,
            &args.uuid,
            &args.file,
            &args.compression,
            None,
            &args.resume,
            &bar,
        )
        .await
        .map_err(Failure::from)
    };
    let image = until_interrupted(sending, || Failure::interrupted(RERUN_RESUMES)).await?;
    ctx.print_image(&format!("Added file to image {}", label(&image)), &image)
}
