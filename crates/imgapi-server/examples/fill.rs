//! Fill a metadata store with N synthetic, valid image records for the
//! scale benchmarks (bench/scale.sh). Writes go through the library
//! (`imgapi_meta::open` + `MetaStore::insert`), not the HTTP API.
//!
//!   cargo run --release -p imgapi-server --example fill -- URL COUNT [OWNERS] [CONCURRENCY]
//!
//! URL is an IMGAPI_DATABASE_URL (sqlite://PATH or postgres://…).
//! Records are deterministic: image i has uuid 5c41e000-0000-4000-8000-<i>,
//! owner 00000000-0000-4000-8000-<i % OWNERS>, a name from a fixed list of 10, version 1.i.0,
//! published_at 2020-01-01 + i seconds, one fake file; images with
//! (i / OWNERS) % 7 == 6 are disabled, the rest active. Idempotent: an image whose uuid already exists
//! is skipped (`AlreadyExists`), so a rerun only adds what is missing.
// A benchmark fill tool: bad arguments may abort it, and it reports on stdout.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use imgapi_domain::{ImageFile, ImageRecord, ImageState};
use imgapi_meta::{MetaError, MetaStore};
use serde_json::Number;
use uuid::Uuid;

const NAMES: [&str; 10] = [
    "base-64",
    "minimal-64",
    "ubuntu-20.04",
    "ubuntu-22.04",
    "centos-7",
    "debian-11",
    "alpine-3",
    "fedora-38",
    "rocky-9",
    "smartos-pkgsrc",
];

fn owner(k: u64) -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | u128::from(k))
}

fn record(i: u64, owners: u64) -> ImageRecord {
    let uuid = Uuid::from_u128(0x5c41_e000_0000_4000_8000_0000_0000_0000 | u128::from(i));
    let published = chrono::DateTime::from_timestamp(1_577_836_800 + i as i64, 0)
        .expect("valid timestamp")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let disabled = (i / owners) % 7 == 6;
    ImageRecord {
        v: Number::from(2),
        uuid,
        owner: owner(i % owners),
        name: NAMES[(i / owners % 10) as usize].into(),
        version: format!("1.{i}.0"),
        description: Some(format!("synthetic benchmark image {i}")),
        homepage: None,
        eula: None,
        disabled,
        activated: true,
        published_at: Some(published.clone()),
        state: if disabled {
            ImageState::Disabled
        } else {
            ImageState::Active
        },
        public: !i.is_multiple_of(3),
        image_type: "other".into(),
        os: "other".into(),
        origin: None,
        error: None,
        files: vec![ImageFile {
            sha1: format!("{:040x}", u128::from(i) * 2_654_435_761),
            size: 1_048_576 + i,
            compression: "gzip".into(),
            dataset_guid: None,
            content_md5: "1B2M2Y8AsgTpgAmY7PhCfg==".into(),
            sha256: None,
            mtime: published,
            stor: "local".into(),
            digest: None,
            uncompressed_digest: None,
            blob_key: None,
        }],
        icon: None,
        acl: vec![],
        requirements: None,
        users: None,
        billing_tags: None,
        traits: None,
        tags: None,
        generate_passwords: None,
        inherited_directories: None,
        nic_driver: None,
        disk_driver: None,
        cpu_type: None,
        image_size: None,
        channels: None,
        urn: None,
        expires_at: None,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: fill URL COUNT [OWNERS=100] [CONCURRENCY=64]");
        std::process::exit(2);
    }
    let url = args[0].clone();
    let count: u64 = args[1].parse().expect("COUNT");
    let owners: u64 = args.get(2).map_or(100, |s| s.parse().expect("OWNERS"));
    let conc: u64 = args.get(3).map_or(64, |s| s.parse().expect("CONCURRENCY"));

    let store: Arc<dyn MetaStore> = imgapi_meta::open(&url).await.unwrap_or_else(|e| {
        eprintln!("fill: cannot open the store: {e}");
        std::process::exit(1);
    });
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let added = Arc::new(AtomicU64::new(0));
    let skipped = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (store, next, added, skipped) =
            (store.clone(), next.clone(), added.clone(), skipped.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                match store.insert(&record(i, owners)).await {
                    Ok(_) => {
                        let n = added.fetch_add(1, Ordering::Relaxed) + 1;
                        if n % 10_000 == 0 {
                            eprintln!("fill: {n} added ({:.1}s)", start.elapsed().as_secs_f64());
                        }
                    }
                    Err(MetaError::AlreadyExists(_)) => {
                        skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("fill: insert {i} failed: {e}");
                        std::process::exit(1);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    println!(
        "fill: {} added, {} already present, {:.1}s",
        added.load(Ordering::Relaxed),
        skipped.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
}
