use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use super::*;
use crate::testsuite::{self, chunked, random_bytes};

fn store() -> (tempfile::TempDir, LocalBlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(&dir.path().join("blobs")).unwrap();
    (dir, store)
}

async fn read_all(read: BlobRead) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = read.stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let (_dir, store) = store();
    testsuite::run_all(&store).await;
}

#[tokio::test(flavor = "current_thread")]
async fn conformance_on_current_thread_runtime() {
    let (_dir, store) = store();
    testsuite::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_without_early_writeback_and_with_constant_writeback() {
    let (_dir, store) = store();
    testsuite::run_all(&store.clone().with_writeback_every(0)).await;
    testsuite::run_all(&store.with_writeback_every(1)).await;
}

#[test]
fn open_creates_root_and_staging() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b/c");
    let store = LocalBlobStore::open(&root).unwrap();
    assert!(root.join(STAGING_DIR).is_dir());
    assert_eq!(store.root(), root);
    assert_eq!(store.staging_entries().unwrap(), 0);
}

#[tokio::test]
async fn objects_are_plain_files_under_the_root() {
    let (_dir, store) = store();
    let out = store
        .put_stream(
            "images/abc/file0",
            chunked(Bytes::from_static(b"hello"), &[2]),
            5,
        )
        .await
        .unwrap();
    assert_eq!(out.size, 5);
    let path = store.root().join("images/abc/file0");
    assert_eq!(fs::read(path).unwrap(), b"hello");
    assert_eq!(store.staging_entries().unwrap(), 0);
}

#[tokio::test]
async fn staging_is_empty_after_failures_and_cancellation() {
    let (_dir, store) = store();
    let data = random_bytes(3 << 20, 1);

    let r = store
        .put_stream("k", chunked(data.clone(), &[100_000]), 1 << 20)
        .await;
    assert!(matches!(r, Err(BlobError::TooLarge { .. })), "{r:?}");
    assert_eq!(store.staging_entries().unwrap(), 0, "after TooLarge");

    let failing: ByteStream = Box::pin(chunked(data.clone(), &[100_000]).chain(
        futures_util::stream::iter(vec![Err(io::Error::new(io::ErrorKind::BrokenPipe, "gone"))]),
    ));
    let r = store.put_stream("k", failing, u64::MAX).await;
    assert!(matches!(r, Err(BlobError::Source(_))), "{r:?}");
    assert_eq!(store.staging_entries().unwrap(), 0, "after Source");

    // A put whose future is dropped mid-stream (client gone, handler
    // cancelled) cleans up too.
    let stalled: ByteStream =
        Box::pin(chunked(data, &[100_000]).chain(futures_util::stream::pending()));
    let r = tokio::time::timeout(
        Duration::from_millis(300),
        store.put_stream("k", stalled, u64::MAX),
    )
    .await;
    assert!(r.is_err(), "the stalled put should still be running");
    assert_eq!(store.staging_entries().unwrap(), 0, "after cancellation");
    assert!(!store.root().join("k").exists());
}

#[tokio::test]
async fn sweep_staging_removes_planted_leftovers() {
    let (_dir, store) = store();
    let staging = store.root().join(STAGING_DIR);
    fs::write(staging.join("1.part"), b"half").unwrap();
    fs::write(staging.join("2.part"), b"").unwrap();
    fs::create_dir_all(staging.join("weird/dir")).unwrap();
    fs::write(staging.join("weird/dir/f"), b"x").unwrap();
    fs::write(store.root().join("keep"), b"keep").unwrap();

    assert_eq!(store.sweep_staging().await.unwrap(), 3);
    assert_eq!(store.staging_entries().unwrap(), 0);
    assert!(staging.is_dir());
    assert_eq!(store.sweep_staging().await.unwrap(), 0);
    assert_eq!(store.list("").await.unwrap(), ["keep"]);
}

#[tokio::test]
async fn sweep_staging_recreates_a_missing_staging_dir() {
    let (_dir, store) = store();
    fs::remove_dir(store.root().join(STAGING_DIR)).unwrap();
    assert_eq!(store.sweep_staging().await.unwrap(), 0);
    assert!(store.root().join(STAGING_DIR).is_dir());
}

#[tokio::test]
async fn path_traversal_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(&dir.path().join("blobs")).unwrap();
    fs::write(dir.path().join("outside"), b"secret").unwrap();
    let evil = [
        "../outside",
        "a/../../outside",
        "..",
        "/etc/passwd",
        "a/../b",
        ".staging/x",
        ".staging",
        "a\\..\\outside",
        "a\0",
    ];
    for key in evil {
        let body = chunked(Bytes::from_static(b"pwned"), &[5]);
        let r = store.put_stream(key, body, 100).await;
        assert!(
            matches!(r, Err(BlobError::InvalidKey(_))),
            "put {key:?}: {r:?}"
        );
        let r = store.get_stream(key, None).await.map(|_| ());
        assert!(
            matches!(r, Err(BlobError::InvalidKey(_))),
            "get {key:?}: {r:?}"
        );
        let r = store.delete(key).await;
        assert!(
            matches!(r, Err(BlobError::InvalidKey(_))),
            "delete {key:?}: {r:?}"
        );
    }
    for prefix in ["../", "../outside", ".staging/", "a/../"] {
        let r = store.list(prefix).await;
        assert!(
            matches!(r, Err(BlobError::InvalidKey(_))),
            "list {prefix:?}: {r:?}"
        );
    }
    assert_eq!(fs::read(dir.path().join("outside")).unwrap(), b"secret");
    assert!(!dir.path().join("pwned").exists());
}

#[test]
fn key_validation() {
    for good in [
        "a",
        "images/0a1b-c/file0",
        "x.y_z-1",
        "a/b/c/d",
        "...",
        ".hidden",
    ] {
        assert!(validate_key(good).is_ok(), "{good:?}");
    }
    let long_segment = "a".repeat(256);
    let long_key = "a/".repeat(600);
    for bad in [
        "",
        "a/",
        "/a",
        "a//b",
        ".staging/x",
        long_segment.as_str(),
        long_key.as_str(),
    ] {
        assert!(validate_key(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn list_skips_staging_and_foreign_entries() {
    let (_dir, store) = store();
    fs::write(store.root().join(STAGING_DIR).join("x.part"), b"x").unwrap();
    fs::write(store.root().join("bad name"), b"x").unwrap();
    fs::write(store.root().join("good"), b"x").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("/etc/passwd", store.root().join("link")).unwrap();
    assert_eq!(store.list("").await.unwrap(), ["good"]);
}

#[tokio::test]
async fn directories_are_not_objects() {
    let (_dir, store) = store();
    let body = chunked(Bytes::from_static(b"x"), &[1]);
    store.put_stream("d/f", body, 1).await.unwrap();
    assert!(matches!(store.stat("d").await, Err(BlobError::NotFound(_))));
    assert!(matches!(
        store.get_stream("d", None).await,
        Err(BlobError::NotFound(_))
    ));
    // A key under an existing object: the path component is a file.
    assert!(matches!(
        store.stat("d/f/g").await,
        Err(BlobError::NotFound(_))
    ));
    assert!(store.list("d/f/").await.unwrap().is_empty());
    assert_eq!(store.list("d/").await.unwrap(), ["d/f"]);
    store.delete("d").await.unwrap();
    store.delete("d/f/g").await.unwrap();
    assert_eq!(store.stat("d/f").await.unwrap().size, 1);
}

#[tokio::test]
async fn delete_prunes_empty_parent_directories() {
    let (_dir, store) = store();
    for key in ["x/y/z", "x/w"] {
        let body = chunked(Bytes::from_static(b"1"), &[1]);
        store.put_stream(key, body, 1).await.unwrap();
    }
    store.delete("x/y/z").await.unwrap();
    assert!(!store.root().join("x/y").exists());
    assert!(store.root().join("x").is_dir());
    store.delete("x/w").await.unwrap();
    assert!(!store.root().join("x").exists());
    assert!(store.root().is_dir());
    assert!(store.root().join(STAGING_DIR).is_dir());
}

#[tokio::test]
async fn a_reader_keeps_the_old_bytes_across_a_replace() {
    let (_dir, store) = store();
    let old = random_bytes(3 << 20, 2);
    let new = random_bytes(1 << 20, 3);
    store
        .put_stream("k", chunked(old.clone(), &[1 << 20]), u64::MAX)
        .await
        .unwrap();
    let read = store.get_stream("k", None).await.unwrap();
    store
        .put_stream("k", chunked(new.clone(), &[1 << 20]), u64::MAX)
        .await
        .unwrap();
    assert!(read_all(read).await == old);
    assert!(read_all(store.get_stream("k", None).await.unwrap()).await == new);
}

#[tokio::test]
async fn ranges_are_clamped_to_the_object() {
    let (_dir, store) = store();
    let data = random_bytes(1000, 4);
    store
        .put_stream("k", chunked(data.clone(), &[1000]), 1000)
        .await
        .unwrap();
    let read = store.get_stream("k", Some(900..5000)).await.unwrap();
    assert_eq!(read.range, 900..1000);
    assert!(read_all(read).await == data[900..]);
    let read = store.get_stream("k", Some(2000..3000)).await.unwrap();
    assert_eq!(read.range, 1000..1000);
    assert!(read_all(read).await.is_empty());
}

#[tokio::test]
async fn dropping_a_read_stream_early_is_fine() {
    let (_dir, store) = store();
    let data = random_bytes(8 << 20, 5);
    store
        .put_stream("k", chunked(data, &[1 << 20]), u64::MAX)
        .await
        .unwrap();
    let mut read = store.get_stream("k", None).await.unwrap();
    let first = read.stream.next().await.unwrap().unwrap();
    assert_eq!(first.len(), CHUNK);
    drop(read);
    store.delete("k").await.unwrap();
}

/// Many readers at once share the read budget (small chunks, page-cached
/// data read inline): every one still gets exactly its bytes, slow and
/// stalled readers included, and the account is back to zero afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_readers_get_their_exact_bytes() {
    let (_dir, store) = store();
    let data = random_bytes((3 << 20) + 7, 11);
    store
        .put_stream("k", chunked(data.clone(), &[1 << 20]), u64::MAX)
        .await
        .unwrap();
    // one reader that takes a chunk and then stops reading
    let mut stalled = store.get_stream("k", None).await.unwrap();
    let _ = stalled.stream.next().await.unwrap().unwrap();
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let store = store.clone();
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            let start = (i * 40_503) % (1 << 20);
            let end = data.len() as u64 - i * 7;
            let mut read = store.get_stream("k", Some(start..end)).await.unwrap();
            let mut got = Vec::new();
            let mut largest = 0;
            while let Some(chunk) = read.stream.next().await {
                let chunk = chunk.unwrap();
                largest = largest.max(chunk.len());
                got.extend_from_slice(&chunk);
                if i % 8 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            assert!(got == data[start as usize..end as usize], "reader {i}");
            largest
        }));
    }
    let mut smallest_largest = usize::MAX;
    for t in tasks {
        smallest_largest = smallest_largest.min(t.await.unwrap());
    }
    assert!(
        smallest_largest < CHUNK,
        "with 65 readers some read in chunks smaller than 1 MiB"
    );
    drop(stalled);
    for _ in 0..100 {
        if store.read_bytes_charged() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} bytes still charged", store.read_bytes_charged());
}

/// A failed append may leave a write of its last buffer running, detached,
/// on the blocking pool. The retry (which truncates to the committed offset
/// and writes other bytes there) must never be overwritten by it: many
/// failed attempts with wrong bytes, each followed at once by a good one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_appends_never_overwrite_the_retry() {
    use crate::{Digests, StagedChunk};
    let (_dir, store) = store();
    let key = "race/file0-staged";
    let len: u64 = (4 << 20) + 5;
    let good = random_bytes(len as usize, 7);
    for round in 0..30u64 {
        let handle = store.staged_create(key).await.unwrap();
        let wrong = random_bytes(len as usize - 1, 100 + round);
        let failing: ByteStream = Box::pin(chunked(wrong, &[1 << 20]).chain(
            futures_util::stream::iter(vec![Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "gone",
            ))]),
        ));
        let chunk = |digests| StagedChunk {
            key,
            handle: &handle,
            offset: 0,
            len,
            parts: &[],
            last: true,
            digests,
        };
        assert!(store
            .staged_append(chunk(Digests::new()), failing)
            .await
            .is_err());
        let done = store
            .staged_append(chunk(Digests::new()), chunked(good.clone(), &[1 << 20]))
            .await
            .unwrap();
        assert_eq!(done.digests.values().sha1, crate::digest::sha1_hex(&good));
        store.staged_commit(key, &handle, &[], len).await.unwrap();
        let read = store.get_stream(key, None).await.unwrap();
        assert!(
            read_all(read).await == good[..],
            "round {round}: content differs"
        );
        store.delete(key).await.unwrap();
    }
}
