//! Image signatures (docs/signing.md): OpenSSH SSHSIG signatures of an
//! image's statement (`imgapi_signing::Statement`), verified when added,
//! re-verified whenever they are shown, and the optional activation policy
//! `[signing] require_for_activation`.
//!
//! Signatures are kept beside the record (`imgapi_meta::ImageSignatureStore`),
//! so manifests and every existing answer stay as they were.

use imgapi_domain::ImageRecord;
use imgapi_meta::{MetaError, Revision, StoredSignature};
use imgapi_signing::{FileDigest, Statement, StatementError, VerifiedSignature};
use imgapi_types::{ImageSignature, ImageSignatures};
use uuid::Uuid;

use super::lifecycle::now_ms;
use super::uploads::iso_of_ms;
use super::{Loaded, ServiceError};
use crate::app::AppState;

/// `added_by` of signatures added without an account.
const OPERATOR: &str = "operator";

/// The statement of `image` as stored now.
pub fn statement_of(image: &ImageRecord) -> Result<Statement, StatementError> {
    let mut files = Vec::with_capacity(image.files.len());
    for (index, file) in image.files.iter().enumerate() {
        let sha256 = file
            .sha256
            .clone()
            .ok_or(StatementError::NoSha256 { index })?;
        files.push(FileDigest {
            sha256,
            size: file.size,
        });
    }
    let statement = Statement {
        uuid: image.uuid.to_string(),
        owner: image.owner.to_string(),
        name: image.name.clone(),
        version: image.version.clone(),
        image_type: image.image_type.clone(),
        os: image.os.clone(),
        origin: image.origin.map(|o| o.to_string()),
        files,
    };
    statement.validate()?;
    Ok(statement)
}

/// The statement's text, `None` while the image cannot be signed.
fn statement_text(image: &ImageRecord) -> Option<String> {
    statement_of(image).ok().map(|s| s.to_string())
}

/// Whom this server knows a key as, for `image`: `owner` (a key of a user
/// mapped to the image's owner), `operator` (a key of a user mapped to no
/// account, or one of `[signing] allowed_signers`), or neither.
fn role_of(app: &AppState, image: &ImageRecord, key: &ssh_key::PublicKey) -> Option<&'static str> {
    let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    let keys = app.auth_keys.snapshot();
    let mut operator = false;
    for (user, user_keys) in keys.iter() {
        if !user_keys.iter().any(|k| k.fingerprint == fingerprint) {
            continue;
        }
        match app.config.user_accounts.get(user) {
            Some(account) if *account == image.owner => return Some("owner"),
            Some(_) => {}
            None => operator = true,
        }
    }
    let trusted_operator = app
        .operator_signers
        .trusts_key(key.key_data(), chrono::Utc::now())
        .is_some();
    (operator || trusted_operator).then_some("operator")
}

/// Whether this server knows the key of `stored` (as the image's owner's
/// or an operator's): what a mirror keeps as its own countersignature when
/// the upstream no longer has it.
pub fn known_here(app: &AppState, image: &ImageRecord, stored: &StoredSignature) -> bool {
    ssh_key::PublicKey::from_openssh(&stored.public_key)
        .ok()
        .is_some_and(|key| role_of(app, image, &key).is_some())
}

/// A stored signature as answered, re-verified against `statement`.
fn to_wire(
    app: &AppState,
    image: &ImageRecord,
    statement: Option<&str>,
    stored: &StoredSignature,
) -> ImageSignature {
    let verified =
        statement.and_then(|s| imgapi_signing::verify(s.as_bytes(), &stored.signature).ok());
    let key = verified
        .as_ref()
        .map(|v| v.key.clone())
        .or_else(|| ssh_key::PublicKey::from_openssh(&stored.public_key).ok());
    ImageSignature {
        id: stored.key_id.clone(),
        fingerprint: stored.fingerprint.clone(),
        algorithm: stored.algorithm.clone(),
        public_key: stored.public_key.clone(),
        signature: stored.signature.clone(),
        valid: verified.is_some_and(|v| v.key_id == stored.key_id),
        role: key.and_then(|k| role_of(app, image, &k)).map(str::to_owned),
        added_at: iso_of_ms(stored.added_ms),
        added_by: stored.added_by.clone(),
    }
}

/// The stored signatures of `uuid`, oldest first.
pub(crate) async fn stored_signatures(
    app: &AppState,
    uuid: Uuid,
) -> Result<Vec<StoredSignature>, ServiceError> {
    app.meta
        .image_signatures(uuid)
        .await
        .map_err(ServiceError::meta(format!(
            "error loading the signatures of image {uuid}"
        )))
}

/// ListImageSignatures, after the load step.
pub async fn list(app: &AppState, loaded: &Loaded) -> Result<ImageSignatures, ServiceError> {
    of_image(app, &loaded.stored.image).await
}

/// The signatures of `image` and its statement, as ListImageSignatures
/// answers them.
pub async fn of_image(
    app: &AppState,
    image: &ImageRecord,
) -> Result<ImageSignatures, ServiceError> {
    let statement = statement_text(image);
    let stored = stored_signatures(app, image.uuid).await?;
    Ok(ImageSignatures {
        uuid: image.uuid,
        signatures: stored
            .iter()
            .map(|s| to_wire(app, image, statement.as_deref(), s))
            .collect(),
        statement,
    })
}

/// Verify `armored` over the statement of `image`: the signature as it
/// would be stored, or 422 InvalidSignature saying why.
pub fn verify_for(image: &ImageRecord, armored: &str) -> Result<VerifiedSignature, ServiceError> {
    let statement = statement_of(image).map_err(|e| {
        ServiceError::InvalidSignature(format!("image \"{}\" cannot be signed: {e}", image.uuid))
    })?;
    imgapi_signing::verify(statement.to_string().as_bytes(), armored).map_err(|e| {
        ServiceError::InvalidSignature(format!(
            "invalid signature for image \"{}\": {e}",
            image.uuid
        ))
    })
}

fn stored_form(
    uuid: Uuid,
    verified: &VerifiedSignature,
    added_ms: i64,
    added_by: String,
) -> StoredSignature {
    StoredSignature {
        uuid,
        key_id: verified.key_id.clone(),
        fingerprint: verified.fingerprint.clone(),
        algorithm: verified.algorithm.clone(),
        public_key: verified.public_key_line(),
        signature: verified.armored.clone(),
        added_ms,
        added_by,
    }
}

/// Store `verified` on image `uuid`, verified at revision `expected`.
async fn put(
    app: &AppState,
    signature: &StoredSignature,
    expected: Option<Revision>,
) -> Result<(), ServiceError> {
    let uuid = signature.uuid;
    app.meta
        .put_image_signature(signature, expected)
        .await
        .map_err(|e| match e {
            MetaError::NotFound(_) => ServiceError::not_found(format!("image {uuid} not found")),
            e => ServiceError::meta(format!("error saving a signature of image {uuid}"))(e),
        })
}

/// AddImageSignature, after the load step: owner or operator only. The
/// signature must verify against the image as loaded; if the image changes
/// meanwhile, it is verified again against the new record.
pub async fn add(
    app: &AppState,
    loaded: &Loaded,
    armored: &str,
) -> Result<ImageSignature, ServiceError> {
    loaded.ensure_owner()?;
    let mut stored = loaded.stored.clone();
    let uuid = stored.image.uuid;
    let added_by = loaded
        .account
        .map_or_else(|| OPERATOR.to_owned(), |a| a.to_string());
    for _ in 0..super::images::MAX_WRITE_ATTEMPTS {
        let verified = verify_for(&stored.image, armored)?;
        let signature = stored_form(uuid, &verified, now_ms(), added_by.clone());
        match put(app, &signature, Some(stored.revision)).await {
            Ok(()) => {
                let statement = statement_text(&stored.image);
                return Ok(to_wire(
                    app,
                    &stored.image,
                    statement.as_deref(),
                    &signature,
                ));
            }
            Err(ServiceError::Meta {
                source: MetaError::Conflict(_),
                ..
            }) => {
                stored = app
                    .meta
                    .get(uuid)
                    .await
                    .map_err(ServiceError::meta(format!("error loading image {uuid}")))?
                    .ok_or_else(|| ServiceError::not_found(format!("image {uuid} not found")))?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(ServiceError::meta(format!(
        "error saving a signature of image {uuid}"
    ))(MetaError::Conflict(uuid)))
}

/// RemoveImageSignature, after the load step: owner or operator only.
pub async fn remove(app: &AppState, loaded: &Loaded, id: &str) -> Result<(), ServiceError> {
    loaded.ensure_owner()?;
    let uuid = loaded.stored.image.uuid;
    let removed = app
        .meta
        .remove_image_signature(uuid, id)
        .await
        .map_err(ServiceError::meta(format!(
            "error removing a signature of image {uuid}"
        )))?;
    if removed {
        Ok(())
    } else {
        Err(ServiceError::not_found(format!(
            "image {uuid} has no signature \"{id}\""
        )))
    }
}

/// `[signing] require_for_activation`: refuse to activate `image` unless a
/// signature by a key of its owner or of an operator verifies against it.
/// Only for an activation that would otherwise go ahead (an activated image
/// or one without a file gets ActivateImage's own error).
pub async fn ensure_signed_for_activation(
    app: &AppState,
    image: &ImageRecord,
) -> Result<(), ServiceError> {
    if !app.config.signing.require_for_activation || image.activated || image.files.is_empty() {
        return Ok(());
    }
    let Some(statement) = statement_text(image) else {
        return Err(ServiceError::SignatureRequired(image.uuid));
    };
    let stored = stored_signatures(app, image.uuid).await?;
    let trusted = stored.iter().any(|s| {
        let wire = to_wire(app, image, Some(&statement), s);
        wire.valid && wire.role.is_some()
    });
    if trusted {
        Ok(())
    } else {
        Err(ServiceError::SignatureRequired(image.uuid))
    }
}

/// A signature that arrived with a copy of an image (import-remote,
/// `imgapi mirror`, migrate, an export's sidecar).
#[derive(Debug, Clone)]
pub struct CarriedSignature {
    pub armored: String,
    /// When and by whom it was first added, when the source says.
    pub added_ms: Option<i64>,
    pub added_by: Option<String>,
}

/// What became of carried signatures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carried {
    pub stored: usize,
    /// Why each refused signature was refused (it is not stored).
    pub refused: Vec<String>,
}

/// `signature` verified again against `image` (a copy as stored here), in
/// its stored form; 422 InvalidSignature when it does not verify.
pub fn verified_copy(
    image: &ImageRecord,
    signature: &CarriedSignature,
) -> Result<StoredSignature, ServiceError> {
    let verified = verify_for(image, &signature.armored)?;
    Ok(stored_form(
        image.uuid,
        &verified,
        signature.added_ms.unwrap_or_else(now_ms),
        signature
            .added_by
            .clone()
            .unwrap_or_else(|| OPERATOR.to_owned()),
    ))
}

/// Verify each carried signature again against the copy as stored here and
/// keep those that verify: a copy never carries a signature its bytes and
/// fields do not match.
pub async fn store_carried(
    app: &AppState,
    image: &ImageRecord,
    signatures: &[CarriedSignature],
) -> Result<Carried, ServiceError> {
    let mut carried = Carried::default();
    for signature in signatures {
        match verified_copy(image, signature) {
            Ok(stored) => {
                put(app, &stored, None).await?;
                carried.stored += 1;
            }
            Err(e) => carried.refused.push(e.to_string()),
        }
    }
    Ok(carried)
}

impl From<StoredSignature> for CarriedSignature {
    fn from(s: StoredSignature) -> Self {
        CarriedSignature {
            armored: s.signature,
            added_ms: Some(s.added_ms),
            added_by: Some(s.added_by),
        }
    }
}

/// The signatures of `uuid` in the form a copy carries them.
pub async fn carried_of(app: &AppState, uuid: Uuid) -> Result<Vec<CarriedSignature>, ServiceError> {
    Ok(stored_signatures(app, uuid)
        .await?
        .into_iter()
        .map(CarriedSignature::from)
        .collect())
}
