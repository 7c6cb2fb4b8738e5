//! `imgadm sign UUID`: sign an image's statement with the configured key
//! and add the signature to the image (AddImageSignature).

use uuid::Uuid;

use imgapi_client::{Image, ImageSignature, ImageSigner};

use super::signatures::{self, Refusal};
use super::{label, print_json, Ctx, Failure};
use crate::cli::SignArgs;
use crate::stdout::outln;

pub async fn run(ctx: &Ctx, args: SignArgs) -> Result<(), Failure> {
    let signer = signatures::image_signer(ctx.key.as_deref())?;
    let (image, added) = sign_image(ctx, &args.uuid, &signer, None).await?;
    if ctx.json {
        return print_json(&added);
    }
    print_signed(&image, &added)
}

/// `Signed image UUID (name@version) with ALGORITHM key FINGERPRINT[ (role)]`.
pub(super) fn print_signed(image: &Image, added: &ImageSignature) -> Result<(), Failure> {
    let role = added
        .role
        .as_deref()
        .map_or_else(String::new, |r| format!(" (as {r})"));
    outln!(
        "Signed image {} with {} key {}{role}",
        label(image),
        added.algorithm,
        signatures::display_fingerprint(added)
    )
}

/// Sign image `uuid` and add the signature. The statement the server
/// serves is signed only once checked against the manifest it serves (and,
/// with `local_file`, against the SHA-256 and size of the file the caller
/// just uploaded), so a signature never vouches for something the
/// publisher did not see.
pub(super) async fn sign_image(
    ctx: &Ctx,
    uuid: &Uuid,
    signer: &ImageSigner,
    local_file: Option<(&str, u64)>,
) -> Result<(Image, ImageSignature), Failure> {
    let image = ctx.client.get_image(uuid).await?;
    let refuse =
        |why: String| Failure::other(format!("cannot sign image {}: {why}", label(&image)));
    let listed = signatures::fetch(&ctx.client, uuid)
        .await
        .map_err(|e| e.into_failure(&ctx.client))?;
    let statement = match signatures::checked_statement(&image, &listed) {
        Ok(s) => s,
        Err(Refusal::NoStatement) => {
            return Err(refuse(
                "it has no file yet: add its file before signing it".to_string(),
            ))
        }
        Err(r) => return Err(refuse(r.to_string())),
    };
    if let Some((sha256, size)) = local_file {
        let signed = statement.files.first();
        if signed.is_none_or(|f| f.sha256 != sha256 || f.size != size) {
            return Err(refuse(format!(
                "the server's statement names file sha256 {} size {}, not the file uploaded \
                 (sha256 {sha256}, {size} bytes)",
                signed.map_or("-", |f| f.sha256.as_str()),
                signed.map_or(0, |f| f.size),
            )));
        }
    }
    let armored = signer.sign(statement.to_string().as_bytes())?;
    let added = ctx.client.add_image_signature(uuid, &armored, None).await?;
    Ok((image, added))
}
