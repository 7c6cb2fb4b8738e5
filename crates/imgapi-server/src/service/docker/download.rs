//! One layer blob from a registry into the blob store, streamed: the blob
//! store computes size, SHA-1, MD5 and SHA-256 of the compressed bytes
//! while a second thread decompresses them and hashes the uncompressed
//! tar (the config's diff_id). Nothing is kept unless every check passes.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use imgapi_blob::{BlobError, BlobStore, ByteStream, PutOutcome};
use imgapi_types::MAX_IMAGE_FILE_SIZE;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::events::Events;
use super::image::{sniff_compression, Compression, LayerPlan};
use super::registry::Session;
use super::registry_error;
use crate::service::files::new_blob_key;
use crate::service::ServiceError;

/// A progress message at most every this many bytes (as the original).
const PROGRESS_EVERY: u64 = 512 * 1024;
/// Chunks queued for the decompressing thread.
const DECOMPRESS_QUEUE: usize = 16;

/// Why a layer could not be brought in; `transient` failures (a transfer
/// cut short) are worth another attempt, as the original retries them.
pub struct LayerFailure {
    pub error: ServiceError,
    pub transient: bool,
}

impl From<ServiceError> for LayerFailure {
    fn from(error: ServiceError) -> Self {
        LayerFailure {
            error,
            transient: false,
        }
    }
}

fn transient(message: String) -> LayerFailure {
    LayerFailure {
        error: ServiceError::Download(message),
        transient: true,
    }
}

/// A verified layer blob in the store.
pub struct StoredBlob {
    pub key: String,
    pub outcome: PutOutcome,
    pub compression: Compression,
}

fn too_big(size: u64) -> ServiceError {
    ServiceError::ImageFileTooBig(format!(
        "Image file size, {size}, exceeds the maximum allowed file size, 20 GiB"
    ))
}

/// A `Read` over chunks sent from the async side.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Inflated bytes handed to the hashing thread at a time.
const INFLATE_CHUNK: usize = 256 * 1024;
/// Inflated chunks queued for the hashing thread.
const HASH_QUEUE: usize = 4;

/// SHA-256 of the gunzipped stream of chunks received on `rx`. Inflating
/// and hashing the (larger) tar run on two threads, so a layer's diff_id
/// costs the wall time of the slower of the two, not of both.
fn gunzip_sha256(rx: mpsc::Receiver<Bytes>) -> Result<String, String> {
    let (to_hash, chunks) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_QUEUE);
    let (give_back, returned) = std::sync::mpsc::channel::<Vec<u8>>();
    let hashing = std::thread::Builder::new()
        .name("layer-diff-id".into())
        .spawn(move || {
            let mut hasher = Sha256::new();
            for chunk in chunks {
                hasher.update(&chunk);
                // Reused by the inflating side; gone once it stopped.
                let _ = give_back.send(chunk);
            }
            format!("sha256:{}", hex::encode(hasher.finalize()))
        })
        .map_err(|e| format!("cannot start the layer hashing thread: {e}"))?;
    let mut decoder = flate2::read::MultiGzDecoder::new(ChannelReader {
        rx,
        current: Bytes::new(),
    });
    let inflated = loop {
        let mut buf = returned.try_recv().unwrap_or_default();
        buf.resize(INFLATE_CHUNK, 0);
        match decoder.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                buf.truncate(n);
                if to_hash.send(buf).is_err() {
                    break Err("the layer hashing thread stopped".to_string());
                }
            }
            Err(e) => break Err(format!("the layer is not a valid gzip stream: {e}")),
        }
    };
    drop(to_hash);
    // Drain what the decoder did not need, so the sender never blocks.
    let mut rest = decoder.into_inner();
    while rest.rx.blocking_recv().is_some() {}
    let digest = hashing
        .join()
        .map_err(|_| "the layer hashing thread failed".to_string())?;
    inflated.map(|()| digest)
}

/// Fetch `plan`'s blob into `store` and verify it. `cancelled` stops the
/// transfer (another layer failed).
pub async fn download_layer(
    session: &Session<'_>,
    store: &Arc<dyn BlobStore>,
    plan: &LayerPlan,
    events: &Events,
    cancelled: Arc<AtomicBool>,
) -> Result<StoredBlob, LayerFailure> {
    if plan.size > MAX_IMAGE_FILE_SIZE {
        return Err(too_big(plan.size).into());
    }
    let (mut body, announced) = session
        .get_blob(&plan.digest)
        .await
        .map_err(registry_error)?;
    if let Some(len) = announced.filter(|l| *l > MAX_IMAGE_FILE_SIZE) {
        return Err(too_big(len).into());
    }
    let canceled = Arc::clone(&cancelled);
    let short = plan.short_id().to_string();
    events.layer(&short, "Pulling fs layer");

    // The compression comes from the media type, or the first bytes.
    let mut first: Option<Bytes> = None;
    let mut compression = Compression::from_media_type(&plan.media_type);
    if compression == Compression::Unsupported("unknown") {
        match body.next().await {
            Some(Ok(chunk)) => {
                compression = sniff_compression(&chunk);
                first = Some(chunk);
            }
            Some(Err(e)) => return Err(transient(format!("Download error: {e}"))),
            None => compression = Compression::None,
        }
    }
    if let Compression::Unsupported(kind) = compression {
        return Err(ServiceError::NotImplemented(format!(
            "layer {} is compressed with {kind}, which is not supported (gzip or none)",
            plan.digest
        ))
        .into());
    }

    let (tx, hasher) = if compression == Compression::Gzip {
        let (tx, rx) = mpsc::channel::<Bytes>(DECOMPRESS_QUEUE);
        let task = tokio::task::spawn_blocking(move || gunzip_sha256(rx));
        (Some(tx), Some(task))
    } else {
        (None, None)
    };
    let total = plan.size.max(announced.unwrap_or(0));
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let head: ByteStream = Box::pin(futures_util::stream::iter(first.map(Ok)));
    let progress_events = events.clone();
    let progress_id = short.clone();
    let mut received = 0u64;
    let mut reported = 0u64;
    let tee: ByteStream = Box::pin(head.chain(body).then(move |item| {
        let tx = tx.clone();
        let cancelled = Arc::clone(&cancelled);
        let item = item.and_then(|chunk| {
            if cancelled.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("Download canceled"));
            }
            Ok(chunk)
        });
        if let Ok(chunk) = &item {
            received += chunk.len() as u64;
            if received - reported > PROGRESS_EVERY {
                reported = received;
                progress_events.progress(json!({
                    "id": progress_id,
                    "status": "Downloading",
                    "progressDetail": {"current": received, "total": total, "start": start},
                }));
            }
        }
        async move {
            if let (Ok(chunk), Some(tx)) = (&item, tx) {
                let _ = tx.send(chunk.clone()).await;
            }
            item
        }
    }));
    let key = new_blob_key(plan.uuid(), "file0");
    let max = if plan.size > 0 {
        plan.size
    } else {
        MAX_IMAGE_FILE_SIZE
    };
    let put = store.put_stream(&key, tee, max).await;
    let uncompressed = match hasher {
        Some(task) => Some(
            task.await
                .map_err(|e| ServiceError::Internal(format!("layer decompression failed: {e}")))?,
        ),
        None => None,
    };
    let outcome = match put {
        Ok(o) => o,
        Err(BlobError::TooLarge { .. }) => {
            return Err(ServiceError::Download(format!(
                "Download error: layer {} is larger than its manifest says ({} bytes)",
                plan.digest, plan.size
            ))
            .into())
        }
        Err(BlobError::Source(e)) if !canceled.load(Ordering::Relaxed) => {
            return Err(transient(format!("Download error: {e}")))
        }
        Err(BlobError::Source(e)) => {
            return Err(ServiceError::Download(format!("Download error: {e}")).into())
        }
        Err(e) => return Err(ServiceError::blob("error receiving image file")(e).into()),
    };
    let discard_with = |e: ServiceError| async {
        if let Err(del) = store.delete(&key).await {
            tracing::warn!(key, error = %del, "could not delete a refused layer");
        }
        Err(LayerFailure::from(e))
    };
    let got = format!("sha256:{}", outcome.sha256);
    if got != plan.digest {
        return discard_with(ServiceError::Download(format!(
            "layer digest does not match, got {got}, expected {}",
            plan.digest
        )))
        .await;
    }
    if plan.size > 0 && outcome.size != plan.size {
        return discard_with(ServiceError::Download(format!(
            "Download error: layer size {} does not match the manifest's {}",
            outcome.size, plan.size
        )))
        .await;
    }
    let uncompressed = match uncompressed {
        Some(Ok(d)) => d,
        Some(Err(why)) => return discard_with(ServiceError::Download(why)).await,
        None => got.clone(),
    };
    if uncompressed != plan.diff_id {
        return discard_with(ServiceError::Download(format!(
            "layer uncompressed digest does not match the image config, got {uncompressed}, expected {}",
            plan.diff_id
        )))
        .await;
    }
    events.layer(&short, "Download complete");
    Ok(StoredBlob {
        key,
        outcome,
        compression,
    })
}
