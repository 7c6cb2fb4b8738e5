//! Conformance suite every [`BlobStore`] backend must pass.
//!
//! A backend's test calls [`run_all`] on a fresh store that nothing else
//! uses while the suite runs (the suite checks `sweep_staging() == 0` after
//! failed puts, which would see other writers' puts in progress). All keys
//! live under `suite/`. Each contract point is also a public function, so a
//! backend can run just one of them while debugging.
//!
//! Failures panic with a message naming the contract point.

use std::fmt::Debug;
use std::io;
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use crate::{digest, BlobError, BlobStore, ByteStream, Digests, StagedChunk};

/// How long a put fed by a never-ending stream may take to notice it must
/// fail ("as soon as" the limit is exceeded).
const PROMPT: Duration = Duration::from_secs(20);

mod aside;
pub use aside::list_objects_and_lost_found;

/// Run every contract check, in order.
pub async fn run_all(store: &dyn BlobStore) {
    known_digests(store).await;
    empty_object(store).await;
    put_get_round_trip(store).await;
    ranged_reads(store).await;
    stat_reports_size(store).await;
    replace_is_atomic(store).await;
    concurrent_puts_same_key(store).await;
    delete_and_delete_missing(store).await;
    list_with_prefix(store).await;
    too_large_is_rejected_promptly(store).await;
    size_limit_is_inclusive(store).await;
    failing_source_leaves_nothing(store).await;
    invalid_keys_rejected(store).await;
    missing_is_not_found(store).await;
    staged_round_trip_with_failed_attempts(store).await;
    staged_chunk_length_is_exact(store).await;
    staged_abort_and_leftovers(store).await;
    aside::list_objects_and_lost_found(store).await;
    no_staging_leftovers(store).await;
}

// ---------------------------------------------------------------- helpers

/// Does the S3 server under test declare this known deviation from AWS S3
/// (`S3_QUIRKS`, a comma list printed by the `.ci/*-start.sh` scripts)?
/// - `fixed-initiated`: ListMultipartUploads dates every upload to one
///   fixed past instant (moto), so no upload looks young;
/// - `any-credentials`: requests are not authenticated (moto).
///
/// A declared quirk is asserted, not skipped: a server that stops showing
/// it fails until the declaration is removed.
pub fn s3_quirk(name: &str) -> bool {
    #[allow(clippy::disallowed_methods)] // the test target declares it
    let quirks = std::env::var("S3_QUIRKS").unwrap_or_default();
    quirks.split(',').any(|q| q.trim() == name)
}

fn ok<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Bytes {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// Odd chunk sizes, cycled: tiny, unaligned, and bigger than a MiB.
const ODD_SIZES: [usize; 8] = [1, 7, 4093, 65_537, (1 << 20) + 3, 333_333, 2 << 20, 12];

/// `data` as a stream of zero-copy slices with sizes cycling through `sizes`.
pub fn chunked(data: Bytes, sizes: &[usize]) -> ByteStream {
    let mut parts = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let n = sizes[i % sizes.len()].max(1).min(data.len() - at);
        parts.push(Ok(data.slice(at..at + n)));
        at += n;
        i += 1;
    }
    Box::pin(futures_util::stream::iter(parts))
}

/// `data` in odd chunks, then the stream never ends nor yields again.
fn chunked_then_stall(data: Bytes) -> ByteStream {
    Box::pin(chunked(data, &ODD_SIZES).chain(futures_util::stream::pending()))
}

/// `data` in odd chunks, then an I/O error (a client that went away).
fn chunked_then_error(data: Bytes) -> ByteStream {
    let error = futures_util::stream::iter(vec![Err(io::Error::new(
        io::ErrorKind::ConnectionReset,
        "client went away",
    ))]);
    Box::pin(chunked(data, &ODD_SIZES).chain(error))
}

async fn read_all(mut stream: ByteStream, what: &str) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&ok(chunk, what));
    }
    out
}

async fn put(store: &dyn BlobStore, key: &str, data: &Bytes) {
    let outcome = ok(
        store
            .put_stream(key, chunked(data.clone(), &ODD_SIZES), u64::MAX)
            .await,
        &format!("put {key}"),
    );
    assert_eq!(outcome.size, data.len() as u64, "put {key}: size");
}

async fn get(store: &dyn BlobStore, key: &str) -> Vec<u8> {
    let read = ok(store.get_stream(key, None).await, &format!("get {key}"));
    read_all(read.stream, &format!("get {key}: stream")).await
}

async fn assert_absent(store: &dyn BlobStore, key: &str, what: &str) {
    match store.get_stream(key, None).await {
        Err(BlobError::NotFound(_)) => {}
        Err(e) => panic!("{what}: get {key}: expected NotFound, got {e:?}"),
        Ok(_) => panic!("{what}: get {key}: expected NotFound, got an object"),
    }
    match store.stat(key).await {
        Err(BlobError::NotFound(_)) => {}
        other => panic!("{what}: stat {key}: expected NotFound, got {other:?}"),
    }
    let listed = ok(store.list(key).await, &format!("{what}: list {key}"));
    assert!(
        !listed.iter().any(|k| k == key),
        "{what}: {key} is listed: {listed:?}"
    );
}

async fn assert_content(store: &dyn BlobStore, key: &str, data: &[u8], what: &str) {
    let got = get(store, key).await;
    assert!(
        got == data,
        "{what}: {key} holds {} bytes, expected {} (or content differs)",
        got.len(),
        data.len()
    );
}

fn is_invalid(result: &Result<(), BlobError>) -> bool {
    matches!(result, Err(BlobError::InvalidKey(_)))
}

// ------------------------------------------------------- contract points

/// Digests have the documented encodings (known answers for "abc").
pub async fn known_digests(store: &dyn BlobStore) {
    let out = ok(
        store
            .put_stream("suite/abc", chunked(Bytes::from_static(b"abc"), &[1]), 3)
            .await,
        "put abc",
    );
    assert_eq!(out.size, 3);
    assert_eq!(out.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_eq!(out.md5_base64, "kAFQmDzST7DWlj99KOF/cg==");
    assert_eq!(
        out.sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    ok(store.delete("suite/abc").await, "delete abc");
}

/// A zero-byte object (empty stream) is a valid object.
pub async fn empty_object(store: &dyn BlobStore) {
    let body: ByteStream = Box::pin(futures_util::stream::iter(Vec::new()));
    let out = ok(store.put_stream("suite/empty", body, 0).await, "put empty");
    assert_eq!(out.size, 0);
    assert_eq!(out.sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    assert_eq!(out.md5_base64, "1B2M2Y8AsgTpgAmY7PhCfg==");
    assert_eq!(ok(store.stat("suite/empty").await, "stat empty").size, 0);
    let read = ok(store.get_stream("suite/empty", None).await, "get empty");
    assert_eq!((read.total_size, read.range.clone()), (0, 0..0));
    assert!(read_all(read.stream, "get empty").await.is_empty());
    ok(store.delete("suite/empty").await, "delete empty");
}

/// A multi-MiB body fed in odd-sized chunks comes back byte for byte, with
/// the right size, SHA-1 and MD5.
pub async fn put_get_round_trip(store: &dyn BlobStore) {
    let data = random_bytes((5 << 20) + 123, 1);
    let out = ok(
        store
            .put_stream(
                "suite/rt/file0",
                chunked(data.clone(), &ODD_SIZES),
                64 << 20,
            )
            .await,
        "round trip put",
    );
    assert_eq!(out.size, data.len() as u64, "round trip size");
    assert_eq!(out.sha1, digest::sha1_hex(&data), "round trip sha1");
    assert_eq!(out.md5_base64, digest::md5_base64(&data), "round trip md5");
    assert_eq!(out.sha256, digest::sha256_hex(&data), "round trip sha256");
    let read = ok(
        store.get_stream("suite/rt/file0", None).await,
        "round trip get",
    );
    assert_eq!(read.total_size, data.len() as u64);
    assert_eq!(read.range, 0..data.len() as u64);
    let got = read_all(read.stream, "round trip get").await;
    assert!(got == data, "round trip: content differs");
    ok(store.delete("suite/rt/file0").await, "round trip delete");
}

/// Ranged reads return exactly the requested bytes: start, middle (across
/// chunk boundaries), end, single bytes, whole.
pub async fn ranged_reads(store: &dyn BlobStore) {
    let data = random_bytes((3 << 20) + 17, 2);
    let n = data.len() as u64;
    put(store, "suite/range", &data).await;
    let ranges: [Range<u64>; 8] = [
        0..10,
        0..1,
        n - 1..n,
        1_000_000..2_500_001,
        (1 << 20) - 1..(1 << 20) + 1,
        12_345..12_346,
        n - 100..n,
        0..n,
    ];
    for range in ranges {
        let what = format!("range {range:?}");
        let read = ok(
            store.get_stream("suite/range", Some(range.clone())).await,
            &what,
        );
        assert_eq!(read.total_size, n, "{what}: total_size");
        assert_eq!(read.range, range, "{what}: range");
        let got = read_all(read.stream, &what).await;
        let (start, end) = (range.start as usize, range.end as usize);
        assert!(got == data[start..end], "{what}: content differs");
    }
    ok(store.delete("suite/range").await, "range delete");
}

/// `stat` reports the stored size.
pub async fn stat_reports_size(store: &dyn BlobStore) {
    let data = random_bytes(70_001, 3);
    put(store, "suite/stat", &data).await;
    assert_eq!(ok(store.stat("suite/stat").await, "stat").size, 70_001);
    ok(store.delete("suite/stat").await, "stat delete");
}

/// Putting to an existing key replaces it; a failed replace (too large,
/// source error) leaves the previous object intact.
pub async fn replace_is_atomic(store: &dyn BlobStore) {
    let key = "suite/replace";
    let first = random_bytes(1 << 20, 4);
    let second = random_bytes((2 << 20) + 5, 5);
    put(store, key, &first).await;
    put(store, key, &second).await;
    assert_content(store, key, &second, "after replace").await;
    assert_eq!(
        ok(store.stat(key).await, "stat after replace").size,
        second.len() as u64
    );

    let big = random_bytes(3 << 20, 6);
    match store
        .put_stream(key, chunked(big.clone(), &ODD_SIZES), 1 << 20)
        .await
    {
        Err(BlobError::TooLarge { .. }) => {}
        other => panic!("too-large replace: expected TooLarge, got {other:?}"),
    }
    assert_content(store, key, &second, "after too-large replace").await;
    match store
        .put_stream(key, chunked_then_error(big), u64::MAX)
        .await
    {
        Err(BlobError::Source(_)) => {}
        other => panic!("failed replace: expected Source, got {other:?}"),
    }
    assert_content(store, key, &second, "after failed replace").await;
    ok(store.delete(key).await, "replace delete");
}

/// Two puts racing on one key: the result is one of them, whole.
pub async fn concurrent_puts_same_key(store: &dyn BlobStore) {
    let key = "suite/race";
    let a = random_bytes((2 << 20) + 1, 7);
    let b = random_bytes((3 << 20) + 2, 8);
    let (ra, rb) = futures_util::future::join(
        store.put_stream(key, chunked(a.clone(), &ODD_SIZES), u64::MAX),
        store.put_stream(key, chunked(b.clone(), &[65_536]), u64::MAX),
    )
    .await;
    ok(ra, "race put a");
    ok(rb, "race put b");
    let got = get(store, key).await;
    assert!(
        got == a || got == b,
        "race: content is neither put ({} bytes)",
        got.len()
    );
    ok(store.delete(key).await, "race delete");
}

/// Delete removes the object and nothing else; deleting a missing key is Ok.
pub async fn delete_and_delete_missing(store: &dyn BlobStore) {
    let data = random_bytes(10_000, 9);
    put(store, "suite/del/a", &data).await;
    put(store, "suite/del/b", &data).await;
    ok(store.delete("suite/del/a").await, "delete a");
    assert_absent(store, "suite/del/a", "after delete").await;
    assert_content(store, "suite/del/b", &data, "sibling after delete").await;
    ok(store.delete("suite/del/a").await, "delete a again");
    ok(
        store.delete("suite/del/never").await,
        "delete never-existing key",
    );
    ok(
        store.delete("suite/no/such/dir/x").await,
        "delete under missing prefix",
    );
    ok(store.delete("suite/del/b").await, "delete b");
    assert_absent(store, "suite/del/b", "after delete b").await;
}

/// `list(prefix)` returns committed keys starting with `prefix` (a plain
/// string prefix, as in S3), sorted.
pub async fn list_with_prefix(store: &dyn BlobStore) {
    let keys = [
        "suite/list/a/1",
        "suite/list/a/2",
        "suite/list/ab",
        "suite/list/b/x/y",
    ];
    let data = Bytes::from_static(b"x");
    for key in keys {
        put(store, key, &data).await;
    }
    let list = |prefix: &'static str| async move {
        ok(store.list(prefix).await, &format!("list {prefix:?}"))
    };
    assert_eq!(list("suite/list/").await, keys);
    assert_eq!(list("suite/list").await, keys);
    assert_eq!(list("suite/list/a").await, keys[..3]);
    assert_eq!(list("suite/list/a/").await, keys[..2]);
    assert_eq!(list("suite/list/b/x/y").await, keys[3..]);
    assert!(list("suite/list/zzz").await.is_empty());
    assert!(list("suite/nothing/here/").await.is_empty());
    let all = list("").await;
    for key in keys {
        assert!(all.iter().any(|k| k == key), "list \"\" misses {key}");
    }
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "list is sorted");
    for key in keys {
        ok(store.delete(key).await, "list delete");
    }
    assert!(list("suite/list/").await.is_empty(), "list after deletes");
}

/// More than `max_size` bytes fails with `TooLarge` as soon as the limit is
/// crossed (the stream never ends here), leaving nothing behind.
pub async fn too_large_is_rejected_promptly(store: &dyn BlobStore) {
    let key = "suite/too-large";
    let body = chunked_then_stall(random_bytes(3 << 20, 10));
    let result = tokio::time::timeout(PROMPT, store.put_stream(key, body, 1 << 20)).await;
    match result {
        Ok(Err(BlobError::TooLarge { limit })) => assert_eq!(limit, 1 << 20),
        Ok(other) => panic!("too large: expected TooLarge, got {other:?}"),
        Err(_) => panic!("too large: put did not fail once the limit was exceeded"),
    }
    assert_absent(store, key, "after TooLarge").await;
}

/// Exactly `max_size` bytes is accepted; one more is not.
pub async fn size_limit_is_inclusive(store: &dyn BlobStore) {
    let data = random_bytes(1000, 11);
    let out = ok(
        store
            .put_stream("suite/limit", chunked(data.clone(), &[7]), 1000)
            .await,
        "put at the limit",
    );
    assert_eq!(out.size, 1000);
    let over = random_bytes(1001, 12);
    match store
        .put_stream("suite/limit-over", chunked(over, &[1001]), 1000)
        .await
    {
        Err(BlobError::TooLarge { limit: 1000 }) => {}
        other => panic!("limit + 1: expected TooLarge, got {other:?}"),
    }
    assert_absent(store, "suite/limit-over", "after limit + 1").await;
    ok(store.delete("suite/limit").await, "limit delete");
}

/// A body stream that fails → `BlobError::Source` carrying that error, and
/// nothing visible.
pub async fn failing_source_leaves_nothing(store: &dyn BlobStore) {
    let key = "suite/source-error";
    let body = chunked_then_error(random_bytes((2 << 20) + 999, 13));
    match store.put_stream(key, body, u64::MAX).await {
        Err(BlobError::Source(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
        other => panic!("source error: expected Source, got {other:?}"),
    }
    assert_absent(store, key, "after source error").await;
}

/// Keys that are not clean relative paths are refused by every method.
pub async fn invalid_keys_rejected(store: &dyn BlobStore) {
    let bad = [
        "",
        "/abs",
        "a//b",
        "a/",
        ".",
        "..",
        "a/./b",
        "../x",
        "a/../b",
        "a/..",
        "a\\b",
        "a\0b",
        "a b",
        "a?b",
        "caf\u{e9}",
    ];
    for key in bad {
        let body = chunked(Bytes::from_static(b"x"), &[1]);
        let put = store.put_stream(key, body, 10).await.map(|_| ());
        assert!(
            is_invalid(&put),
            "put {key:?}: expected InvalidKey, got {put:?}"
        );
        let get = store.get_stream(key, None).await.map(|_| ());
        assert!(
            is_invalid(&get),
            "get {key:?}: expected InvalidKey, got {get:?}"
        );
        let stat = store.stat(key).await.map(|_| ());
        assert!(
            is_invalid(&stat),
            "stat {key:?}: expected InvalidKey, got {stat:?}"
        );
        let delete = store.delete(key).await;
        assert!(
            is_invalid(&delete),
            "delete {key:?}: expected InvalidKey, got {delete:?}"
        );
    }
    for prefix in ["../", "a/../", "/", "a b"] {
        let list = store.list(prefix).await;
        assert!(
            matches!(list, Err(BlobError::InvalidKey(_))),
            "list {prefix:?}: expected InvalidKey, got {list:?}"
        );
    }
}

/// Missing keys are `NotFound` for get (whole or ranged) and stat.
pub async fn missing_is_not_found(store: &dyn BlobStore) {
    assert_absent(store, "suite/missing", "missing key").await;
    assert_absent(store, "suite/missing/deeper/key", "missing nested key").await;
    match store.get_stream("suite/missing", Some(0..1)).await {
        Err(BlobError::NotFound(_)) => {}
        Err(e) => panic!("ranged get of missing key: expected NotFound, got {e:?}"),
        Ok(_) => panic!("ranged get of missing key: got an object"),
    }
}

/// One append of `data` at `offset` (the caller's record: `parts`, `digests`).
#[allow(clippy::too_many_arguments)]
async fn append(
    store: &dyn BlobStore,
    key: &str,
    handle: &str,
    offset: u64,
    parts: &[String],
    digests: &Digests,
    body: ByteStream,
    len: u64,
    last: bool,
) -> Result<crate::StagedProgress, BlobError> {
    // Round-trip the digests through their saved form, as sessions do.
    let digests = ok(Digests::from_state(&digests.to_state()), "restore digests");
    store
        .staged_append(
            StagedChunk {
                key,
                handle,
                offset,
                len,
                parts,
                last,
                digests,
            },
            body,
        )
        .await
}

/// A staged upload in three chunks, with a failed attempt (the client went
/// away mid-chunk) before the second chunk succeeds: the committed object
/// holds exactly the chunks, and the running digests carried from chunk to
/// chunk (through their saved form) are those of the whole object. Nothing
/// is visible before the commit; the staged data is gone after it.
pub async fn staged_round_trip_with_failed_attempts(store: &dyn BlobStore) {
    let key = "suite/staged/file0-staged";
    let min = store.staged_min_chunk().max((1 << 20) + 3);
    let lens = [min + 12_345, min, 777];
    let total: u64 = lens.iter().sum();
    let data = random_bytes(usize::try_from(total).unwrap_or(0), 21);
    let handle = ok(store.staged_create(key).await, "staged_create");
    assert_absent(store, key, "staged, before commit").await;
    let mut parts: Vec<String> = Vec::new();
    let mut digests = Digests::new();
    let mut offset = 0u64;
    for (i, len) in lens.iter().copied().enumerate() {
        let range =
            usize::try_from(offset).unwrap_or(0)..usize::try_from(offset + len).unwrap_or(0);
        let last = i + 1 == lens.len();
        if i == 1 {
            // A first attempt that breaks off half-way.
            let half = range.start..range.start + range.len() / 2;
            let failed = append(
                store,
                key,
                &handle,
                offset,
                &parts,
                &digests,
                chunked_then_error(data.slice(half)),
                len,
                last,
            )
            .await;
            assert!(
                matches!(failed, Err(BlobError::Source(_))),
                "staged: broken chunk: expected Source, got {failed:?}"
            );
            // And one whose bytes differ: overwritten by the retry below.
            let wrong = random_bytes(range.len(), 99);
            let _ = append(
                store,
                key,
                &handle,
                offset,
                &parts,
                &digests,
                chunked_then_error(wrong.slice(..range.len() - 1)),
                len,
                last,
            )
            .await;
        }
        let done = ok(
            append(
                store,
                key,
                &handle,
                offset,
                &parts,
                &digests,
                chunked(data.slice(range), &ODD_SIZES),
                len,
                last,
            )
            .await,
            &format!("staged chunk {i}"),
        );
        parts.extend(done.new_parts);
        digests = done.digests;
        offset += len;
        assert_absent(store, key, "staged, before commit").await;
    }
    let values = digests.values();
    assert_eq!(values.sha1, digest::sha1_hex(&data), "staged sha1");
    assert_eq!(values.md5_base64, digest::md5_base64(&data), "staged md5");
    assert_eq!(values.sha256, digest::sha256_hex(&data), "staged sha256");
    // A sweep at start-up does not touch staged uploads.
    ok(store.sweep_staging().await, "sweep_staging");
    ok(
        store.staged_commit(key, &handle, &parts, total).await,
        "staged_commit",
    );
    assert_content(store, key, &data, "staged, committed").await;
    assert_eq!(ok(store.stat(key).await, "stat staged").size, total);
    let leftovers = ok(
        store.staged_leftovers(Duration::ZERO).await,
        "staged_leftovers",
    );
    assert!(
        !leftovers.iter().any(|l| l.handle == handle),
        "a committed upload is no leftover: {leftovers:?}"
    );
    // Aborting a committed upload leaves the object alone.
    ok(store.staged_abort(key, &handle).await, "abort after commit");
    assert_content(store, key, &data, "staged, after abort").await;
    ok(store.delete(key).await, "delete staged");
}

/// A chunk body shorter than its length fails with `Source`
/// (`UnexpectedEof`), a longer one with `TooLarge`; neither moves the
/// upload, and a correct retry then succeeds.
pub async fn staged_chunk_length_is_exact(store: &dyn BlobStore) {
    let key = "suite/staged/exact-staged";
    let data = random_bytes(4099, 22);
    let handle = ok(store.staged_create(key).await, "staged_create");
    let digests = Digests::new();
    let short = append(
        store,
        key,
        &handle,
        0,
        &[],
        &digests,
        chunked(data.slice(..4000), &[999]),
        4099,
        true,
    )
    .await;
    match short {
        Err(BlobError::Source(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
        other => panic!("short chunk: expected Source(UnexpectedEof), got {other:?}"),
    }
    let long = append(
        store,
        key,
        &handle,
        0,
        &[],
        &digests,
        chunked(data.clone(), &[999]),
        4000,
        true,
    )
    .await;
    assert!(
        matches!(long, Err(BlobError::TooLarge { limit: 4000 })),
        "long chunk: expected TooLarge, got {long:?}"
    );
    let done = ok(
        append(
            store,
            key,
            &handle,
            0,
            &[],
            &digests,
            chunked(data.clone(), &[999]),
            4099,
            true,
        )
        .await,
        "exact chunk",
    );
    ok(
        store
            .staged_commit(key, &handle, &done.new_parts, 4099)
            .await,
        "commit exact",
    );
    assert_content(store, key, &data, "exact").await;
    ok(store.delete(key).await, "delete exact");
}

/// An aborted staged upload leaves nothing; a live one is listed by
/// `staged_leftovers` (age 0) until aborted; a missing upload is NotFound.
pub async fn staged_abort_and_leftovers(store: &dyn BlobStore) {
    let key = "suite/staged/aborted-staged";
    let bad = store.staged_create("suite/staged/no-suffix").await;
    assert!(
        matches!(bad, Err(BlobError::InvalidKey(_))),
        "staged key without the suffix: expected InvalidKey, got {bad:?}"
    );
    let handle = ok(store.staged_create(key).await, "staged_create");
    let data = random_bytes(1000, 23);
    let done = ok(
        append(
            store,
            key,
            &handle,
            0,
            &[],
            &Digests::new(),
            chunked(data, &[100]),
            1000,
            true,
        )
        .await,
        "append",
    );
    let listed = ok(store.staged_leftovers(Duration::ZERO).await, "leftovers");
    if !listed.is_empty() {
        // (A server that cannot list multipart uploads lists nothing.)
        assert!(
            listed.iter().any(|l| l.handle == handle),
            "live staged upload not listed: {listed:?}"
        );
    }
    let young = ok(
        store.staged_leftovers(Duration::from_secs(3600)).await,
        "leftovers (1 h)",
    );
    let listed_as_old = young.iter().any(|l| l.handle == handle);
    if s3_quirk("fixed-initiated") {
        assert!(listed_as_old, "declared fixed-initiated, yet dated right");
    } else {
        assert!(
            !listed_as_old,
            "a fresh upload is not an hour old: {young:?}"
        );
    }
    ok(store.staged_abort(key, &handle).await, "abort");
    ok(store.staged_abort(key, &handle).await, "abort again");
    assert_absent(store, key, "after abort").await;
    let listed = ok(store.staged_leftovers(Duration::ZERO).await, "leftovers");
    assert!(
        !listed.iter().any(|l| l.handle == handle),
        "aborted upload still listed: {listed:?}"
    );
    let gone = store
        .staged_commit(key, &handle, &done.new_parts, 1000)
        .await;
    assert!(gone.is_err(), "commit of an aborted upload: {gone:?}");
    assert_absent(store, key, "after commit of aborted").await;
}

/// After all the failed puts above, no staging data remains (the sweep
/// finds nothing), and no `suite/` key is left.
pub async fn no_staging_leftovers(store: &dyn BlobStore) {
    let leftovers = ok(store.sweep_staging().await, "sweep_staging");
    assert_eq!(leftovers, 0, "failed puts left staging data behind");
    let keys = ok(store.list("suite/").await, "final list");
    assert!(keys.is_empty(), "suite keys left behind: {keys:?}");
}
