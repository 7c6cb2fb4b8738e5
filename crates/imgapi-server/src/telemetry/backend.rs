//! Store decorators that time every [`MetaStore`] / [`BlobStore`] call and
//! count its errors (`imgapi_backend_duration_seconds`,
//! `imgapi_backend_errors_total`), labelled `backend` (`meta`/`blob`),
//! `store` (`sqlite`, `postgres`, `local`, `s3`) and `op` (the trait
//! method). Streaming calls are timed to their return: `get_stream` to the
//! first byte being available, `put_stream` / `staged_append` over the
//! whole transfer.
//!
//! The same layer puts a [`Breaker`] in front of a network backend
//! (PostgreSQL, S3), and bounds the wait for a blob store's answer where a
//! first-byte timeout is configured (not for calls that carry a body or
//! walk a whole store).
//!
//! Pure delegation otherwise. A method added to either trait must be added
//! here too (the compiler says so); one with a default body is inherited.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use imgapi_blob::{
    BlobError, BlobMeta, BlobRead, BlobStore, ByteStream, ListedBlob, PutOutcome, StagedChunk,
    StagedProgress, StagedRef,
};
use imgapi_domain::filter::ImageQuery;
use imgapi_domain::ImageRecord;
use imgapi_meta::{BinEntry, BinUsage, RecycleBinStore};
use imgapi_meta::{ChangeLogBounds, ChangeStore, StoredChange};
use imgapi_meta::{
    FlagsChange, ImageFlags, ImageFlagsStore, ImageStore, JobRecord, JobStore, MetaError,
    MetaStore, RetentionRuleStore, Revision, RunLockAttempt, RunLockStore, StoredImage,
    StoredRetentionRule, UploadSession, UploadStore, Usage, UsageStore,
};
use imgapi_meta::{ImageSignatureStore, StoredSignature};
use imgapi_meta::{MirrorCursor, MirrorCursorKey, MirrorCursorStore};
use imgapi_meta::{QuotaOverride, QuotaStore, QuotaUse, ReservationRequest, ReserveOutcome};
use imgapi_meta::{StoredWebhook, WebhookProgress, WebhookStore};
use metrics::Label;
use uuid::Uuid;

use super::{Metrics, BACKEND_DURATION, BACKEND_ERRORS};
use crate::breaker::{Breaker, Outage};

/// Label value of an error: what kind of failure it was.
trait ErrorKind {
    fn kind(&self) -> &'static str;
}

impl ErrorKind for MetaError {
    fn kind(&self) -> &'static str {
        match self {
            MetaError::NotFound(_) => "not_found",
            MetaError::AlreadyExists(_) => "already_exists",
            MetaError::Conflict(_) => "conflict",
            MetaError::Unavailable(_) => "unavailable",
            MetaError::Corrupt { .. } => "corrupt",
            MetaError::Backend(_) => "backend",
        }
    }
}

impl ErrorKind for BlobError {
    fn kind(&self) -> &'static str {
        match self {
            BlobError::NotFound(_) => "not_found",
            BlobError::TooLarge { .. } => "too_large",
            BlobError::Source(_) => "source",
            // The alert watches "unavailable": a bucket gone or refused is as bad.
            BlobError::Unavailable(_) | BlobError::Inaccessible(_) => "unavailable",
            BlobError::InvalidKey(_) => "invalid_key",
            BlobError::Io(_) => "io",
        }
    }
}

/// `get_stream` reads only keys a stored record references (downloads,
/// clones, exports, migrations, checks), so a missing object there is lost
/// data, not a caller's mistake.
const DATA_LOSS: &str = "data_loss";

/// Every `op` of the metadata decorator.
const META_OPS: &[&str] = &[
    "get",
    "insert",
    "update",
    "put",
    "rename",
    "delete",
    "list",
    "dependents",
    "count_by_state",
    "ping",
    "generation",
    "usage",
    "image_flags",
    "change_image_flags",
    "next_deprecation_after",
    "protected_images",
    "changes_after",
    "change_log_bounds",
    "purge_changes_before",
    "continue_change_log_after",
    "insert_job",
    "get_job",
    "image_jobs",
    "claimable_jobs",
    "claim_job",
    "update_job",
    "release_jobs",
    "prune_finished_jobs",
    "count_jobs_by_execution",
    "insert_upload",
    "get_upload",
    "claim_upload",
    "renew_upload",
    "advance_upload",
    "release_upload",
    "release_stale_upload_leases",
    "delete_upload",
    "delete_expired_upload",
    "expired_uploads",
    "upload_handles",
    "uploads_of_image",
    "try_run_lock",
    "retention_rules",
    "insert_retention_rule",
    "delete_retention_rule",
    "webhooks",
    "get_webhook",
    "insert_webhook",
    "upsert_webhook_by_name",
    "delete_webhook",
    "claim_webhook",
    "record_webhook_progress",
    "release_webhook",
    "resume_webhook",
    "move_to_bin",
    "binned",
    "list_bin",
    "restore_from_bin",
    "remove_from_bin",
    "expired_bin_entries",
    "bin_usage",
    "abandoned_images",
    "reserve",
    "release_reservation",
    "quota_use",
    "quota_overrides",
    "quota_override",
    "put_quota_override",
    "delete_quota_override",
    "mirror_cursor",
    "put_mirror_cursor",
    "image_signatures",
    "put_image_signature",
    "remove_image_signature",
    "image_signatures_after",
];

/// Every `op` of the blob decorator.
const BLOB_OPS: &[&str] = &[
    "put_stream",
    "get_stream",
    "stat",
    "delete",
    "list",
    "list_objects",
    "move_to_lost_found",
    "health_check",
    "sweep_staging",
    "staged_create",
    "staged_append",
    "staged_commit",
    "staged_abort",
    "staged_leftovers",
    "redirect_url",
];

/// The error kinds the documented alert watches (docs/operating.md
/// "Monitoring"): their series exist at 0 from start-up, so the first
/// failure is a visible increase rather than a series appearing at 1.
const META_ALERT_KINDS: &[&str] = &["unavailable", "backend", "corrupt"];
const BLOB_ALERT_KINDS: &[&str] = &["unavailable", "io", DATA_LOSS];

/// What every decorator needs: the registry and its labels.
struct Timer {
    metrics: Metrics,
    backend: &'static str,
    store: &'static str,
    breaker: Option<Arc<Breaker>>,
    /// The longest wait for the answer to a bodiless request.
    first_byte: Option<Duration>,
}

/// Whether a call is bounded by the first-byte timeout.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    /// One request and its answer.
    Short,
    /// Carries a body or walks a whole store: no bound.
    Long,
}

impl Timer {
    fn new(
        metrics: &Metrics,
        backend: &'static str,
        store: &'static str,
        ops: &[&'static str],
        alert_kinds: &[&'static str],
        breaker: Option<Arc<Breaker>>,
        first_byte: Option<Duration>,
    ) -> Timer {
        let timer = Timer {
            metrics: metrics.clone(),
            backend,
            store,
            breaker,
            first_byte,
        };
        for &op in ops {
            for &kind in alert_kinds {
                timer.errors(op, kind).absolute(0);
            }
        }
        timer
    }

    fn errors(&self, op: &'static str, kind: &'static str) -> metrics::Counter {
        let labels = vec![
            Label::new("backend", self.backend),
            Label::new("store", self.store),
            Label::new("op", op),
            Label::new("kind", kind),
        ];
        self.metrics.counter(BACKEND_ERRORS, labels)
    }

    async fn time<T, E: ErrorKind + Outage>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.time_classified(op, Call::Short, call, E::kind).await
    }

    async fn time_long<T, E: ErrorKind + Outage>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.time_classified(op, Call::Long, call, E::kind).await
    }

    /// `body`, reporting progress to the breaker.
    fn pace(&self, body: ByteStream) -> ByteStream {
        match &self.breaker {
            Some(breaker) => breaker.pace(body),
            None => body,
        }
    }

    async fn time_classified<T, E: Outage>(
        &self,
        op: &'static str,
        kind: Call,
        call: impl Future<Output = Result<T, E>>,
        classify: fn(&E) -> &'static str,
    ) -> Result<T, E> {
        debug_assert!(
            META_OPS.contains(&op) || BLOB_OPS.contains(&op),
            "op {op} missing from the pre-registered ops"
        );
        let started = Instant::now();
        let bounded = async {
            match self.first_byte.filter(|_| kind == Call::Short) {
                Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                    Err(E::outage(format!(
                        "{} store: no answer within {} s",
                        self.store,
                        limit.as_secs_f32()
                    )))
                }),
                None => call.await,
            }
        };
        let result = match &self.breaker {
            Some(breaker) => breaker.call(bounded).await,
            None => bounded.await,
        };
        let labels = || {
            vec![
                Label::new("backend", self.backend),
                Label::new("store", self.store),
                Label::new("op", op),
            ]
        };
        self.metrics
            .histogram(BACKEND_DURATION, labels())
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.errors(op, classify(e)).increment(1);
        }
        result
    }
}

/// `meta`, timed and behind `breaker`; unchanged when `metrics` is
/// disabled and there is no breaker.
pub fn meter_meta(
    meta: Arc<dyn MetaStore>,
    metrics: &Metrics,
    database_url: &str,
    breaker: Option<Arc<Breaker>>,
) -> Arc<dyn MetaStore> {
    if !metrics.is_enabled() && breaker.is_none() {
        return meta;
    }
    let store = match database_url.parse::<imgapi_meta::Engine>() {
        Ok(imgapi_meta::Engine::Sqlite) => "sqlite",
        Ok(imgapi_meta::Engine::Postgres) => "postgres",
        Err(_) => "unknown",
    };
    Arc::new(MeteredMeta {
        inner: meta,
        timer: Timer::new(
            metrics,
            "meta",
            store,
            META_OPS,
            META_ALERT_KINDS,
            breaker,
            None,
        ),
    })
}

/// `blobs`, timed, behind `breaker` and with its answers bounded by
/// `first_byte`; unchanged when there is none of the three.
pub fn meter_blobs(
    blobs: Arc<dyn BlobStore>,
    metrics: &Metrics,
    breaker: Option<Arc<Breaker>>,
    first_byte: Option<Duration>,
) -> Arc<dyn BlobStore> {
    if !metrics.is_enabled() && breaker.is_none() && first_byte.is_none() {
        return blobs;
    }
    let store = blobs.kind();
    Arc::new(MeteredBlobs {
        inner: blobs,
        timer: Timer::new(
            metrics,
            "blob",
            store,
            BLOB_OPS,
            BLOB_ALERT_KINDS,
            breaker,
            first_byte,
        ),
    })
}

struct MeteredMeta {
    inner: Arc<dyn MetaStore>,
    timer: Timer,
}

#[async_trait]
impl ImageStore for MeteredMeta {
    async fn get(&self, uuid: Uuid) -> Result<Option<StoredImage>, MetaError> {
        self.timer.time("get", self.inner.get(uuid)).await
    }

    async fn insert(&self, image: &ImageRecord) -> Result<Revision, MetaError> {
        self.timer.time("insert", self.inner.insert(image)).await
    }

    async fn update(&self, image: &ImageRecord, expected: Revision) -> Result<Revision, MetaError> {
        self.timer
            .time("update", self.inner.update(image, expected))
            .await
    }

    async fn put(&self, image: &ImageRecord) -> Result<Revision, MetaError> {
        self.timer.time("put", self.inner.put(image)).await
    }

    async fn rename(
        &self,
        old_uuid: Uuid,
        expected: Revision,
        image: &ImageRecord,
    ) -> Result<Revision, MetaError> {
        self.timer
            .time("rename", self.inner.rename(old_uuid, expected, image))
            .await
    }

    async fn delete(&self, uuid: Uuid) -> Result<bool, MetaError> {
        self.timer.time("delete", self.inner.delete(uuid)).await
    }

    async fn list(&self, query: &ImageQuery) -> Result<Vec<ImageRecord>, MetaError> {
        self.timer.time("list", self.inner.list(query)).await
    }

    async fn dependents(
        &self,
        origin: Uuid,
        channel: Option<&str>,
    ) -> Result<Vec<Uuid>, MetaError> {
        self.timer
            .time("dependents", self.inner.dependents(origin, channel))
            .await
    }

    async fn count_by_state(&self) -> Result<Vec<(String, u64)>, MetaError> {
        self.timer
            .time("count_by_state", self.inner.count_by_state())
            .await
    }

    async fn ping(&self) -> Result<(), MetaError> {
        self.timer.time("ping", self.inner.ping()).await
    }

    async fn generation(&self) -> Result<i64, MetaError> {
        self.timer.time("generation", self.inner.generation()).await
    }
}

#[async_trait]
impl UsageStore for MeteredMeta {
    async fn usage(&self, owner: Option<Uuid>) -> Result<Usage, MetaError> {
        self.timer.time("usage", self.inner.usage(owner)).await
    }
}

#[async_trait]
impl ImageFlagsStore for MeteredMeta {
    async fn image_flags(&self, uuid: Uuid) -> Result<Option<ImageFlags>, MetaError> {
        self.timer
            .time("image_flags", self.inner.image_flags(uuid))
            .await
    }

    async fn change_image_flags(
        &self,
        uuid: Uuid,
        change: &FlagsChange,
    ) -> Result<ImageFlags, MetaError> {
        self.timer
            .time(
                "change_image_flags",
                self.inner.change_image_flags(uuid, change),
            )
            .await
    }

    async fn next_deprecation_after(&self, now_ms: i64) -> Result<Option<i64>, MetaError> {
        self.timer
            .time(
                "next_deprecation_after",
                self.inner.next_deprecation_after(now_ms),
            )
            .await
    }

    async fn protected_images(&self) -> Result<Vec<Uuid>, MetaError> {
        self.timer
            .time("protected_images", self.inner.protected_images())
            .await
    }
}

#[async_trait]
impl ChangeStore for MeteredMeta {
    async fn changes_after(&self, since: i64, limit: u32) -> Result<Vec<StoredChange>, MetaError> {
        self.timer
            .time("changes_after", self.inner.changes_after(since, limit))
            .await
    }

    async fn change_log_bounds(&self) -> Result<ChangeLogBounds, MetaError> {
        self.timer
            .time("change_log_bounds", self.inner.change_log_bounds())
            .await
    }

    async fn purge_changes_before(&self, before_ms: i64) -> Result<u64, MetaError> {
        self.timer
            .time(
                "purge_changes_before",
                self.inner.purge_changes_before(before_ms),
            )
            .await
    }

    async fn continue_change_log_after(&self, seq: i64) -> Result<(), MetaError> {
        self.timer
            .time(
                "continue_change_log_after",
                self.inner.continue_change_log_after(seq),
            )
            .await
    }
}

#[async_trait]
impl ImageSignatureStore for MeteredMeta {
    async fn image_signatures(&self, uuid: Uuid) -> Result<Vec<StoredSignature>, MetaError> {
        self.timer
            .time("image_signatures", self.inner.image_signatures(uuid))
            .await
    }

    async fn put_image_signature(
        &self,
        signature: &StoredSignature,
        expected: Option<Revision>,
    ) -> Result<(), MetaError> {
        self.timer
            .time(
                "put_image_signature",
                self.inner.put_image_signature(signature, expected),
            )
            .await
    }

    async fn remove_image_signature(&self, uuid: Uuid, key_id: &str) -> Result<bool, MetaError> {
        self.timer
            .time(
                "remove_image_signature",
                self.inner.remove_image_signature(uuid, key_id),
            )
            .await
    }

    async fn image_signatures_after(
        &self,
        after: Option<(Uuid, String)>,
        limit: u32,
    ) -> Result<Vec<StoredSignature>, MetaError> {
        self.timer
            .time(
                "image_signatures_after",
                self.inner.image_signatures_after(after, limit),
            )
            .await
    }
}

#[async_trait]
impl MirrorCursorStore for MeteredMeta {
    async fn mirror_cursor(
        &self,
        key: &MirrorCursorKey,
    ) -> Result<Option<MirrorCursor>, MetaError> {
        self.timer
            .time("mirror_cursor", self.inner.mirror_cursor(key))
            .await
    }

    async fn put_mirror_cursor(
        &self,
        key: &MirrorCursorKey,
        cursor: MirrorCursor,
    ) -> Result<(), MetaError> {
        self.timer
            .time(
                "put_mirror_cursor",
                self.inner.put_mirror_cursor(key, cursor),
            )
            .await
    }
}

#[async_trait]
impl JobStore for MeteredMeta {
    async fn insert_job(&self, job: &JobRecord) -> Result<(), MetaError> {
        self.timer
            .time("insert_job", self.inner.insert_job(job))
            .await
    }

    async fn get_job(&self, uuid: Uuid) -> Result<Option<JobRecord>, MetaError> {
        self.timer.time("get_job", self.inner.get_job(uuid)).await
    }

    async fn image_jobs(&self, image_uuid: Uuid) -> Result<Vec<JobRecord>, MetaError> {
        self.timer
            .time("image_jobs", self.inner.image_jobs(image_uuid))
            .await
    }

    async fn claimable_jobs(&self, now_ms: i64, limit: u32) -> Result<Vec<Uuid>, MetaError> {
        self.timer
            .time("claimable_jobs", self.inner.claimable_jobs(now_ms, limit))
            .await
    }

    async fn claim_job(
        &self,
        uuid: Uuid,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<JobRecord>, MetaError> {
        self.timer
            .time(
                "claim_job",
                self.inner.claim_job(uuid, owner, now_ms, expires_ms),
            )
            .await
    }

    async fn update_job(&self, job: &JobRecord, owner: &str) -> Result<bool, MetaError> {
        self.timer
            .time("update_job", self.inner.update_job(job, owner))
            .await
    }

    async fn release_jobs(&self, owner: &str) -> Result<u64, MetaError> {
        self.timer
            .time("release_jobs", self.inner.release_jobs(owner))
            .await
    }

    async fn prune_finished_jobs(&self, finished_before: &str) -> Result<u64, MetaError> {
        self.timer
            .time(
                "prune_finished_jobs",
                self.inner.prune_finished_jobs(finished_before),
            )
            .await
    }

    async fn count_jobs_by_execution(&self) -> Result<Vec<(String, u64)>, MetaError> {
        self.timer
            .time(
                "count_jobs_by_execution",
                self.inner.count_jobs_by_execution(),
            )
            .await
    }
}

#[async_trait]
impl UploadStore for MeteredMeta {
    async fn insert_upload(&self, upload: &UploadSession) -> Result<(), MetaError> {
        self.timer
            .time("insert_upload", self.inner.insert_upload(upload))
            .await
    }

    async fn get_upload(&self, id: Uuid) -> Result<Option<UploadSession>, MetaError> {
        self.timer
            .time("get_upload", self.inner.get_upload(id))
            .await
    }

    async fn claim_upload(
        &self,
        id: Uuid,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<UploadSession>, MetaError> {
        self.timer
            .time(
                "claim_upload",
                self.inner.claim_upload(id, owner, now_ms, expires_ms),
            )
            .await
    }

    async fn renew_upload(
        &self,
        id: Uuid,
        owner: &str,
        expires_ms: i64,
    ) -> Result<bool, MetaError> {
        self.timer
            .time(
                "renew_upload",
                self.inner.renew_upload(id, owner, expires_ms),
            )
            .await
    }

    async fn advance_upload(
        &self,
        upload: &UploadSession,
        owner: &str,
        from_offset: u64,
    ) -> Result<bool, MetaError> {
        self.timer
            .time(
                "advance_upload",
                self.inner.advance_upload(upload, owner, from_offset),
            )
            .await
    }

    async fn release_upload(&self, id: Uuid, owner: &str) -> Result<bool, MetaError> {
        self.timer
            .time("release_upload", self.inner.release_upload(id, owner))
            .await
    }

    async fn release_stale_upload_leases(
        &self,
        holder: &str,
        current: &str,
    ) -> Result<u64, MetaError> {
        self.timer
            .time(
                "release_stale_upload_leases",
                self.inner.release_stale_upload_leases(holder, current),
            )
            .await
    }

    async fn delete_upload(&self, id: Uuid) -> Result<bool, MetaError> {
        self.timer
            .time("delete_upload", self.inner.delete_upload(id))
            .await
    }

    async fn delete_expired_upload(&self, id: Uuid, now_ms: i64) -> Result<bool, MetaError> {
        self.timer
            .time(
                "delete_expired_upload",
                self.inner.delete_expired_upload(id, now_ms),
            )
            .await
    }

    async fn expired_uploads(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<UploadSession>, MetaError> {
        self.timer
            .time("expired_uploads", self.inner.expired_uploads(now_ms, limit))
            .await
    }

    async fn uploads_of_image(&self, image: Uuid) -> Result<Vec<UploadSession>, MetaError> {
        self.timer
            .time("uploads_of_image", self.inner.uploads_of_image(image))
            .await
    }

    async fn upload_handles(&self) -> Result<Vec<String>, MetaError> {
        self.timer
            .time("upload_handles", self.inner.upload_handles())
            .await
    }
}

#[async_trait]
impl RecycleBinStore for MeteredMeta {
    async fn move_to_bin(&self, entry: &BinEntry, expected: Revision) -> Result<(), MetaError> {
        self.timer
            .time("move_to_bin", self.inner.move_to_bin(entry, expected))
            .await
    }

    async fn binned(&self, uuid: Uuid) -> Result<Option<BinEntry>, MetaError> {
        self.timer.time("binned", self.inner.binned(uuid)).await
    }

    async fn list_bin(
        &self,
        owner: Option<Uuid>,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<BinEntry>, MetaError> {
        self.timer
            .time("list_bin", self.inner.list_bin(owner, offset, limit))
            .await
    }

    async fn restore_from_bin(&self, uuid: Uuid) -> Result<Revision, MetaError> {
        self.timer
            .time("restore_from_bin", self.inner.restore_from_bin(uuid))
            .await
    }

    async fn remove_from_bin(&self, uuid: Uuid) -> Result<bool, MetaError> {
        self.timer
            .time("remove_from_bin", self.inner.remove_from_bin(uuid))
            .await
    }

    async fn expired_bin_entries(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<BinEntry>, MetaError> {
        self.timer
            .time(
                "expired_bin_entries",
                self.inner.expired_bin_entries(now_ms, limit),
            )
            .await
    }

    async fn bin_usage(&self, owner: Option<Uuid>) -> Result<Vec<BinUsage>, MetaError> {
        self.timer
            .time("bin_usage", self.inner.bin_usage(owner))
            .await
    }

    async fn abandoned_images(
        &self,
        created_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<Uuid>, MetaError> {
        self.timer
            .time(
                "abandoned_images",
                self.inner.abandoned_images(created_before_ms, limit),
            )
            .await
    }
}

#[async_trait]
impl QuotaStore for MeteredMeta {
    async fn reserve(&self, request: &ReservationRequest) -> Result<ReserveOutcome, MetaError> {
        self.timer
            .time("reserve", self.inner.reserve(request))
            .await
    }
    async fn release_reservation(&self, id: Uuid) -> Result<(), MetaError> {
        self.timer
            .time("release_reservation", self.inner.release_reservation(id))
            .await
    }
    async fn quota_use(&self, owner: Uuid, now_ms: i64) -> Result<QuotaUse, MetaError> {
        self.timer
            .time("quota_use", self.inner.quota_use(owner, now_ms))
            .await
    }
    async fn quota_overrides(&self) -> Result<Vec<QuotaOverride>, MetaError> {
        self.timer
            .time("quota_overrides", self.inner.quota_overrides())
            .await
    }
    async fn quota_override(&self, owner: Uuid) -> Result<Option<QuotaOverride>, MetaError> {
        self.timer
            .time("quota_override", self.inner.quota_override(owner))
            .await
    }
    async fn put_quota_override(&self, o: &QuotaOverride) -> Result<(), MetaError> {
        self.timer
            .time("put_quota_override", self.inner.put_quota_override(o))
            .await
    }
    async fn delete_quota_override(&self, owner: Uuid) -> Result<bool, MetaError> {
        self.timer
            .time(
                "delete_quota_override",
                self.inner.delete_quota_override(owner),
            )
            .await
    }
}

#[async_trait]
impl RunLockStore for MeteredMeta {
    async fn try_run_lock(&self, name: &str) -> Result<RunLockAttempt, MetaError> {
        self.timer
            .time("try_run_lock", self.inner.try_run_lock(name))
            .await
    }
}

#[async_trait]
impl RetentionRuleStore for MeteredMeta {
    async fn retention_rules(&self) -> Result<Vec<StoredRetentionRule>, MetaError> {
        self.timer
            .time("retention_rules", self.inner.retention_rules())
            .await
    }

    async fn insert_retention_rule(&self, rule: &StoredRetentionRule) -> Result<(), MetaError> {
        self.timer
            .time(
                "insert_retention_rule",
                self.inner.insert_retention_rule(rule),
            )
            .await
    }

    async fn delete_retention_rule(&self, id: Uuid) -> Result<bool, MetaError> {
        self.timer
            .time(
                "delete_retention_rule",
                self.inner.delete_retention_rule(id),
            )
            .await
    }
}

#[async_trait]
impl WebhookStore for MeteredMeta {
    async fn webhooks(&self) -> Result<Vec<StoredWebhook>, MetaError> {
        self.timer.time("webhooks", self.inner.webhooks()).await
    }

    async fn get_webhook(&self, id: Uuid) -> Result<Option<StoredWebhook>, MetaError> {
        self.timer
            .time("get_webhook", self.inner.get_webhook(id))
            .await
    }

    async fn insert_webhook(&self, hook: &StoredWebhook) -> Result<(), MetaError> {
        self.timer
            .time("insert_webhook", self.inner.insert_webhook(hook))
            .await
    }

    async fn upsert_webhook_by_name(
        &self,
        hook: &StoredWebhook,
    ) -> Result<StoredWebhook, MetaError> {
        self.timer
            .time(
                "upsert_webhook_by_name",
                self.inner.upsert_webhook_by_name(hook),
            )
            .await
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<bool, MetaError> {
        self.timer
            .time("delete_webhook", self.inner.delete_webhook(id))
            .await
    }

    async fn claim_webhook(
        &self,
        id: Uuid,
        holder: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<StoredWebhook>, MetaError> {
        self.timer
            .time(
                "claim_webhook",
                self.inner.claim_webhook(id, holder, now_ms, expires_ms),
            )
            .await
    }

    async fn record_webhook_progress(
        &self,
        id: Uuid,
        holder: &str,
        progress: &WebhookProgress,
    ) -> Result<bool, MetaError> {
        self.timer
            .time(
                "record_webhook_progress",
                self.inner.record_webhook_progress(id, holder, progress),
            )
            .await
    }

    async fn release_webhook(&self, id: Uuid, holder: &str) -> Result<bool, MetaError> {
        self.timer
            .time("release_webhook", self.inner.release_webhook(id, holder))
            .await
    }

    async fn resume_webhook(&self, id: Uuid, cursor: Option<i64>) -> Result<bool, MetaError> {
        self.timer
            .time("resume_webhook", self.inner.resume_webhook(id, cursor))
            .await
    }
}

struct MeteredBlobs {
    inner: Arc<dyn BlobStore>,
    timer: Timer,
}

#[async_trait]
impl BlobStore for MeteredBlobs {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn put_stream(
        &self,
        key: &str,
        body: ByteStream,
        max_size: u64,
    ) -> Result<PutOutcome, BlobError> {
        self.timer
            .time_long(
                "put_stream",
                self.inner.put_stream(key, self.timer.pace(body), max_size),
            )
            .await
    }

    async fn get_stream(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<BlobRead, BlobError> {
        let missing_is_data_loss = |e: &BlobError| match e {
            BlobError::NotFound(_) => DATA_LOSS,
            other => other.kind(),
        };
        let mut read = self
            .timer
            .time_classified(
                "get_stream",
                Call::Short,
                self.inner.get_stream(key, range),
                missing_is_data_loss,
            )
            .await?;
        read.stream = self.timer.pace(read.stream);
        Ok(read)
    }

    async fn stat(&self, key: &str) -> Result<BlobMeta, BlobError> {
        self.timer.time("stat", self.inner.stat(key)).await
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.timer.time("delete", self.inner.delete(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        self.timer.time_long("list", self.inner.list(prefix)).await
    }

    async fn list_objects(&self, prefix: &str) -> Result<Vec<ListedBlob>, BlobError> {
        self.timer
            .time_long("list_objects", self.inner.list_objects(prefix))
            .await
    }

    async fn move_to_lost_found(&self, key: &str) -> Result<String, BlobError> {
        self.timer
            .time("move_to_lost_found", self.inner.move_to_lost_found(key))
            .await
    }

    async fn health_check(&self) -> Result<(), BlobError> {
        self.timer
            .time("health_check", self.inner.health_check())
            .await
    }

    async fn sweep_staging(&self) -> Result<u64, BlobError> {
        self.timer
            .time_long("sweep_staging", self.inner.sweep_staging())
            .await
    }

    fn staged_min_chunk(&self) -> u64 {
        self.inner.staged_min_chunk()
    }

    async fn staged_create(&self, key: &str) -> Result<String, BlobError> {
        self.timer
            .time("staged_create", self.inner.staged_create(key))
            .await
    }

    async fn staged_append(
        &self,
        chunk: StagedChunk<'_>,
        body: ByteStream,
    ) -> Result<StagedProgress, BlobError> {
        self.timer
            .time_long(
                "staged_append",
                self.inner.staged_append(chunk, self.timer.pace(body)),
            )
            .await
    }

    async fn staged_commit(
        &self,
        key: &str,
        handle: &str,
        parts: &[String],
        size: u64,
    ) -> Result<(), BlobError> {
        self.timer
            .time(
                "staged_commit",
                self.inner.staged_commit(key, handle, parts, size),
            )
            .await
    }

    async fn staged_abort(&self, key: &str, handle: &str) -> Result<(), BlobError> {
        self.timer
            .time("staged_abort", self.inner.staged_abort(key, handle))
            .await
    }

    async fn staged_leftovers(
        &self,
        older_than: std::time::Duration,
    ) -> Result<Vec<StagedRef>, BlobError> {
        self.timer
            .time_long("staged_leftovers", self.inner.staged_leftovers(older_than))
            .await
    }

    async fn redirect_url(
        &self,
        key: &str,
        expires: std::time::Duration,
    ) -> Result<Option<String>, BlobError> {
        self.timer
            .time("redirect_url", self.inner.redirect_url(key, expires))
            .await
    }
}
