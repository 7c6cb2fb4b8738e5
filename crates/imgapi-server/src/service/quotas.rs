//! Per-owner quotas and write-once versions (docs/lifecycle.md "Quotas",
//! "Write-once versions").
//!
//! Before a request adds an image record or bytes for an owner with a
//! limit, it reserves the room in the database ([`imgapi_meta::QuotaStore`]:
//! checked and recorded atomically, per owner, across instances); the
//! reservation is released once the record that makes the use real is
//! committed, or when the request fails. A body of unknown size reserves
//! in steps as it arrives and is cut off when the next step would pass the
//! limit. Owners without a limit (and servers without write-once
//! versions) take no reservation at all: nothing changes for them.

use super::lifecycle::now_ms;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use imgapi_blob::ByteStream;
use imgapi_domain::ImageRecord;
use imgapi_meta::{
    MetaStore, QuotaLimits, QuotaOverride, QuotaUse, ReservationRequest, ReserveOutcome,
};
use uuid::Uuid;

use super::ServiceError;
use crate::app::AppState;
use crate::config::QuotasConfig;

/// How long a reservation lives unless renewed: long enough for a slow
/// upload step, short enough that a killed instance's reservations lapse.
const RESERVATION_TTL_MS: i64 = 15 * 60 * 1000;
/// Bytes reserved at a time while a body of unknown size streams in.
const STREAM_STEP: u64 = 8 * 1024 * 1024;

/// The limits of `owner`: a stored override (PutQuota) before a
/// `[quotas.owners]` entry before the defaults, key by key.
pub async fn limits_of(app: &AppState, owner: Uuid) -> Result<QuotaLimits, ServiceError> {
    configured_limits(&app.config.quotas, app.meta.as_ref(), owner).await
}

/// [`limits_of`] from the configuration and the store alone (`imgapi usage`).
async fn configured_limits(
    config: &QuotasConfig,
    meta: &dyn MetaStore,
    owner: Uuid,
) -> Result<QuotaLimits, ServiceError> {
    let stored = meta
        .quota_override(owner)
        .await
        .map_err(ServiceError::meta(format!(
            "error loading the quota of {owner}"
        )))?;
    Ok(effective_limits(config, owner, stored.as_ref()))
}

/// [`limits_of`] with the stored override already read.
pub fn effective_limits(
    config: &QuotasConfig,
    owner: Uuid,
    stored: Option<&QuotaOverride>,
) -> QuotaLimits {
    let configured = config.owners.get(&owner);
    let pick = |stored: Option<u64>, configured: Option<u64>, default: u64| {
        stored.or(configured).unwrap_or(default)
    };
    QuotaLimits {
        images: pick(
            stored.and_then(|o| o.images),
            configured.and_then(|o| o.images),
            config.default_images,
        ),
        bytes: pick(
            stored.and_then(|o| o.bytes),
            configured.and_then(|o| o.bytes),
            config.default_bytes,
        ),
    }
}

/// Room held for a request until it is committed or fails. Dropping it
/// unreleased (a failed or cancelled request) releases it in the
/// background; a release that fails lets it lapse at its expiry.
pub struct Reservation {
    id: Uuid,
    meta: Arc<dyn MetaStore>,
    released: bool,
}

impl Reservation {
    /// Give the room back (the record is committed, or the request failed).
    pub async fn release(mut self) {
        self.released = true;
        if let Err(e) = self.meta.release_reservation(self.id).await {
            tracing::warn!(reservation = %self.id, error = %e, "could not release a quota reservation; it lapses at its expiry");
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (id, meta) = (self.id, Arc::clone(&self.meta));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = meta.release_reservation(id).await {
                    tracing::warn!(reservation = %id, error = %e, "could not release a quota reservation; it lapses at its expiry");
                }
            });
        }
    }
}

/// Release `reservation`, if any.
pub async fn release(reservation: Option<Reservation>) {
    if let Some(r) = reservation {
        r.release().await;
    }
}

fn request(
    id: Uuid,
    owner: Uuid,
    image: Uuid,
    limits: QuotaLimits,
    images: u64,
    bytes: u64,
) -> ReservationRequest {
    let now = now_ms();
    ReservationRequest {
        id,
        owner,
        image,
        images,
        bytes,
        limits,
        claim_version: None,
        now_ms: now,
        expires_ms: now.saturating_add(RESERVATION_TTL_MS),
    }
}

fn images_exceeded(owner: Uuid, limit: u64, used: &QuotaUse) -> ServiceError {
    ServiceError::QuotaExceeded(format!(
        "image quota exceeded: owner \"{owner}\" may have at most {limit} images and has {} \
         ({} more being created); this request would add 1",
        used.images, used.reserved_images
    ))
}

fn bytes_exceeded(owner: Uuid, limit: u64, used: &QuotaUse, size: &str) -> ServiceError {
    ServiceError::QuotaExceeded(format!(
        "byte quota exceeded: owner \"{owner}\" may store at most {limit} bytes and stores {} \
         ({} more reserved by uploads in progress); this request would add {size}",
        used.bytes, used.reserved_bytes
    ))
}

/// Before `record` (new, or a new name/version of an existing image when
/// `counts_image` is false) is saved: reserve an image of its owner's
/// count and, with write-once versions, claim its (name, version).
/// `None` when neither applies to its owner.
pub async fn reserve_image(
    app: &AppState,
    record: &ImageRecord,
    counts_image: bool,
) -> Result<Option<Reservation>, ServiceError> {
    reserve_record(app, record, u64::from(counts_image), 0).await
}

/// Before a record that arrives with its files already stored (Docker
/// and LXD imports) is inserted: its image and its bytes, at once.
pub async fn reserve_stored_record(
    app: &AppState,
    record: &ImageRecord,
) -> Result<Option<Reservation>, ServiceError> {
    let bytes = record
        .files
        .iter()
        .map(|f| f.size)
        .chain(record.icon.as_ref().map(|i| i.size))
        .fold(0u64, u64::saturating_add);
    reserve_record(app, record, 1, bytes).await
}

async fn reserve_record(
    app: &AppState,
    record: &ImageRecord,
    images: u64,
    bytes: u64,
) -> Result<Option<Reservation>, ServiceError> {
    let write_once = app.config.quotas.write_once_versions;
    let owner = record.owner;
    let limits = limits_of(app, owner).await?;
    let counted = (images > 0 && limits.images > 0) || (bytes > 0 && limits.bytes > 0);
    if !counted && !write_once {
        return Ok(None);
    }
    let id = Uuid::new_v4();
    let mut req = request(id, owner, record.uuid, limits, images, bytes);
    if write_once {
        req.claim_version = Some((record.name.clone(), record.version.clone()));
    }
    let outcome = app
        .meta
        .reserve(&req)
        .await
        .map_err(ServiceError::meta(format!(
            "error saving image {}",
            record.uuid
        )))?;
    match outcome {
        ReserveOutcome::Granted => Ok(Some(Reservation {
            id,
            meta: Arc::clone(&app.meta),
            released: false,
        })),
        ReserveOutcome::OverImages(used) => Err(images_exceeded(owner, limits.images, &used)),
        ReserveOutcome::OverBytes(used) => Err(bytes_exceeded(
            owner,
            limits.bytes,
            &used,
            &format!("{bytes} bytes"),
        )),
        ReserveOutcome::VersionTaken(existing) => Err(ServiceError::ImageVersionExists {
            owner,
            name: record.name.clone(),
            version: record.version.clone(),
            existing,
        }),
    }
}

/// Bytes on their way into an image of an owner with a byte limit.
pub struct ByteReservation {
    reservation: Reservation,
    /// Set when the stream was cut off: the refusal to answer with.
    refused: Arc<Mutex<Option<ServiceError>>>,
}

impl ByteReservation {
    /// The refusal that cut the body off, if that is why it failed.
    pub fn refusal(&self) -> Option<ServiceError> {
        self.refused.lock().ok().and_then(|mut r| r.take())
    }

    pub async fn release(self) {
        self.reservation.release().await;
    }
}

/// Before a body of `size` bytes (when known) is stored for `image` of
/// `owner`: reserve it, or refuse before a byte is read. For an unknown
/// size the returned body reserves in steps as it arrives and fails when
/// the next step would pass the limit ([`ByteReservation::refusal`] then
/// says why). `None` (and the body untouched) when the owner has no byte
/// limit.
pub async fn reserve_bytes(
    app: &AppState,
    owner: Uuid,
    image: Uuid,
    size: Option<u64>,
    body: ByteStream,
) -> Result<(ByteStream, Option<ByteReservation>), ServiceError> {
    let limits = limits_of(app, owner).await?;
    if limits.bytes == 0 {
        return Ok((body, None));
    }
    let id = Uuid::new_v4();
    let outcome = app
        .meta
        .reserve(&request(id, owner, image, limits, 0, size.unwrap_or(0)))
        .await
        .map_err(ServiceError::meta(format!(
            "error reserving storage for image {image}"
        )))?;
    let shown = size.map_or_else(|| "more bytes".to_string(), |s| format!("{s} bytes"));
    match outcome {
        ReserveOutcome::Granted => {}
        ReserveOutcome::OverBytes(used) | ReserveOutcome::OverImages(used) => {
            return Err(bytes_exceeded(owner, limits.bytes, &used, &shown))
        }
        ReserveOutcome::VersionTaken(_) => {
            return Err(ServiceError::Internal(
                "unexpected version claim in a byte reservation".into(),
            ))
        }
    }
    let reservation = Reservation {
        id,
        meta: Arc::clone(&app.meta),
        released: false,
    };
    let refused = Arc::new(Mutex::new(None));
    let body = metered(
        body,
        Arc::clone(&app.meta),
        request(id, owner, image, limits, 0, 0),
        size.unwrap_or(0),
        Arc::clone(&refused),
    );
    Ok((
        body,
        Some(ByteReservation {
            reservation,
            refused,
        }),
    ))
}

/// `body`, keeping the reservation `base` names (already `reserved`
/// bytes) ahead of the bytes that arrive: grown by [`STREAM_STEP`], or by
/// exactly what is missing when a whole step no longer fits, and renewed
/// while a long upload runs so it never lapses under it. When growing is
/// refused, the body fails (the blob store then discards what it staged)
/// and `refused` says why.
fn metered(
    body: ByteStream,
    meta: Arc<dyn MetaStore>,
    base: ReservationRequest,
    reserved: u64,
    refused: Arc<Mutex<Option<ServiceError>>>,
) -> ByteStream {
    // (received, reserved, when the expiry was last moved)
    let state = Arc::new(tokio::sync::Mutex::new((0u64, reserved, now_ms())));
    let stream = body.then(move |item| {
        let (state, meta, base, refused) = (
            Arc::clone(&state),
            Arc::clone(&meta),
            base.clone(),
            Arc::clone(&refused),
        );
        async move {
            let chunk = item?;
            let mut guard = state.lock().await;
            let (received, reserved, renewed_ms) = &mut *guard;
            *received = received.saturating_add(chunk.len() as u64);
            if *received <= *reserved {
                let now = now_ms();
                if now.saturating_sub(*renewed_ms) > RESERVATION_TTL_MS / 3 {
                    let renew = ReservationRequest {
                        bytes: 0,
                        now_ms: now,
                        expires_ms: now.saturating_add(RESERVATION_TTL_MS),
                        ..base.clone()
                    };
                    // A failed renewal is retried with the next chunk; the
                    // reservation has two thirds of its life left.
                    match meta.reserve(&renew).await {
                        Ok(_) => *renewed_ms = now,
                        Err(e) => tracing::warn!(error = %e, "could not renew a quota reservation"),
                    }
                }
                return Ok(chunk);
            }
            let missing = *received - *reserved;
            for step in [missing.max(STREAM_STEP), missing] {
                let now = now_ms();
                let req = ReservationRequest {
                    bytes: step,
                    now_ms: now,
                    expires_ms: now.saturating_add(RESERVATION_TTL_MS),
                    ..base.clone()
                };
                match meta.reserve(&req).await {
                    Ok(ReserveOutcome::Granted) => {
                        *reserved = reserved.saturating_add(step);
                        *renewed_ms = now;
                        return Ok(chunk);
                    }
                    Ok(ReserveOutcome::OverBytes(used)) if step == missing => {
                        let refusal = bytes_exceeded(
                            base.owner,
                            base.limits.bytes,
                            &used,
                            &format!("at least {received} bytes"),
                        );
                        let message = refusal.to_string();
                        if let Ok(mut slot) = refused.lock() {
                            *slot = Some(refusal);
                        }
                        return Err(std::io::Error::other(message));
                    }
                    Ok(_) => continue,
                    Err(e) => return Err(std::io::Error::other(e.to_string())),
                }
            }
            Err(std::io::Error::other("quota reservation refused"))
        }
    });
    Box::pin(stream)
}

/// The wire form of `owner`'s quota: limits, use, stored override.
pub async fn quota_of(app: &AppState, owner: Uuid) -> Result<imgapi_types::Quota, ServiceError> {
    let stored = app
        .meta
        .quota_override(owner)
        .await
        .map_err(ServiceError::meta(format!(
            "error loading the quota of {owner}"
        )))?;
    describe(app, owner, stored).await
}

async fn describe(
    app: &AppState,
    owner: Uuid,
    stored: Option<QuotaOverride>,
) -> Result<imgapi_types::Quota, ServiceError> {
    let limits = effective_limits(&app.config.quotas, owner, stored.as_ref());
    let summary = summarize(app.meta.as_ref(), owner, limits).await?;
    Ok(imgapi_types::Quota {
        owner,
        images: summary.images,
        bytes: summary.bytes,
        stored_override: stored.map(|o| imgapi_types::QuotaOverrideBody {
            images: o.images,
            bytes: o.bytes,
        }),
    })
}

async fn summarize(
    meta: &dyn MetaStore,
    owner: Uuid,
    limits: QuotaLimits,
) -> Result<imgapi_types::UsageQuota, ServiceError> {
    let used = meta
        .quota_use(owner, now_ms())
        .await
        .map_err(ServiceError::meta(format!(
            "error computing the use of {owner}"
        )))?;
    Ok(imgapi_types::UsageQuota {
        images: imgapi_types::QuotaImages {
            limit: limits.images,
            used: used.images,
        },
        bytes: imgapi_types::QuotaBytes {
            limit: limits.bytes,
            used: used.bytes,
            reserved: used.reserved_bytes,
        },
    })
}

/// `quota` of `owner` in `/usage`: `None` when the owner has no limit,
/// so answers without quotas stay as they were.
pub async fn usage_quota(
    config: &QuotasConfig,
    meta: &dyn MetaStore,
    owner: Uuid,
) -> Result<Option<imgapi_types::UsageQuota>, ServiceError> {
    let limits = configured_limits(config, meta, owner).await?;
    if limits == QuotaLimits::default() {
        return Ok(None);
    }
    summarize(meta, owner, limits).await.map(Some)
}

/// The wire form of `usage` (`GET /usage`, `imgapi usage -j`), with the
/// `quota` of each owner that has a limit.
pub async fn usage_with_quotas(
    config: &QuotasConfig,
    meta: &dyn MetaStore,
    usage: &imgapi_meta::Usage,
    bin: &[imgapi_meta::BinUsage],
) -> Result<imgapi_types::Usage, ServiceError> {
    let mut answer = super::usage::wire(usage, bin);
    for o in &mut answer.owners {
        o.quota = usage_quota(config, meta, o.owner).await?;
    }
    Ok(answer)
}

/// ListQuotas: the owners with a configured or stored quota, by owner.
pub async fn list(app: &AppState) -> Result<Vec<imgapi_types::Quota>, ServiceError> {
    let stored = app
        .meta
        .quota_overrides()
        .await
        .map_err(ServiceError::meta("error listing quotas"))?;
    let mut owners: std::collections::BTreeMap<Uuid, Option<QuotaOverride>> = app
        .config
        .quotas
        .owners
        .keys()
        .map(|owner| (*owner, None))
        .collect();
    for o in stored {
        owners.insert(o.owner, Some(o));
    }
    let mut out = Vec::with_capacity(owners.len());
    for (owner, stored) in owners {
        out.push(describe(app, owner, stored).await?);
    }
    Ok(out)
}

/// PutQuota: store `owner`'s limits (replacing the configured ones).
pub async fn put(
    app: &AppState,
    owner: Uuid,
    body: imgapi_types::QuotaOverrideBody,
) -> Result<imgapi_types::Quota, ServiceError> {
    let stored = QuotaOverride {
        owner,
        images: body.images,
        bytes: body.bytes,
    };
    app.meta
        .put_quota_override(&stored)
        .await
        .map_err(ServiceError::meta(format!(
            "error saving the quota of {owner}"
        )))?;
    describe(app, owner, Some(stored)).await
}

/// DeleteQuota: drop `owner`'s stored limits; 404 when there are none.
pub async fn delete(app: &AppState, owner: Uuid) -> Result<(), ServiceError> {
    let existed = app
        .meta
        .delete_quota_override(owner)
        .await
        .map_err(ServiceError::meta(format!(
            "error deleting the quota of {owner}"
        )))?;
    if existed {
        Ok(())
    } else {
        Err(ServiceError::not_found(format!(
            "owner \"{owner}\" has no stored quota"
        )))
    }
}

/// An upload session's hold on its owner's bytes: its reservation has the
/// session's id and lives as long as the session. `bytes` more are
/// reserved (0 only moves the expiry); refused when they would pass the
/// limit. Nothing happens for owners without a byte limit.
pub async fn reserve_for_session(
    app: &AppState,
    owner: Uuid,
    image: Uuid,
    session: Uuid,
    bytes: u64,
    expires_ms: i64,
) -> Result<(), ServiceError> {
    let limits = limits_of(app, owner).await?;
    if limits.bytes == 0 {
        return Ok(());
    }
    let req = ReservationRequest {
        expires_ms,
        ..request(session, owner, image, limits, 0, bytes)
    };
    let outcome = app
        .meta
        .reserve(&req)
        .await
        .map_err(ServiceError::meta(format!(
            "error reserving storage for upload session {session}"
        )))?;
    match outcome {
        ReserveOutcome::Granted => Ok(()),
        ReserveOutcome::OverBytes(used) | ReserveOutcome::OverImages(used) => Err(bytes_exceeded(
            owner,
            limits.bytes,
            &used,
            &format!("{bytes} bytes"),
        )),
        ReserveOutcome::VersionTaken(_) => Err(ServiceError::Internal(
            "unexpected version claim in a byte reservation".into(),
        )),
    }
}

/// Drop an upload session's reservation (finished, aborted); a failure
/// leaves it to lapse at the session's expiry.
pub async fn release_session(app: &AppState, session: Uuid) {
    if let Err(e) = app.meta.release_reservation(session).await {
        tracing::warn!(upload = %session, error = %e, "could not release an upload session's quota reservation; it lapses at its expiry");
    }
}
