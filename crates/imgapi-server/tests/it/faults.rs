//! Backend outages: with PostgreSQL or the S3 store cut
//! off, requests fail fast with 503 and the documented restCode; when the
//! backend returns, the server recovers by itself.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::*;

/// A TCP proxy that can cut every connection and refuse new ones.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Proxy {
    pub(crate) async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, rx) = watch::channel(true);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !*rx.borrow() {
                    continue; // dropped: connection refused in effect
                }
                let target = target.clone();
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = async { while rx.changed().await.is_ok() && *rx.borrow() {} } => {}
                    }
                });
            }
        });
        Proxy { addr, up }
    }

    pub(crate) fn set(&self, up: bool) {
        let _ = self.up.send(up);
    }
}

pub(crate) fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_string()
}

/// Poll `check` until it is true or `limit` passes; returns the time taken.
pub(crate) async fn within(
    limit: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test]
async fn database_outage_is_a_fast_503_and_recovers() {
    let Some((admin_url, _, _)) = scale_out_env() else {
        eprintln!("SKIP: outage test needs IMGAPI_TEST_PG_URL (set by .ci/run)");
        return;
    };
    let db = create_database(&admin_url);
    let real = host_port(&db);
    let proxy = Proxy::start(real.clone()).await;
    let proxied = db.replacen(&real, &proxy.addr.to_string(), 1);
    let s = TestServer::spawn_raw(&format!("mode = \"dc\"\ndatabase_url = {proxied:?}\n")).await;
    let uuid = uuid_of(&s.create(json!({})).await);

    proxy.set(false);
    let started = Instant::now();
    let got = s.get_json(&format!("/images/{uuid}")).await;
    assert_error(&got, 503, "ServiceUnavailableError", None);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "slow failure: {:?}",
        started.elapsed()
    );

    proxy.set(true);
    let back = within(Duration::from_secs(20), async || {
        s.get_json(&format!("/images/{uuid}")).await.0 == 200
    })
    .await;
    assert!(
        back.is_some(),
        "the server did not recover after the database came back"
    );
}

#[tokio::test]
async fn storage_outage_is_a_fast_503_and_recovers() {
    let Some((_, endpoint, bucket)) = scale_out_env() else {
        eprintln!("SKIP: outage test needs IMGAPI_TEST_S3_* (set by .ci/run)");
        return;
    };
    let real = host_port(&endpoint);
    let proxy = Proxy::start(real).await;
    let prefix = format!("outage-{}", uuid::Uuid::new_v4().simple());
    let s = TestServer::spawn_raw(&format!(
        "mode = \"dc\"\n[storage]\nkind = \"s3\"\nendpoint = \"http://{}\"\nbucket = {bucket:?}\nprefix = {prefix:?}\n",
        proxy.addr
    ))
    .await;
    let uuid = uuid_of(&s.publish(json!({})).await);

    proxy.set(false);
    let started = Instant::now();
    let got = s.get_json(&format!("/images/{uuid}/file")).await;
    assert_error(
        &got,
        503,
        "StorageIsDown",
        Some("storage is down at the moment"),
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "slow failure: {:?}",
        started.elapsed()
    );
    // Metadata still answers while the store is away.
    assert_eq!(s.get_json(&format!("/images/{uuid}")).await.0, 200);

    proxy.set(true);
    let back = within(Duration::from_secs(20), async || {
        let resp = s.get(&format!("/images/{uuid}/file")).send().await.unwrap();
        resp.status() == 200 && &resp.bytes().await.unwrap()[..] == b"image bytes"
    })
    .await;
    assert!(
        back.is_some(),
        "the server did not recover after the store came back"
    );
}
