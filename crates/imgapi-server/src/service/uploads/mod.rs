//! Resumable upload sessions (an IMGAPI extension, docs/uploads.md): an
//! image file sent in chunks over any number of requests, to any instance,
//! then verified and committed exactly as AddImageFile commits it.
//!
//! State: the session record lives in the MetaStore (offset, S3 part ids,
//! the saved running SHA-1/MD5/SHA-256, expiry) and its bytes in the
//! BlobStore as a staged upload (local part file / S3 multipart upload to
//! the final key). So any instance can take any request of any session.
//!
//! Concurrency: a chunk or a finish first claims the session's lease in
//! the MetaStore (one request at a time writes a session's bytes), renews
//! it while the chunk streams, and records the chunk with a conditional
//! write (lease still held, offset unchanged). The offset therefore only
//! moves once a whole chunk is durably stored, and the running digests
//! always describe exactly the first `offset` bytes. A request that dies
//! mid-chunk releases the lease (or it expires); the bytes it wrote past
//! the offset are overwritten by the next chunk.
//!
//! Expiry: every chunk moves `expires_ms` to now + `upload_session_ttl`;
//! [`sweep`] (at start-up and periodically, see [`start_sweeper`]) deletes
//! expired sessions and aborts their staged bytes, then aborts staged
//! uploads older than the TTL whose session record is gone.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use imgapi_blob::{
    BlobError, BlobStore, ByteStream, Digests, PutOutcome, StagedChunk, STAGED_KEY_SUFFIX,
};
use imgapi_domain::{DomainError, ImageRecord};
use imgapi_meta::{StoredImage, UploadSession};
use imgapi_types::{FieldCode, FieldError, MAX_IMAGE_FILE_SIZE};
use uuid::Uuid;

use super::files::{check_compression, choose_store, new_blob_key, record_file};
use super::{quotas, ServiceError};
use crate::app::{App, AppState};
use lease::{busy, Lease};

mod lease;

pub use lease::{release_stale_leases, LeaseHolder};

/// Sessions handled per sweep batch.
const SWEEP_BATCH: u32 = 100;

/// Query inputs of CreateUploadSession.
pub struct CreateParams<'a> {
    pub compression: Option<&'a str>,
    pub sha1: Option<&'a str>,
    pub size: Option<&'a str>,
    pub dataset_guid: Option<&'a str>,
    pub storage: Option<&'a str>,
    pub account_given: bool,
}

/// Query inputs of FinishUploadSession: what the file must be.
pub struct FinishParams<'a> {
    pub sha1: Option<&'a str>,
    pub sha256: Option<&'a str>,
    pub size: Option<&'a str>,
}

/// A parsed `Content-Range: bytes START-END/TOTAL` (END inclusive;
/// TOTAL `None` for `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    pub start: u64,
    pub end: u64,
    pub total: Option<u64>,
}

impl ChunkRange {
    /// Parse the header value; `None` when malformed.
    pub fn parse(value: &str) -> Option<ChunkRange> {
        let spec = value.trim().strip_prefix("bytes")?.trim_start();
        let (range, total) = spec.split_once('/')?;
        let (start, end) = range.trim().split_once('-')?;
        let digits = |s: &str| {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let (start, end) = (digits(start)?, digits(end)?);
        let total = match total.trim() {
            "*" => None,
            t => Some(digits(t)?),
        };
        (start <= end && total.is_none_or(|t| end < t)).then_some(ChunkRange { start, end, total })
    }

    fn len(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// What a chunk request did.
pub enum ChunkOutcome {
    /// The chunk is stored; the session as it is now.
    Stored(UploadSession),
    /// The chunk was received before (a retry): nothing done.
    AlreadyReceived(UploadSession),
    /// The chunk starts after the session's offset (→ 416 with the offset).
    OutOfOrder(UploadSession),
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `ms` since the epoch as the API's ISO 8601 form.
pub fn iso_of_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn ttl_ms(app: &AppState) -> i64 {
    i64::try_from(app.config.upload_session_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// The smallest chunk (other than the last) the session's store accepts.
pub fn chunk_min(app: &AppState, session: &UploadSession) -> u64 {
    app.blob_store(&session.stor)
        .map_or(1, |store| store.staged_min_chunk())
}

pub(super) fn not_found(id: Uuid) -> ServiceError {
    ServiceError::not_found(format!("upload session {id} not found"))
}

fn store_of<'a>(
    app: &'a AppState,
    session: &UploadSession,
) -> Result<&'a Arc<dyn BlobStore>, ServiceError> {
    super::store_for(app, &session.stor)
}

/// The session `id` of image `image`, if it exists and has not expired.
pub async fn load(app: &AppState, image: Uuid, id: Uuid) -> Result<UploadSession, ServiceError> {
    let session = app
        .meta
        .get_upload(id)
        .await
        .map_err(ServiceError::meta(format!(
            "error loading upload session {id}"
        )))?
        .filter(|s| s.image_uuid == image && s.expires_ms >= now_ms())
        .ok_or_else(|| not_found(id))?;
    Ok(session)
}

fn parse_size(raw: Option<&str>, field: &str) -> Result<Option<u64>, ServiceError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let size = raw
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ServiceError::invalid_parameter(
                format!("invalid \"{field}\": {raw:?} is not a positive integer"),
                vec![FieldError::invalid(field)],
            )
        })?;
    if size > MAX_IMAGE_FILE_SIZE {
        return Err(ServiceError::Upload(format!(
            "image file size {size} exceeds the maximum allowed size, 20 GiB"
        )));
    }
    Ok(Some(size))
}

/// CreateUploadSession: the checks of AddImageFile (api.md §5.5: state,
/// compression, storage, size), then a staged upload and its record.
pub async fn create(
    app: &AppState,
    stored: &StoredImage,
    params: CreateParams<'_>,
) -> Result<UploadSession, ServiceError> {
    let uuid = stored.image.uuid;
    if stored.image.activated {
        return Err(DomainError::ImageFilesImmutable(uuid).into());
    }
    let compression = check_compression(params.compression)?;
    let store = choose_store(app, params.storage, params.account_given)?;
    let size = parse_size(params.size, "size")?;
    let id = Uuid::new_v4();
    let now = now_ms();
    let expires_ms = now.saturating_add(ttl_ms(app));
    // A declared size is held for the whole session: refused here, before
    // anything is staged.
    quotas::reserve_for_session(
        app,
        stored.image.owner,
        uuid,
        id,
        size.unwrap_or(0),
        expires_ms,
    )
    .await?;
    let key = format!("{}{STAGED_KEY_SUFFIX}", new_blob_key(uuid, "file0"));
    let handle = match store.staged_create(&key).await {
        Ok(handle) => handle,
        Err(e) => {
            quotas::release_session(app, id).await;
            return Err(ServiceError::blob("error starting upload session")(e));
        }
    };
    let session = UploadSession {
        id,
        image_uuid: uuid,
        compression,
        sha1: params.sha1.map(str::to_string),
        dataset_guid: params.dataset_guid.map(str::to_string),
        stor: store.kind().to_string(),
        blob_key: key,
        handle,
        offset: 0,
        size,
        parts: Vec::new(),
        digests: Digests::new().to_state(),
        created_ms: now,
        expires_ms,
        lease: None,
    };
    if let Err(e) = app.meta.insert_upload(&session).await {
        quotas::release_session(app, id).await;
        if let Err(abort) = store.staged_abort(&session.blob_key, &session.handle).await {
            tracing::warn!(error = %abort, "could not abort the staged upload of a failed session");
        }
        return Err(ServiceError::meta("error saving upload session")(e));
    }
    Ok(session)
}

/// `body` without its first `skip` bytes (the part of a chunk the session
/// already has).
fn skip_prefix(body: ByteStream, skip: u64) -> ByteStream {
    if skip == 0 {
        return body;
    }
    let mut left = skip;
    Box::pin(body.filter_map(move |item| {
        let out = match item {
            Ok(mut bytes) => {
                let n = bytes.len() as u64;
                if left >= n {
                    left -= n;
                    None
                } else {
                    let rest = bytes.split_off(usize::try_from(left).unwrap_or(0));
                    left = 0;
                    Some(Ok(rest))
                }
            }
            Err(e) => Some(Err(e)),
        };
        futures_util::future::ready(out)
    }))
}

fn range_error(message: String) -> ServiceError {
    ServiceError::invalid_parameter(
        message,
        vec![FieldError::new("Content-Range", FieldCode::Invalid)],
    )
}

/// Check a chunk's range against the limits and the session's size.
fn check_range(
    session: &UploadSession,
    range: &ChunkRange,
    content_length: Option<u64>,
) -> Result<(), ServiceError> {
    if range.end >= MAX_IMAGE_FILE_SIZE || range.total.is_some_and(|t| t > MAX_IMAGE_FILE_SIZE) {
        return Err(ServiceError::Upload(
            "image file size exceeds the maximum allowed size, 20 GiB".into(),
        ));
    }
    if let (Some(total), Some(size)) = (range.total, session.size) {
        if total != size {
            return Err(range_error(format!(
                "Content-Range total {total} differs from the upload's size {size}"
            )));
        }
    }
    if let Some(size) = session.size.filter(|s| range.end >= *s) {
        return Err(range_error(format!(
            "Content-Range ends at byte {} beyond the upload's size {size}",
            range.end
        )));
    }
    if let Some(cl) = content_length.filter(|cl| *cl != range.len()) {
        return Err(range_error(format!(
            "Content-Length {cl} does not match the Content-Range length {}",
            range.len()
        )));
    }
    Ok(())
}

/// WriteUploadChunk: store `range` of the file from `body`.
pub async fn put_chunk(
    app: &AppState,
    stored: &StoredImage,
    id: Uuid,
    range: ChunkRange,
    content_length: Option<u64>,
    body: ByteStream,
) -> Result<ChunkOutcome, ServiceError> {
    let uuid = stored.image.uuid;
    if stored.image.activated {
        return Err(DomainError::ImageFilesImmutable(uuid).into());
    }
    let session = load(app, uuid, id).await?;
    check_range(&session, &range, content_length)?;
    // Fast paths without taking the lease.
    if range.end < session.offset {
        return Ok(ChunkOutcome::AlreadyReceived(session));
    }
    if range.start > session.offset {
        return Ok(ChunkOutcome::OutOfOrder(session));
    }
    // Without a declared size, each chunk reserves its bytes before a byte
    // of it is read; with one, the hold just lives on with the session.
    let new_bytes = match session.size {
        Some(_) => 0,
        None => range.end.saturating_add(1).saturating_sub(session.offset),
    };
    quotas::reserve_for_session(
        app,
        stored.image.owner,
        uuid,
        id,
        new_bytes,
        now_ms().saturating_add(ttl_ms(app)),
    )
    .await?;
    let (lease, session) = Lease::claim(app, id).await?;
    // The offset may have moved before we got the lease.
    if range.end < session.offset {
        lease.release().await;
        return Ok(ChunkOutcome::AlreadyReceived(session));
    }
    if range.start > session.offset {
        lease.release().await;
        return Ok(ChunkOutcome::OutOfOrder(session));
    }
    let offset = session.offset;
    let len = range.end + 1 - offset;
    let size = range.total.or(session.size);
    let last = size == Some(range.end + 1);
    let store = match store_of(app, &session) {
        Ok(store) => store,
        Err(e) => {
            lease.release().await;
            return Err(e);
        }
    };
    let min = store.staged_min_chunk();
    if !last && len < min {
        lease.release().await;
        return Err(range_error(format!(
            "a chunk other than the last must be at least {min} bytes on this server's {} storage \
             (chunk_size_min); this one has {len}",
            store.kind()
        )));
    }
    let digests = match Digests::from_state(&session.digests) {
        Ok(d) => d,
        Err(e) => {
            lease.release().await;
            return Err(ServiceError::blob(format!(
                "upload session {id}: saved digests"
            ))(e));
        }
    };
    let chunk = StagedChunk {
        key: &session.blob_key,
        handle: &session.handle,
        offset,
        len,
        parts: &session.parts,
        last,
        digests,
    };
    let body = skip_prefix(body, offset - range.start);
    let appended = lease.renewing(app, store.staged_append(chunk, body)).await;
    let progress = match appended {
        Ok(progress) => progress,
        Err(e) => {
            lease.release().await;
            return Err(chunk_error(e));
        }
    };
    let mut updated = session.clone();
    updated.offset = range.end + 1;
    updated.size = size;
    updated.parts.extend(progress.new_parts);
    updated.digests = progress.digests.to_state();
    updated.expires_ms = now_ms().saturating_add(ttl_ms(app));
    updated.lease = None;
    let recorded = app
        .meta
        .advance_upload(&updated, &lease.owner, offset)
        .await
        .map_err(ServiceError::meta(format!(
            "error saving upload session {id}"
        )));
    match recorded {
        Ok(true) => {
            lease.ended();
            Ok(ChunkOutcome::Stored(updated))
        }
        Ok(false) => {
            lease.ended();
            // Deleted (aborted, expired) meanwhile, or the lease was lost.
            match app.meta.get_upload(id).await {
                Ok(Some(session)) => Err(busy(&session)),
                _ => Err(not_found(id)),
            }
        }
        Err(e) => {
            lease.release().await;
            Err(e)
        }
    }
}

fn chunk_error(e: BlobError) -> ServiceError {
    match e {
        BlobError::TooLarge { limit } => ServiceError::Upload(format!(
            "the chunk body is longer than its Content-Range ({limit} bytes)"
        )),
        BlobError::Source(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ServiceError::Upload(format!(
                "the chunk body is shorter than its Content-Range: {io}"
            ))
        }
        e => ServiceError::blob("error receiving upload chunk")(e),
    }
}

/// End every upload session of `image` (removed as an abandoned upload):
/// records and staged bytes; failures are logged and left to the sweep.
pub(crate) async fn discard_all_of(app: &AppState, image: Uuid) {
    match app.meta.uploads_of_image(image).await {
        Ok(sessions) => {
            for session in &sessions {
                discard(app, session).await;
            }
        }
        Err(e) => {
            tracing::warn!(%image, error = %e, "could not list the upload sessions of a removed image (they expire)");
        }
    }
}

/// Drop a session's staged bytes and its record (aborted or refused).
async fn discard(app: &AppState, session: &UploadSession) {
    if let Err(e) = app.meta.delete_upload(session.id).await {
        tracing::warn!(upload = %session.id, error = %e, "could not delete upload session (the sweep will)");
    }
    quotas::release_session(app, session.id).await;
    if let Some(store) = app.blob_store(&session.stor) {
        if let Err(e) = store.staged_abort(&session.blob_key, &session.handle).await {
            tracing::warn!(upload = %session.id, error = %e, "could not abort staged upload (the sweep will)");
        }
    }
}

/// FinishUploadSession: verify what was received (size, sha1, sha256)
/// and commit it as `files[0]` exactly as AddImageFile does. A mismatch
/// refuses the file and ends the session (nothing is kept); an upload not
/// yet complete is refused and the session stays.
pub async fn finish(
    app: &AppState,
    stored: StoredImage,
    id: Uuid,
    params: FinishParams<'_>,
) -> Result<ImageRecord, ServiceError> {
    let uuid = stored.image.uuid;
    if stored.image.activated {
        return Err(DomainError::ImageFilesImmutable(uuid).into());
    }
    load(app, uuid, id).await?;
    let expected_size = parse_size(params.size, "size")?;
    let (lease, session) = Lease::claim(app, id).await?;
    let received = session.offset;
    let incomplete = |want: u64| {
        ServiceError::Upload(format!(
            "upload session {id} is incomplete: {received} of {want} bytes received"
        ))
    };
    let pending = match (session.size, expected_size) {
        _ if received == 0 => Some(ServiceError::Upload(format!(
            "upload session {id} has received no bytes yet"
        ))),
        (Some(want), _) if received < want => Some(incomplete(want)),
        (_, Some(want)) if received < want => Some(incomplete(want)),
        _ => None,
    };
    if let Some(e) = pending {
        lease.release().await;
        return Err(e);
    }
    let store = match store_of(app, &session) {
        Ok(store) => store,
        Err(e) => {
            lease.release().await;
            return Err(e);
        }
    };
    let values = match Digests::from_state(&session.digests) {
        Ok(d) => d.values(),
        Err(e) => {
            lease.release().await;
            return Err(ServiceError::blob(format!(
                "upload session {id}: saved digests"
            ))(e));
        }
    };
    let mismatch = if let Some(want) = expected_size.filter(|w| *w != received) {
        Some(format!(
            "\"size\" {want} does not match uploaded size, {received}"
        ))
    } else if let Some(want) = [session.sha1.as_deref(), params.sha1]
        .into_iter()
        .flatten()
        .find(|w| !w.eq_ignore_ascii_case(&values.sha1))
    {
        Some(format!(
            "\"sha1\" hash, {want}, does not match the uploaded file sha1 hash, {}",
            values.sha1
        ))
    } else {
        params
            .sha256
            .filter(|w| !w.eq_ignore_ascii_case(&values.sha256))
            .map(|want| {
                format!(
                    "\"sha256\" hash, {want}, does not match the uploaded file sha256 hash, {}",
                    values.sha256
                )
            })
    };
    if let Some(message) = mismatch {
        discard(app, &session).await;
        lease.ended();
        return Err(ServiceError::Download(message));
    }
    let committed = lease
        .renewing(
            app,
            store.staged_commit(&session.blob_key, &session.handle, &session.parts, received),
        )
        .await;
    if let Err(e) = committed {
        lease.release().await;
        return Err(ServiceError::blob("error committing upload")(e));
    }
    let outcome = PutOutcome {
        size: received,
        sha1: values.sha1,
        md5_base64: values.md5_base64,
        sha256: values.sha256,
    };
    let recorded = record_file(
        app,
        stored,
        store,
        &session.blob_key,
        outcome,
        session.compression.clone(),
        session.dataset_guid.clone(),
    )
    .await;
    // Committed or refused, the staged data is consumed: the session ends.
    if let Err(e) = app.meta.delete_upload(id).await {
        tracing::warn!(upload = %id, error = %e, "could not delete finished upload session (the sweep will)");
    }
    quotas::release_session(app, id).await;
    lease.ended();
    recorded
}

/// AbortUploadSession: the record first (so no chunk can be recorded any
/// more), then the staged bytes.
pub async fn abort(app: &AppState, image: Uuid, id: Uuid) -> Result<(), ServiceError> {
    let session = load(app, image, id).await?;
    let deleted = app
        .meta
        .delete_upload(id)
        .await
        .map_err(ServiceError::meta(format!(
            "error deleting upload session {id}"
        )))?;
    if !deleted {
        return Err(not_found(id));
    }
    quotas::release_session(app, id).await;
    store_of(app, &session)?
        .staged_abort(&session.blob_key, &session.handle)
        .await
        .map_err(ServiceError::blob("error aborting upload"))
}

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepStats {
    /// Expired sessions (record and staged bytes).
    pub expired: u64,
    /// Staged uploads without a session record.
    pub orphans: u64,
}

/// Remove expired sessions and staged uploads whose session is gone.
pub async fn sweep(app: &AppState) -> Result<SweepStats, ServiceError> {
    let mut stats = SweepStats::default();
    let now = now_ms();
    loop {
        let expired = app
            .meta
            .expired_uploads(now, SWEEP_BATCH)
            .await
            .map_err(ServiceError::meta("error listing expired upload sessions"))?;
        let mut deleted = 0;
        for session in &expired {
            let gone = app
                .meta
                .delete_expired_upload(session.id, now)
                .await
                .map_err(ServiceError::meta("error deleting expired upload session"))?;
            if !gone {
                continue; // a live lease: a chunk is still being written
            }
            deleted += 1;
            stats.expired += 1;
            quotas::release_session(app, session.id).await;
            if let Some(store) = app.blob_store(&session.stor) {
                if let Err(e) = store.staged_abort(&session.blob_key, &session.handle).await {
                    tracing::warn!(upload = %session.id, error = %e, "could not abort expired staged upload (retried as an orphan)");
                }
            }
        }
        if expired.len() < SWEEP_BATCH as usize || deleted == 0 {
            break;
        }
    }
    // Staged data older than the TTL whose session record is gone (a crash
    // between the steps above or of create).
    let ttl = Duration::from_secs(app.config.upload_session_ttl_secs);
    let live: HashSet<String> = app
        .meta
        .upload_handles()
        .await
        .map_err(ServiceError::meta("error listing upload sessions"))?
        .into_iter()
        .collect();
    let stores = std::iter::once(&app.blobs).chain(app.extra_blobs.iter());
    for store in stores {
        let leftovers = match store.staged_leftovers(ttl).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(store = store.kind(), error = %e, "could not list staged uploads");
                continue;
            }
        };
        for orphan in leftovers.into_iter().filter(|l| !live.contains(&l.handle)) {
            match store.staged_abort(&orphan.key, &orphan.handle).await {
                Ok(()) => stats.orphans += 1,
                Err(e) => {
                    tracing::warn!(handle = %orphan.handle, error = %e, "could not abort orphan staged upload")
                }
            }
        }
    }
    if stats != SweepStats::default() {
        tracing::info!(
            expired = stats.expired,
            orphans = stats.orphans,
            "swept upload sessions"
        );
    }
    Ok(stats)
}

/// The periodic sweep task; stops when dropped or [`Sweeper::stop`]ped.
pub struct Sweeper(tokio::task::JoinHandle<()>);

impl Sweeper {
    pub fn stop(self) {
        self.0.abort();
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sweep now (start-up) and then every TTL/4 (between 1 s and 5 min).
pub fn start_sweeper(app: App) -> Sweeper {
    let every = Duration::from_secs(app.config.upload_session_ttl_secs / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(300));
    Sweeper(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sweep(&app).await {
                tracing::warn!(error = %e, "upload session sweep failed");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::ChunkRange;

    #[test]
    fn content_ranges() {
        let r = |s: &str| ChunkRange::parse(s);
        assert_eq!(
            r("bytes 0-9/100"),
            Some(ChunkRange {
                start: 0,
                end: 9,
                total: Some(100)
            })
        );
        assert_eq!(
            r("bytes 5-5/*"),
            Some(ChunkRange {
                start: 5,
                end: 5,
                total: None
            })
        );
        for bad in [
            "",
            "bytes",
            "bytes 0-9",
            "bytes 9-0/100",
            "bytes 0-100/100",
            "bytes -1-5/10",
            "bytes 0-+5/10",
            "items 0-9/100",
            "bytes 0-9/abc",
            "bytes 0-99999999999999999999/*",
        ] {
            assert_eq!(r(bad), None, "{bad:?}");
        }
    }
}
