//! Conformance checks of [`BlobStore::list_objects`] and
//! [`BlobStore::move_to_lost_found`].

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::{BlobError, BlobStore, ByteStream, LOST_FOUND};

fn body(bytes: &'static [u8]) -> ByteStream {
    Box::pin(futures_util::stream::iter([Ok(Bytes::from_static(bytes))]))
}

fn ok<T, E: std::fmt::Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

/// Listing with sizes and write times; moving an object aside keeps its
/// bytes out of the key space, never replaces an earlier one, and a
/// missing key is `NotFound`.
pub async fn list_objects_and_lost_found(store: &dyn BlobStore) {
    ok(
        store.put_stream("lf/a", body(b"0123456789"), 100).await,
        "put",
    );
    ok(store.put_stream("lf/b/c", body(b"xyz"), 100).await, "put");
    let listed = ok(store.list_objects("lf/").await, "list_objects");
    let got: Vec<(&str, u64)> = listed.iter().map(|o| (o.key.as_str(), o.size)).collect();
    assert_eq!(got, [("lf/a", 10), ("lf/b/c", 3)], "keys and sizes");
    let now = SystemTime::now();
    for o in &listed {
        let modified = o
            .modified
            .unwrap_or_else(|| panic!("{}: no write time", o.key));
        let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
        assert!(
            age < Duration::from_secs(600),
            "{}: written {age:?} ago?",
            o.key
        );
    }

    let first = ok(store.move_to_lost_found("lf/a").await, "move_to_lost_found");
    assert!(first.contains(LOST_FOUND), "moved to {first}");
    assert!(matches!(
        store.stat("lf/a").await,
        Err(BlobError::NotFound(_))
    ));
    assert_eq!(ok(store.list("lf/").await, "list"), ["lf/b/c"]);
    let everything = ok(store.list("").await, "list");
    assert!(
        !everything.iter().any(|k| k.contains(LOST_FOUND)),
        "lost+found is outside the key space: {everything:?}"
    );
    let objects = ok(store.list_objects("").await, "list_objects");
    assert!(!objects.iter().any(|o| o.key.contains(LOST_FOUND)));

    // The same key again: the first copy is kept.
    ok(store.put_stream("lf/a", body(b"again"), 100).await, "put");
    let second = ok(store.move_to_lost_found("lf/a").await, "move again");
    assert_ne!(
        first, second,
        "an earlier lost+found object is never replaced"
    );

    assert!(matches!(
        store.move_to_lost_found("lf/missing").await,
        Err(BlobError::NotFound(_))
    ));
    assert!(matches!(
        store.move_to_lost_found("../etc").await,
        Err(BlobError::InvalidKey(_))
    ));
    ok(store.delete("lf/b/c").await, "delete");
}
