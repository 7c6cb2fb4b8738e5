//! Tests of the PostgreSQL backend. Those needing a server read
//! `DATABASE_URL` (`.ci/pg-start.sh` prints it) and otherwise print a SKIP
//! line and pass. They share one database with each other and with other
//! runs: every check uses its own uuids.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::images::stripe;
use super::*;
use crate::sql::images::{Columns, ImageSql, ImageWrite};
use crate::{testsuite, ChangeStore, ImageStore};

const SKIP: &str =
    "SKIP: PostgreSQL conformance suite needs DATABASE_URL (started by .ci/pg-start.sh)";

/// `DATABASE_URL` if it names a PostgreSQL database, else prints SKIP.
#[allow(clippy::disallowed_methods)] // tests read their own service's URL
#[allow(clippy::print_stdout)] // the SKIP line
fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Some(url),
        _ => {
            println!("{SKIP}");
            None
        }
    }
}

/// A database of a test's own on the `DATABASE_URL` server (same user,
/// same `?parameters`), dropped by [`OwnDatabase::drop`].
struct OwnDatabase {
    admin: PgConnection,
    name: String,
    url: String,
}

impl OwnDatabase {
    async fn create(url: &str, prefix: &str) -> OwnDatabase {
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(url).await.unwrap();
        // `name` is a fixed prefix and a uuid's hex digits.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let (base, params) = url.split_once('?').unwrap_or((url, ""));
        let server = &base[..base.rfind('/').unwrap()];
        let url = if params.is_empty() {
            format!("{server}/{name}")
        } else {
            format!("{server}/{name}?{params}")
        };
        OwnDatabase { admin, name, url }
    }

    async fn drop(mut self) {
        let drop = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&mut self.admin)
            .await
            .unwrap();
    }
}

async fn store() -> Option<PostgresStore> {
    let url = database_url()?;
    Some(PostgresStore::connect(&url).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance() {
    let Some(store) = store().await else { return };
    testsuite::run_all(&store).await;
}

/// Two instances (two pools) connecting at once (the migration lock) and
/// running the suite concurrently on one database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_two_instances_concurrently() {
    let Some(url) = database_url() else { return };
    let (a, b) = tokio::join!(PostgresStore::connect(&url), PostgresStore::connect(&url));
    let (a, b) = (Arc::new(a.unwrap()), Arc::new(b.unwrap()));
    let ta = tokio::spawn(async move { testsuite::run_all(a.as_ref()).await });
    let tb = tokio::spawn(async move { testsuite::run_all(b.as_ref()).await });
    ta.await.unwrap();
    tb.await.unwrap();
}

/// Two instances update one image from the same revision, many times:
/// exactly one wins each round, the other gets `Conflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_updates_from_two_instances() {
    let Some(url) = database_url() else { return };
    let stores = [
        Arc::new(PostgresStore::connect(&url).await.unwrap()),
        Arc::new(PostgresStore::connect(&url).await.unwrap()),
    ];
    for round in 0..30 {
        let img = testsuite::fixture(Uuid::new_v4());
        let rev = stores[0].insert(&img).await.unwrap();
        let tasks: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, store)| {
                let store = Arc::clone(store);
                let mut img = img.clone();
                img.description = Some(format!("writer {i}"));
                tokio::spawn(async move { (store.update(&img, rev).await, img) })
            })
            .collect();
        let mut winners = Vec::new();
        let mut conflicts = 0;
        for t in tasks {
            match t.await.unwrap() {
                (Ok(new_rev), img) => winners.push((img, new_rev)),
                (Err(MetaError::Conflict(u)), _) if u == img.uuid => conflicts += 1,
                (Err(e), _) => panic!("round {round}: unexpected {e:?}"),
            }
        }
        assert_eq!((winners.len(), conflicts), (1, 1), "round {round}");
        let got = stores[1].get(img.uuid).await.unwrap().unwrap();
        assert_eq!(
            Some((got.image, got.revision)),
            winners.pop(),
            "round {round}: the winner's write is what is stored"
        );
    }
}

#[tokio::test]
async fn unreachable_database_fails_fast_with_unavailable() {
    let started = Instant::now();
    let result = PostgresStore::connect("postgres://imgapi:s3cret-pw@127.0.0.1:1/imgapi").await;
    let elapsed = started.elapsed();
    match result {
        Err(MetaError::Unavailable(msg)) => {
            assert!(msg.contains("127.0.0.1:1"), "names host and port: {msg}");
            assert!(!msg.contains("s3cret-pw"), "never the password: {msg}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(7), "took {elapsed:?}");
}

/// Once connected, losing the database makes calls fail with Unavailable
/// within the acquire timeout (a closed pool stands in for it here).
#[tokio::test]
async fn calls_on_a_closed_pool_are_unavailable() {
    let Some(store) = store().await else { return };
    store.close().await;
    assert!(matches!(store.ping().await, Err(MetaError::Unavailable(_))));
    let img = testsuite::fixture(Uuid::new_v4());
    assert!(matches!(
        store.insert(&img).await,
        Err(MetaError::Unavailable(_))
    ));
}

#[tokio::test]
async fn bad_url_is_reported_without_password() {
    match PostgresStore::connect("postgres://u:pw-secret@127.0.0.1:notaport/db").await {
        Err(MetaError::Backend(msg)) => {
            assert!(!msg.contains("pw-secret"), "{msg}");
            assert!(msg.contains("invalid PostgreSQL URL"), "{msg}");
        }
        Err(MetaError::Unavailable(msg)) => assert!(!msg.contains("pw-secret"), "{msg}"),
        Ok(_) => panic!("connected with a bad URL"),
        Err(e) => panic!("unexpected {e:?}"),
    }
}

#[test]
fn redact_hides_only_the_password() {
    assert_eq!(
        redact_url("postgres://u:secret@h:5432/db?sslmode=require"),
        "postgres://u:***@h:5432/db?sslmode=require"
    );
    assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    assert_eq!(
        redact_url("postgresql://u:p@ss@h/db"),
        "postgresql://u:***@h/db"
    );
}

#[test]
fn engine_from_url() {
    use crate::Engine;
    assert_eq!("postgres://u@h/db".parse::<Engine>(), Ok(Engine::Postgres));
    assert_eq!(
        "postgresql://u@h/db".parse::<Engine>(),
        Ok(Engine::Postgres)
    );
    assert_eq!("sqlite::memory:".parse::<Engine>(), Ok(Engine::Sqlite));
    let err = "mysql://u:secret@h/db".parse::<Engine>().unwrap_err();
    assert!(err.contains("`mysql`"), "{err}");
    assert!(err.contains("options: sqlite, postgres"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[tokio::test]
async fn open_picks_the_backend() {
    let sqlite = crate::open("sqlite::memory:").await.unwrap();
    let img = testsuite::fixture(Uuid::new_v4());
    sqlite.insert(&img).await.unwrap();
    assert!(sqlite.get(img.uuid).await.unwrap().is_some());
    assert!(matches!(
        crate::open("mysql://h/db").await,
        Err(MetaError::Backend(_))
    ));
    assert!(matches!(
        crate::open("postgres://u:p@127.0.0.1:1/db").await,
        Err(MetaError::Unavailable(_))
    ));
    let Some(url) = database_url() else { return };
    let pg = crate::open(&url).await.unwrap();
    pg.insert(&img).await.unwrap();
    assert_eq!(pg.get(img.uuid).await.unwrap().unwrap().image, img);
}

/// The generation moves with the commit, not before it: a write still in
/// flight (its stripe bumped, not committed) is invisible in it.
#[tokio::test]
async fn generation_moves_only_at_commit() {
    let Some(store) = store().await else { return };
    let before = store.generation().await.unwrap();
    let mut tx = store.pool.begin().await.unwrap();
    let img = testsuite::fixture(Uuid::new_v4());
    let write = ImageWrite::Insert(Columns::of(&img).unwrap());
    ImageSql::<Postgres>::apply(&mut tx, &write, &mut Vec::new())
        .await
        .ok()
        .unwrap();
    sqlx::query("UPDATE write_generation SET value = value + 1 WHERE stripe = $1")
        .bind(stripe(img.uuid))
        .execute(&mut *tx)
        .await
        .unwrap();
    // Other writers may share the database: only "not ours yet" is checked.
    assert!(store.get(img.uuid).await.unwrap().is_none());
    let during = store.generation().await.unwrap();
    tx.commit().await.unwrap();
    let after = store.generation().await.unwrap();
    assert!(after > during && during >= before);
    assert!(store.get(img.uuid).await.unwrap().is_some());
}

/// A page reached by `marker=` seeks the sort index: the bound is an index
/// condition of `images_sort` (not a filter applied while scanning every row
/// before it), in both orders.
#[tokio::test]
async fn marker_pages_seek_the_sort_index() {
    use crate::sql::SqlBackend as _;
    use imgapi_domain::filter::{ImageQuery, Predicate, SortOrder};
    let Some(store) = store().await else { return };
    let mut tx = store.pool.begin().await.unwrap();
    // On a small test table another plan may cost less (a bitmap scan and a
    // sort); with those off, what is left shows whether the sort index can
    // seek: an index condition, or only a filter on every row it passes.
    for setting in ["enable_seqscan", "enable_bitmapscan", "enable_sort"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL {setting} = off")))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    for (order, bound) in [
        (SortOrder::Asc, Predicate::PublishedAtGe(5)),
        (SortOrder::Desc, Predicate::PublishedAtLe(5)),
    ] {
        let query = ImageQuery {
            any_of: vec![vec![bound]],
            order,
            limit: Some(1000),
        };
        let built = crate::sql::list_query::list_query::<sqlx::Postgres>(
            &PostgresStore::LIST_DIALECT,
            &query,
        );
        let sql = format!("EXPLAIN {}", built.sql().as_str());
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(5_i64)
            .bind(5_i64)
            .bind(1000_i64)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert!(
            plan.iter().any(|l| l.contains("images_sort")),
            "{order:?}: {plan:#?}"
        );
        assert!(
            plan.iter()
                .any(|l| l.contains("Index Cond") && l.contains("COALESCE")),
            "{order:?}: {plan:#?}"
        );
    }
}

/// Every ListImages filter and the unfiltered sorted page can be answered
/// from an index (with sequential scans disabled, a plan that still scans a
/// table means there is no usable index).
#[tokio::test]
async fn list_filters_have_indexes() {
    let Some(store) = store().await else { return };
    let mut tx = store.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .unwrap();
    let exists = |table: &str, cond: &str| {
        format!("EXISTS (SELECT 1 FROM {table} s WHERE s.uuid = images.uuid AND {cond})")
    };
    let cases = [
        "owner = 'x'".to_owned(),
        "state = 'active'".to_owned(),
        "name = 'base'".to_owned(),
        "published_ms >= 5".to_owned(),
        exists("image_tags", "md5(s.key) = md5('role') AND s.key = 'role'"),
        exists(
            "image_tags",
            "md5(s.key) = md5('role') AND s.key = 'role' AND s.value = 'db'",
        ),
        exists("image_billing_tags", "s.tag = 'bt'"),
        exists(
            "image_channels",
            "md5(s.channel) = md5('dev') AND s.channel = 'dev'",
        ),
        exists("image_acl", "s.account = 'a'"),
    ];
    for cond in cases {
        let sql = format!(
            "EXPLAIN SELECT uuid, record FROM images WHERE ({cond}) \
             ORDER BY COALESCE(published_ms, 0) ASC, uuid ASC LIMIT 1000"
        );
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert!(
            !plan.iter().any(|l| l.contains("Seq Scan")),
            "{cond}: {plan:#?}"
        );
    }
    for dir in ["ASC", "DESC"] {
        let sql = format!(
            "EXPLAIN SELECT uuid, record FROM images WHERE (TRUE) \
             ORDER BY COALESCE(published_ms, 0) {dir}, uuid {dir} LIMIT 1000"
        );
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert!(
            plan.iter().any(|l| l.contains("images_sort")),
            "{dir}: {plan:#?}"
        );
        assert!(
            !plan
                .iter()
                .any(|l| l.trim_start().starts_with("->  Sort")
                    || l.trim_start().starts_with("Sort")),
            "{dir}: {plan:#?}"
        );
    }
}

/// Instances starting together on a fresh database: sqlx's advisory lock
/// lets one apply the migrations; the others wait, then find them applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_migrate_once() {
    let Some(url) = database_url() else { return };
    let own = OwnDatabase::create(&url, "imgapi_mig").await;
    let fresh = own.url.clone();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let fresh = fresh.clone();
            tokio::spawn(async move { PostgresStore::connect(&fresh).await })
        })
        .collect();
    let mut stores = Vec::new();
    for t in tasks {
        stores.push(t.await.unwrap().unwrap());
    }
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&stores[0].pool)
        .await
        .unwrap();
    assert_eq!(applied, i64::try_from(MIGRATOR.iter().count()).unwrap());
    testsuite::insert_get_round_trip(&stores[3]).await;
    for store in &stores {
        store.close().await;
    }
    own.drop().await;
}

/// The server may start stores from spawned tasks.
#[test]
fn open_and_connect_are_spawnable() {
    fn spawnable<F: std::future::Future + Send + 'static>(_: &F) {}
    let open = crate::open("postgres://u@127.0.0.1:1/db");
    spawnable(&open);
    let connect = PostgresStore::connect("postgres://u@127.0.0.1:1/db");
    spawnable(&connect);
}

/// A run lock is one holder's across stores (hosts) until its guard drops;
/// the refusal names the holding session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_lock_has_one_holder_across_stores() {
    use crate::{RunLockAttempt, RunLockStore};
    let Some(url) = database_url() else { return };
    let (a, b) = (
        PostgresStore::connect(&url).await.unwrap(),
        PostgresStore::connect(&url).await.unwrap(),
    );
    let name = format!("test-{}", Uuid::new_v4().simple());
    let RunLockAttempt::Taken(held) = a.try_run_lock(&name).await.unwrap() else {
        panic!("a free run lock is taken");
    };
    match b.try_run_lock(&name).await.unwrap() {
        RunLockAttempt::Held { holder } => {
            assert!(holder.starts_with("PostgreSQL session "), "{holder}");
            assert!(holder.contains(&format!("(imgapi {name})")), "{holder}");
        }
        other => panic!("a held run lock is refused, got {other:?}"),
    }
    let other_name = format!("{name}-other");
    assert!(matches!(
        b.try_run_lock(&other_name).await.unwrap(),
        RunLockAttempt::Taken(_)
    ));
    drop(held);
    // The server ends the session shortly after the connection closes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match b.try_run_lock(&name).await.unwrap() {
            RunLockAttempt::Taken(_) => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("the lock outlived its guard: {other:?}"),
        }
    }
}

/// The change-log purge, on a database of its own (it purges every
/// event), created and dropped here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_log_purge() {
    let Some(url) = database_url() else { return };
    let own = OwnDatabase::create(&url, "imgapi_purge").await;
    let store = PostgresStore::connect(&own.url).await.unwrap();
    testsuite::changes_purge(&store).await;
    store.close().await;
    own.drop().await;
}

/// 50 writers on three instances (pools) at once: the log's numbers are
/// gapless and each write's event appears exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn change_log_gapless_under_concurrent_instances() {
    let Some(url) = database_url() else { return };
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(Arc::new(PostgresStore::connect(&url).await.unwrap()));
    }
    let owner = Uuid::new_v4();
    let start = stores[0].change_log_bounds().await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = Arc::clone(&stores[i % 3]);
            tokio::spawn(async move {
                let mut uuids = Vec::new();
                for _ in 0..10 {
                    let img = testsuite::fixture(owner);
                    store.insert(&img).await.unwrap();
                    uuids.push(img.uuid);
                }
                uuids
            })
        })
        .collect();
    let mut written = std::collections::BTreeSet::new();
    for t in tasks {
        written.extend(t.await.unwrap());
    }
    let mut seen = Vec::new();
    let mut at = start.last_seq;
    loop {
        let page = stores[1].changes_after(at, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        for (i, event) in page.iter().enumerate() {
            assert_eq!(event.seq, at + 1 + i as i64, "gapless");
        }
        at = last.seq;
        seen.extend(
            page.into_iter()
                .filter(|e| e.image.owner == owner)
                .map(|e| e.uuid),
        );
    }
    assert_eq!(seen.len(), 500, "one event per write, no duplicate");
    let seen: std::collections::BTreeSet<Uuid> = seen.into_iter().collect();
    assert_eq!(seen, written);
}

/// Callers that stop waiting mid-write (a client gone, a timeout) never
/// leave a transaction open: writes go on to their end in a task of their
/// own, so the change log's counter row, which every writer takes, is
/// never held by a write nobody finishes. On a database of its own, so
/// that no other test's transaction is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_writes_leave_no_transaction_open() {
    let Some(url) = database_url() else { return };
    let own = OwnDatabase::create(&url, "imgapi_abandon").await;
    let store = PostgresStore::connect(&own.url).await.unwrap();
    let owner = Uuid::new_v4();
    for i in 0..100u64 {
        let img = testsuite::fixture(owner);
        // Give up somewhere inside the transaction.
        let _ = tokio::time::timeout(
            Duration::from_micros(100 + (i * 37) % 900),
            store.insert(&img),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert_eq!(open, 0, "abandoned writes left transactions open");
    let img = testsuite::fixture(owner);
    let done = tokio::time::timeout(Duration::from_secs(10), store.insert(&img)).await;
    assert!(matches!(done, Ok(Ok(_))), "{done:?}");
    store.close().await;
    own.drop().await;
}
