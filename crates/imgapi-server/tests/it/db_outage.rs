//! A database outage under writes, on a PostgreSQL server of the test's
//! own: stopped as in a crash (`pg_ctl stop -m immediate`), and frozen
//! (SIGSTOP, connections open) while clients create, upload, activate and
//! update. The writes it refuses answer 503 ServiceUnavailableError
//! (latency is not asserted here), nothing half-written appears once the
//! database is back, and writes succeed again without a server restart.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use crate::private_pg::PrivatePg;
use crate::support::*;
use crate::writes::{verify, writer_until, Ledger, Unacked};

const WRITERS: u64 = 4;

/// How the database goes away.
#[derive(Clone, Copy, Debug)]
enum Outage {
    /// `pg_ctl stop -m immediate`, then a start (crash recovery).
    Crash,
    /// Every server process SIGSTOPped, then SIGCONTed.
    Freeze,
}

async fn writes_through(outage: Outage) {
    let Some(pg) = PrivatePg::start() else { return };
    let toml = format!("mode = \"dc\"\ndatabase_url = {:?}\n", pg.url());
    let s = TestServer::spawn_raw(&toml).await;
    let ledger = Ledger::default();
    let (stop_tx, stop) = watch::channel(false);
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let tag = format!("{outage:?}-w{i}");
            tokio::spawn(writer_until(
                s.url.clone(),
                tag,
                0x9e37_79b9 + i,
                ledger.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;

    let down = Instant::now();
    match outage {
        Outage::Crash => {
            pg.stop_immediate();
            // Longer than the pool's acquire timeout: requests meet a
            // database that is not there, not only cut connections.
            tokio::time::sleep(Duration::from_secs(7)).await;
            pg.start_again();
        }
        Outage::Freeze => {
            pg.signal_all("STOP");
            tokio::time::sleep(Duration::from_secs(7)).await;
            pg.signal_all("CONT");
        }
    }

    // Writes succeed again without a restart: an image written from start
    // to end after the database came back.
    let written_before = ledger.lock().unwrap().len();
    let resumed = crate::faults::within(Duration::from_secs(60), async || {
        let entries = ledger.lock().unwrap();
        entries[written_before.min(entries.len())..]
            .iter()
            .any(|w| w.description_acked)
    })
    .await;
    stop_tx.send(true).unwrap();
    let mut refused = Vec::new();
    for w in writers {
        refused.extend(w.await.unwrap());
    }
    assert!(
        resumed.is_some(),
        "{outage:?}: no write succeeded within 60 s of the database's return"
    );

    let mut wrong = Vec::new();
    let mut during = 0;
    for (at, unacked) in &refused {
        match unacked {
            Unacked::Answer(503, body) if body["code"] == "ServiceUnavailableError" => {
                during += usize::from(*at >= down);
            }
            other => wrong.push(format!("not a 503 ServiceUnavailableError: {other:?}")),
        }
    }
    assert!(
        during > 0,
        "{outage:?}: no write was refused while the database was away"
    );
    assert!(wrong.is_empty(), "{outage:?}:\n{}", wrong.join("\n"));

    let wrong = verify(&s.url, &s.config_toml, &ledger).await;
    assert!(wrong.is_empty(), "{outage:?}:\n{}", wrong.join("\n"));
    let written = ledger.lock().unwrap().len();
    eprintln!(
        "{outage:?}: {written} images written, {} writes refused with 503",
        refused.len()
    );
    // The server answers on: a fresh image end to end.
    let uuid = uuid_of(&s.publish(json!({})).await);
    assert_eq!(s.get_json(&format!("/images/{uuid}")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_crash_under_writes_refuses_with_503_and_leaves_nothing_half_written() {
    writes_through(Outage::Crash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_freeze_under_writes_refuses_with_503_and_leaves_nothing_half_written() {
    writes_through(Outage::Freeze).await;
}
