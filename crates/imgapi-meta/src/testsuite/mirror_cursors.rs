//! Conformance: change-feed cursors of mirrors.

use uuid::Uuid;

use super::ok;
use crate::{MetaStore, MirrorCursor, MirrorCursorKey};

/// A cursor is absent until put, reads back as put, is replaced by the
/// next put, and is kept per upstream and filter set.
pub async fn mirror_cursors_put_and_get(store: &dyn MetaStore) {
    let upstream = format!("https://{}.example.com/", Uuid::new_v4());
    let key = MirrorCursorKey {
        upstream: upstream.clone(),
        filters: String::new(),
    };
    let filtered = MirrorCursorKey {
        upstream,
        filters: "name=~base".into(),
    };
    assert_eq!(
        ok(store.mirror_cursor(&key).await, "mirror_cursor"),
        None,
        "no cursor before the first put"
    );
    let first = MirrorCursor {
        cursor: 41,
        updated_ms: 1_700_000_000_000,
    };
    ok(
        store.put_mirror_cursor(&key, first).await,
        "put_mirror_cursor",
    );
    assert_eq!(
        ok(store.mirror_cursor(&key).await, "mirror_cursor"),
        Some(first)
    );
    let second = MirrorCursor {
        cursor: 9_000_000_000,
        updated_ms: 1_700_000_000_500,
    };
    ok(
        store.put_mirror_cursor(&key, second).await,
        "put_mirror_cursor",
    );
    assert_eq!(
        ok(store.mirror_cursor(&key).await, "mirror_cursor"),
        Some(second),
        "a put replaces the cursor"
    );
    assert_eq!(
        ok(store.mirror_cursor(&filtered).await, "mirror_cursor"),
        None,
        "another filter set has its own cursor"
    );
}
