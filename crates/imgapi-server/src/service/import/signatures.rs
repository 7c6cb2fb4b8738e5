//! Signatures that travel with a copy (docs/signing.md): import-remote and
//! `imgapi mirror` fetch the source's `GET /images/:uuid/signatures` and
//! store each signature again through
//! [`crate::service::signatures::store_carried`], which verifies it against
//! the copy as stored here. A signature that does not verify is refused
//! (logged with the reason), never stored. A source without the endpoint
//! (an original IMGAPI, a DSAPI server) has nothing to carry.

use imgapi_domain::ImageRecord;
use imgapi_meta::StoredSignature;
use imgapi_types::ImageSignatures;
use serde_json::Value;
use uuid::Uuid;

use super::fetch::FetchError;
use super::source::Source;
use crate::app::AppState;
use crate::service::signatures::{
    known_here, store_carried, stored_signatures, verify_for, CarriedSignature,
};
use crate::service::ServiceError;

/// One signature as the source lists it.
#[derive(Debug, Clone)]
pub(crate) struct SourceSignature {
    /// The key's id (its SHA-256 fingerprint in hex), as the source says.
    pub key_id: String,
    pub carried: CarriedSignature,
}

/// What a source shows of an image's signatures.
#[derive(Debug, Clone)]
pub(crate) enum SourceSignatures {
    /// The source has no signatures endpoint: an original IMGAPI (404) or
    /// a DSAPI server. Nothing to carry, and nothing to remove.
    Unsupported,
    Listed(Vec<SourceSignature>),
}

impl SourceSignatures {
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            SourceSignatures::Unsupported => true,
            SourceSignatures::Listed(list) => list.is_empty(),
        }
    }
}

/// `GET <source>/images/<uuid>/signatures` through the `[remote]` policy.
/// 404 (and 405) is a source without signatures, not an error: the image
/// itself was just found there.
pub(crate) async fn fetch_signatures(
    app: &AppState,
    src: &Source,
    uuid: Uuid,
) -> Result<SourceSignatures, FetchError> {
    if src.dsapi {
        return Ok(SourceSignatures::Unsupported);
    }
    let answer = match app
        .remote
        .get_object(src.signatures_url(uuid), src.trust)
        .await
    {
        Ok(map) => map,
        Err(FetchError::Status {
            status: 404 | 405, ..
        }) => return Ok(SourceSignatures::Unsupported),
        Err(e) => return Err(e),
    };
    let listed: ImageSignatures = serde_json::from_value(Value::Object(answer))
        .map_err(|e| FetchError::Transport(format!("an unreadable signatures answer: {e}")))?;
    if listed.uuid != uuid {
        return Err(FetchError::Transport(format!(
            "the answer lists the signatures of {}, not of {uuid}",
            listed.uuid
        )));
    }
    Ok(SourceSignatures::Listed(
        listed
            .signatures
            .into_iter()
            .map(|s| SourceSignature {
                key_id: s.id,
                carried: CarriedSignature {
                    armored: s.signature,
                    added_ms: chrono::DateTime::parse_from_rfc3339(&s.added_at)
                        .ok()
                        .map(|t| t.timestamp_millis()),
                    added_by: Some(s.added_by).filter(|a| !a.is_empty()),
                },
            })
            .collect(),
    ))
}

/// What bringing one image's signatures in line with the source's did
/// (or, dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SignatureSync {
    /// Signatures stored (new here, or replacing this key's older one).
    pub carried: usize,
    /// Why each refused signature was refused (not stored).
    pub refused: Vec<String>,
    /// Fingerprints of the signatures removed here because the source no
    /// longer has them.
    pub removed: Vec<String>,
}

impl SignatureSync {
    pub(crate) fn is_empty(&self) -> bool {
        self.carried == 0 && self.refused.is_empty() && self.removed.is_empty()
    }

    /// `signatures: 2 carried, 1 refused (why), 1 removed (SHA256:…)`.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.carried > 0 {
            parts.push(format!("{} carried", self.carried));
        }
        if !self.refused.is_empty() {
            parts.push(format!(
                "{} refused ({})",
                self.refused.len(),
                self.refused.join("; ")
            ));
        }
        if !self.removed.is_empty() {
            parts.push(format!(
                "{} removed as upstream ({})",
                self.removed.len(),
                self.removed.join(", ")
            ));
        }
        format!("signatures: {}", parts.join(", "))
    }
}

/// What would change: the source's signatures this copy does not hold yet
/// (by their exact text), and the local ones the source no longer has.
pub(crate) struct SignaturePlan<'a> {
    pub new: Vec<&'a CarriedSignature>,
    /// Local signatures by keys the source has no signature of, and that
    /// this server does not know (its own countersignatures stay).
    pub gone: Vec<&'a StoredSignature>,
}

impl SignaturePlan<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.new.is_empty() && self.gone.is_empty()
    }
}

/// Compare the source's signatures of `image` with the `local` ones.
/// Removals are planned only when `propagate_removals` and the source
/// lists signatures at all.
pub(crate) fn plan<'a>(
    app: &AppState,
    image: &ImageRecord,
    source: &'a SourceSignatures,
    local: &'a [StoredSignature],
    propagate_removals: bool,
) -> SignaturePlan<'a> {
    let SourceSignatures::Listed(listed) = source else {
        return SignaturePlan {
            new: Vec::new(),
            gone: Vec::new(),
        };
    };
    let new = listed
        .iter()
        .filter(|s| !local.iter().any(|l| l.signature == s.carried.armored))
        .map(|s| &s.carried)
        .collect();
    let gone = if propagate_removals {
        local
            .iter()
            .filter(|l| !listed.iter().any(|s| s.key_id == l.key_id))
            .filter(|l| !known_here(app, image, l))
            .collect()
    } else {
        Vec::new()
    };
    SignaturePlan { new, gone }
}

/// Carry out `plan` on `image` (as stored here, with its file): store the
/// new signatures that verify against it, remove the gone ones. A dry run
/// verifies and counts, and writes nothing.
pub(crate) async fn apply(
    app: &AppState,
    image: &ImageRecord,
    plan: &SignaturePlan<'_>,
    dry_run: bool,
) -> Result<SignatureSync, ServiceError> {
    let uuid = image.uuid;
    let mut sync = SignatureSync::default();
    if dry_run {
        for signature in &plan.new {
            match verify_for(image, &signature.armored) {
                Ok(_) => sync.carried += 1,
                Err(e) => sync.refused.push(e.to_string()),
            }
        }
    } else if !plan.new.is_empty() {
        let new: Vec<CarriedSignature> = plan.new.iter().map(|s| (*s).clone()).collect();
        let carried = store_carried(app, image, &new).await?;
        sync.carried = carried.stored;
        sync.refused = carried.refused;
    }
    for reason in &sync.refused {
        tracing::warn!(image = %uuid, reason = %reason, "a signature from the source was refused: not stored");
    }
    for gone in &plan.gone {
        if !dry_run {
            app.meta
                .remove_image_signature(uuid, &gone.key_id)
                .await
                .map_err(ServiceError::meta(format!(
                    "error removing a signature of image {uuid}"
                )))?;
        }
        sync.removed.push(gone.fingerprint.clone());
    }
    Ok(sync)
}

/// Bring the signatures of `image` (a copy just made, or being finished)
/// in line with `source`'s list: no removals (a fresh copy has nothing of
/// its own to lose).
pub(crate) async fn carry(
    app: &AppState,
    image: &ImageRecord,
    source: &SourceSignatures,
) -> Result<SignatureSync, ServiceError> {
    if source.is_empty() {
        return Ok(SignatureSync::default());
    }
    let local = stored_signatures(app, image.uuid).await?;
    let plan = plan(app, image, source, &local, false);
    apply(app, image, &plan, false).await
}
