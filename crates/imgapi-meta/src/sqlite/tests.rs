use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imgapi_domain::filter::{ImageQuery, Predicate, SortOrder};
use uuid::Uuid;

use imgapi_domain::ImageRecord;

use super::*;
use crate::{testsuite, ImageStore};

async fn file_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("nested/dir/meta.db"))
        .await
        .unwrap();
    (dir, store)
}

#[tokio::test]
async fn conformance_in_memory() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    testsuite::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_file_backed() {
    let (_dir, store) = file_store().await;
    testsuite::run_all(&store).await;
}

/// The suite keeps its data apart, so two runs can share one database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_twice_concurrently_on_one_database() {
    let (_dir, store) = file_store().await;
    let (a, b) = (Arc::new(store.clone()), Arc::new(store));
    let ta = tokio::spawn(async move { testsuite::run_all(a.as_ref()).await });
    let tb = tokio::spawn(async move { testsuite::run_all(b.as_ref()).await });
    ta.await.unwrap();
    tb.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_updates_in_parallel_tasks() {
    let (_dir, store) = file_store().await;
    let store = Arc::new(store);
    for _ in 0..20 {
        let img = testsuite::fixture(Uuid::new_v4());
        let rev = store.insert(&img).await.unwrap();
        let tasks: Vec<_> = (0..2)
            .map(|i| {
                let store = Arc::clone(&store);
                let mut img = img.clone();
                img.description = Some(format!("writer {i}"));
                tokio::spawn(async move { store.update(&img, rev).await })
            })
            .collect();
        let mut oks = 0;
        let mut conflicts = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => oks += 1,
                Err(MetaError::Conflict(u)) if u == img.uuid => conflicts += 1,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!((oks, conflicts), (1, 1));
    }
}

#[tokio::test]
async fn racing_updates_in_memory() {
    let store = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    let img = testsuite::fixture(Uuid::new_v4());
    let rev = store.insert(&img).await.unwrap();
    let (s1, s2) = (Arc::clone(&store), Arc::clone(&store));
    let (i1, i2) = (img.clone(), img.clone());
    let t1 = tokio::spawn(async move { s1.update(&i1, rev).await });
    let t2 = tokio::spawn(async move { s2.update(&i2, rev).await });
    let results = [t1.await.unwrap(), t2.await.unwrap()];
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, Err(MetaError::Conflict(_))))
            .count(),
        1
    );
}

#[tokio::test]
async fn data_survives_reopen_and_wal_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let img = testsuite::rich_fixture(Uuid::new_v4());
    let rev = {
        let store = SqliteStore::open(&path).await.unwrap();
        let rev = store.insert(&img).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        store.close().await;
        rev
    };
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::open_url(&url).await.unwrap();
    let got = store.get(img.uuid).await.unwrap().unwrap();
    assert_eq!(got.image, img);
    assert_eq!(got.revision, rev);
    // Revisions keep increasing across restarts.
    assert!(store.update(&img, rev).await.unwrap() > rev);
}

#[tokio::test]
async fn reader_pool_is_read_only() {
    let (_dir, store) = file_store().await;
    let err = sqlx::query("DELETE FROM images")
        .execute(&store.reader)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("readonly"), "{err}");
}

#[tokio::test]
async fn open_url_forms() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.db");
    SqliteStore::open_url(&format!("sqlite:{}", p.display()))
        .await
        .unwrap()
        .ping()
        .await
        .unwrap();
    assert!(p.exists());
    SqliteStore::open_url("sqlite::memory:")
        .await
        .unwrap()
        .ping()
        .await
        .unwrap();
    for bad in [
        "postgres://x",
        "sqlite:",
        "sqlite://",
        "sqlite:/x.db?mode=ro",
    ] {
        assert!(
            matches!(SqliteStore::open_url(bad).await, Err(MetaError::Backend(_))),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn in_memory_stores_are_separate() {
    let a = SqliteStore::open_in_memory().await.unwrap();
    let b = SqliteStore::open_in_memory().await.unwrap();
    let img = testsuite::fixture(Uuid::new_v4());
    a.insert(&img).await.unwrap();
    assert!(b.get(img.uuid).await.unwrap().is_none());
    b.insert(&img).await.unwrap();
}

#[tokio::test]
async fn undecodable_record_is_corrupt() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let owner = Uuid::new_v4();
    let img = testsuite::fixture(owner);
    store.insert(&img).await.unwrap();
    sqlx::query("UPDATE images SET record = '{\"not\": \"an image\"}' WHERE uuid = ?")
        .bind(img.uuid.to_string())
        .execute(&store.writer)
        .await
        .unwrap();
    let want = img.uuid.to_string();
    match store.get(img.uuid).await {
        Err(MetaError::Corrupt { uuid, .. }) => assert_eq!(uuid, want),
        other => panic!("{other:?}"),
    }
    let q = ImageQuery {
        any_of: vec![vec![Predicate::OwnerEq(owner.to_string())]],
        order: SortOrder::Asc,
        limit: None,
    };
    match store.list(&q).await {
        Err(MetaError::Corrupt { uuid, .. }) => assert_eq!(uuid, want),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn side_tables_follow_writes() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let img = testsuite::rich_fixture(Uuid::new_v4());
    let key = img.uuid.to_string();
    let count = |table: &'static str| {
        let store = store.clone();
        let key = key.clone();
        async move {
            let sql = match table {
                "image_tags" => "SELECT COUNT(*) FROM image_tags WHERE uuid = ?",
                "image_billing_tags" => "SELECT COUNT(*) FROM image_billing_tags WHERE uuid = ?",
                "image_channels" => "SELECT COUNT(*) FROM image_channels WHERE uuid = ?",
                _ => "SELECT COUNT(*) FROM image_acl WHERE uuid = ?",
            };
            sqlx::query_scalar::<_, i64>(sql)
                .bind(key)
                .fetch_one(&store.reader)
                .await
                .unwrap()
        }
    };
    let rev = store.insert(&img).await.unwrap();
    assert_eq!(count("image_tags").await, 3);
    assert_eq!(count("image_billing_tags").await, 2);
    assert_eq!(count("image_channels").await, 2);
    assert_eq!(count("image_acl").await, 2);

    let mut bare = img.clone();
    bare.tags = None;
    bare.billing_tags = Some(vec!["dup".into(), "dup".into()]);
    bare.channels = None;
    bare.acl = vec![];
    store.update(&bare, rev).await.unwrap();
    assert_eq!(count("image_tags").await, 0);
    assert_eq!(count("image_billing_tags").await, 1);
    assert_eq!(count("image_channels").await, 0);

    store.put(&img).await.unwrap();
    assert_eq!(count("image_acl").await, 2);
    assert!(store.delete(img.uuid).await.unwrap());
    for t in [
        "image_tags",
        "image_billing_tags",
        "image_channels",
        "image_acl",
    ] {
        assert_eq!(count(t).await, 0, "{t} after delete");
    }
}

#[tokio::test]
async fn list_uses_the_sort_index() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN SELECT uuid, record FROM images WHERE (1) \
         ORDER BY COALESCE(published_ms, 0) ASC, uuid ASC LIMIT 10",
    )
    .fetch_all(&store.reader)
    .await
    .unwrap();
    let plan: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
    assert!(
        plan.iter().any(|d| d.contains("images_sort")),
        "plan: {plan:?}"
    );
    assert!(
        !plan.iter().any(|d| d.contains("TEMP B-TREE")),
        "plan: {plan:?}"
    );
}

/// A page reached by `marker=` seeks the sort index to its first row (a
/// SEARCH on `images_sort`), in both orders, instead of scanning every row
/// before it: paging through a registry stays linear.
#[tokio::test]
async fn marker_pages_seek_the_sort_index() {
    use crate::sql::SqlBackend as _;
    let store = SqliteStore::open_in_memory().await.unwrap();
    for (order, bound) in [
        (SortOrder::Asc, Predicate::PublishedAtGe(5)),
        (SortOrder::Desc, Predicate::PublishedAtLe(5)),
    ] {
        let query = ImageQuery {
            any_of: vec![vec![bound]],
            order,
            limit: Some(10),
        };
        let built =
            crate::sql::list_query::list_query::<sqlx::Sqlite>(&SqliteStore::LIST_DIALECT, &query);
        let sql = format!("EXPLAIN QUERY PLAN {}", built.sql().as_str());
        let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(5_i64)
            .bind(5_i64)
            .bind(10_i64)
            .fetch_all(&store.reader)
            .await
            .unwrap();
        let plan: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
        assert!(
            plan.iter()
                .any(|d| d.starts_with("SEARCH") && d.contains("images_sort")),
            "{order:?}: plan: {plan:?}"
        );
        assert!(
            !plan.iter().any(|d| d.contains("TEMP B-TREE")),
            "{order:?}: plan: {plan:?}"
        );
    }
}

#[test]
fn engine_from_url() {
    assert_eq!(
        "sqlite:///x".parse::<crate::Engine>(),
        Ok(crate::Engine::Sqlite)
    );
}

fn commits(store: &SqliteStore) -> u64 {
    store.writes.commits.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(clippy::print_stdout)] // the commit count is informative, not asserted
async fn concurrent_inserts_are_group_committed() {
    let (_dir, store) = file_store().await;
    let store = Arc::new(store);
    let before = commits(&store);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let img = testsuite::fixture(Uuid::new_v4());
                let rev = store.insert(&img).await.unwrap();
                (img, rev)
            })
        })
        .collect();
    let mut revisions = std::collections::BTreeSet::new();
    for t in tasks {
        let (img, rev) = t.await.unwrap();
        let got = store.get(img.uuid).await.unwrap().expect("readable");
        assert_eq!((got.image, got.revision), (img, rev));
        assert!(revisions.insert(rev), "revision {rev} reused");
    }
    let used = commits(&store) - before;
    assert!((1..=200).contains(&used));
    println!("200 concurrent inserts: {used} commits");
}

/// Ops landing in one batch behave as if committed one after another:
/// each sees the ones before it, and a failing op is undone alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_batch_runs_ops_in_order_and_isolates_failures() {
    let (_dir, store) = file_store().await;
    let store = Arc::new(store);
    let a = testsuite::fixture(Uuid::new_v4());
    let rev = store.insert(&a).await.unwrap();
    let before = commits(&store);

    // Hold the writer connection: the task takes a first op and waits for
    // the connection; everything queued meanwhile forms the next batch.
    let held = store.writer.acquire().await.unwrap();
    let spawn = |op: &'static str, img: ImageRecord| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            match op {
                "insert" => store.insert(&img).await,
                _ => store.update(&img, rev).await,
            }
        })
    };
    let settle = || tokio::time::sleep(Duration::from_millis(50));
    let blocker = spawn("insert", testsuite::fixture(Uuid::new_v4()));
    settle().await;
    let mut first = a.clone();
    first.description = Some("first".into());
    let mut second = a.clone();
    second.description = Some("second".into());
    let b = testsuite::fixture(Uuid::new_v4());
    let mut batch = Vec::new();
    for (op, img) in [
        ("update", first),                              // Ok
        ("update", second),                             // Conflict: sees first
        ("insert", a.clone()),                          // AlreadyExists
        ("update", testsuite::fixture(Uuid::new_v4())), // NotFound
        ("insert", b.clone()),                          // Ok
    ] {
        batch.push(spawn(op, img));
        settle().await; // keep the queue order
    }
    drop(held);

    blocker.await.unwrap().unwrap();
    let mut results = Vec::new();
    for t in batch {
        results.push(t.await.unwrap());
    }
    assert_eq!(commits(&store) - before, 2, "blocker + one batch");
    let r1 = *results[0].as_ref().unwrap();
    assert!(matches!(results[1], Err(MetaError::Conflict(u)) if u == a.uuid));
    assert!(matches!(results[2], Err(MetaError::AlreadyExists(u)) if u == a.uuid));
    assert!(matches!(results[3], Err(MetaError::NotFound(_))));
    let rb = *results[4].as_ref().unwrap();
    assert!(rb > r1 && r1 > rev);
    let got = store.get(a.uuid).await.unwrap().unwrap();
    assert_eq!(got.image.description.as_deref(), Some("first"));
    assert_eq!(got.revision, r1);
    assert_eq!(store.get(b.uuid).await.unwrap().unwrap().revision, rb);
}

/// Writes fail with `Unavailable`, never hang, once the writer is gone.
#[tokio::test]
async fn writes_fail_when_the_writer_is_gone() {
    let img = testsuite::fixture(Uuid::new_v4());
    // A store whose runtime (and with it the writer task) has shut down.
    let orphan = std::thread::spawn(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(SqliteStore::open_in_memory()).unwrap()
    })
    .join()
    .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), orphan.insert(&img)).await;
    assert!(matches!(res, Ok(Err(MetaError::Unavailable(_)))), "{res:?}");

    let (_dir, store) = file_store().await;
    store.close().await;
    let res = tokio::time::timeout(Duration::from_secs(5), store.insert(&img)).await;
    assert!(matches!(res, Ok(Err(MetaError::Unavailable(_)))), "{res:?}");
}

/// Write throughput: 1000 inserts from 16 concurrent clients on a
/// file-backed store. Run in release:
/// `cargo test -p imgapi-meta --release -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark; run with --release --ignored --nocapture"]
#[allow(clippy::print_stdout)] // the figure is the point
async fn bench_concurrent_inserts() {
    const TOTAL: usize = 1000;
    const CLIENTS: usize = 16;
    let (_dir, store) = file_store().await;
    let store = Arc::new(store);
    let owner = Uuid::new_v4();
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for _ in (client..TOTAL).step_by(CLIENTS) {
                    store.insert(&testsuite::fixture(owner)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();
    let used = commits(&store);
    println!("{TOTAL} inserts from {CLIENTS} concurrent clients: {elapsed:?}, {used} commits");
}

/// The change-log purge, on a store of its own (it purges every event).
#[tokio::test]
async fn change_log_purge() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    testsuite::changes_purge(&store).await;
}
