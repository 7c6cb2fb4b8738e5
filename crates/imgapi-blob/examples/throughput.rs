//! Micro benchmark of `LocalBlobStore`: durable put and full get of one
//! large in-memory body, printing MB/s (10^6 bytes/s, as `dd` does).
//!
//! ```text
//! cargo run --release -p imgapi-blob --example throughput -- [SIZE_MIB] [CHUNK_KIB] [DIR]
//! ```
//! Defaults: 256 MiB fed in 64 KiB chunks, in a temp dir under `$TMPDIR`
//! (or `/tmp`). Compare with
//! `dd if=/dev/zero of=DIR/ddtest bs=1M count=256 conv=fdatasync`.

#![allow(clippy::print_stdout)] // a benchmark's job is to print

use std::error::Error;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use imgapi_blob::{BlobStore, ByteStream, LocalBlobStore};
use md5::Md5;
use sha1::{Digest, Sha1};

fn random_bytes(len: usize) -> Bytes {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
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

fn chunked(data: &Bytes, chunk: usize) -> ByteStream {
    let parts: Vec<_> = (0..data.len())
        .step_by(chunk)
        .map(|at| Ok(data.slice(at..(at + chunk).min(data.len()))))
        .collect();
    Box::pin(futures_util::stream::iter(parts))
}

fn mb_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

async fn bench_put(
    store: &LocalBlobStore,
    label: &str,
    data: &Bytes,
    chunk: usize,
    sha1: &str,
) -> Result<(), Box<dyn Error>> {
    for run in 1..=3 {
        let key = format!("bench/{label}/{run}");
        let start = Instant::now();
        let out = store
            .put_stream(&key, chunked(data, chunk), u64::MAX)
            .await?;
        let secs = start.elapsed().as_secs_f64();
        if out.sha1 != sha1 {
            return Err(format!("sha1 mismatch: {} != {sha1}", out.sha1).into());
        }
        println!(
            "put  {label:<22} run {run}: {secs:6.3} s  {:7.0} MB/s",
            mb_s(data.len(), secs)
        );
        store.delete(&key).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let size_mib: usize = args.get(1).map_or(Ok(256), |s| s.parse())?;
    let chunk_kib: usize = args.get(2).map_or(Ok(64), |s| s.parse())?;
    let base = args
        .get(3)
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let dir = tempfile::tempdir_in(&base)?;
    let size = size_mib << 20;
    let chunk = chunk_kib << 10;
    println!(
        "{size_mib} MiB body in {chunk_kib} KiB chunks, store in {}",
        dir.path().display()
    );

    let data = random_bytes(size);

    let start = Instant::now();
    let sha1 = hex::encode(Sha1::digest(&data));
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sha1 one-shot (reference):      {secs:6.3} s  {:7.0} MB/s",
        mb_s(size, secs)
    );
    let start = Instant::now();
    let _ = Md5::digest(&data);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "md5  one-shot (reference):      {secs:6.3} s  {:7.0} MB/s",
        mb_s(size, secs)
    );

    let store = LocalBlobStore::open(dir.path())?;
    bench_put(&store, "early-writeback-32MiB", &data, chunk, &sha1).await?;
    let plain = store.clone().with_writeback_every(0);
    bench_put(&plain, "fsync-at-end-only", &data, chunk, &sha1).await?;

    store
        .put_stream("bench/get", chunked(&data, chunk), u64::MAX)
        .await?;
    for run in 1..=3 {
        let start = Instant::now();
        let read = store.get_stream("bench/get", None).await?;
        let mut stream = read.stream;
        let mut n = 0;
        while let Some(chunk) = stream.next().await {
            n += chunk?.len();
        }
        let secs = start.elapsed().as_secs_f64();
        if n != size {
            return Err(format!("get returned {n} bytes, expected {size}").into());
        }
        println!(
            "get  full (page cache)     run {run}: {secs:6.3} s  {:7.0} MB/s",
            mb_s(size, secs)
        );
    }
    store.delete("bench/get").await?;
    Ok(())
}
