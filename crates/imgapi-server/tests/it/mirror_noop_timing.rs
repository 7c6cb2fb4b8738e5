//! The cost of a full `imgapi mirror` run over N unchanged images (not
//! run by default: `cargo test --test it mirror_noop_timing -- --ignored
//! --nocapture`; `NO_OP_IMAGES=N`, `NO_OP_SIGNED=1` to time it again
//! with every image signed, `NO_OP_FORGET=1` to have every signature list
//! asked for).

use std::sync::atomic::AtomicBool;

use imgapi_server::service::import::mirror::{self, MirrorOptions, MirrorSummary, Reporter};
use imgapi_server::Config;
use serde_json::json;

use crate::remote_import::{publish_bytes, OPEN};
use crate::signatures::{add_signature, sshsig, statement};
use crate::support::*;

const DC: &str = "mode = \"dc\"";

struct Quiet;

impl Reporter for Quiet {
    fn line(&mut self, _line: &str) {}
}

async fn run_mirror(target: &TestServer, upstream: &str) -> MirrorSummary {
    let app = mirror::open(Config::from_toml(&target.config_toml).unwrap())
        .await
        .unwrap();
    let stop = AtomicBool::new(false);
    let opts = MirrorOptions {
        upstream: upstream.to_string(),
        ..MirrorOptions::default()
    };
    mirror::mirror(&app, &opts, &mut Quiet, &stop)
        .await
        .unwrap()
}

/// The time of a full run over N unchanged images.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
#[allow(clippy::disallowed_methods)] // test harness switches, not server config
async fn no_op_run_timing() {
    let n: usize = std::env::var("NO_OP_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let upstream = TestServer::spawn_with(DC).await;
    let target = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let mut uuids = Vec::new();
    for i in 0..n {
        let img = publish_bytes(
            &upstream,
            json!({"name": format!("img{i}")}),
            format!("bytes {i}").as_bytes(),
        )
        .await;
        uuids.push(uuid_of(&img));
    }
    let s = run_mirror(&target, &upstream.url).await;
    assert_eq!(s.new, n);
    // NO_OP_FORGET=1: before each run, the position of the signature
    // look-ahead is set back to the feed's start, as if every image had
    // changed upstream (the first run after an upgrade, or after a failed
    // run): every image's list is asked for.
    let forget = std::env::var("NO_OP_FORGET").is_ok();
    let timed = |label: &'static str| {
        let target = &target;
        let url = upstream.url.clone();
        async move {
            let mut took = Vec::new();
            for _ in 0..5 {
                if forget {
                    let app = mirror::open(Config::from_toml(&target.config_toml).unwrap())
                        .await
                        .unwrap();
                    let key = imgapi_meta::MirrorCursorKey {
                        upstream: format!("{url}/"),
                        filters: "signatures;".into(),
                    };
                    let start = imgapi_meta::MirrorCursor {
                        cursor: 0,
                        updated_ms: 0,
                    };
                    app.meta.put_mirror_cursor(&key, start).await.unwrap();
                }
                let s = run_mirror(target, &url).await;
                assert_eq!((s.unchanged, s.failed), (n, 0));
                took.push(s.took);
            }
            took.sort();
            eprintln!(
                "NO-OP RUN {label}: {n} images, median {:?} (min {:?}, max {:?})",
                took[2], took[0], took[4]
            );
        }
    };
    timed("unsigned").await;
    if std::env::var("NO_OP_SIGNED").is_ok() {
        for uuid in &uuids {
            let text = statement(&upstream, uuid).await;
            let (status, _) = add_signature(&upstream, uuid, &sshsig(9, &text)).await;
            assert_eq!(status, 200);
        }
        let s = run_mirror(&target, &upstream.url).await;
        assert_eq!(s.failed, 0);
        timed("signed").await;
    }
}
