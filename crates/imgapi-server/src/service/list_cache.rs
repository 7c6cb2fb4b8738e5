//! A small cache of serialised ListImages responses, stamped with the
//! metadata store's generation: an entry is served only while no write has
//! been committed since it was built (by this or any other instance), so it
//! can never serve stale data. Lists are the hot read path of every client
//! (imgadm avail, CloudAPI) and a page of 1000 images is ~0.5 MB of JSON.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

/// Upper bound of cached bytes (keeps peak RSS predictable).
const MAX_BYTES: usize = 8 * 1024 * 1024;
/// Upper bound of entries.
const MAX_ENTRIES: usize = 64;

/// A cached body: the generation it was built at, and the time (ms since
/// the epoch) from which it may be wrong without any write: the next
/// deprecation instant (docs/lifecycle.md), `None` = none pending.
struct Entry {
    generation: i64,
    until_ms: Option<i64>,
    body: Bytes,
}

#[derive(Default)]
pub struct ListCache {
    entries: Mutex<HashMap<String, Entry>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl ListCache {
    /// The body cached for `key` if it was built at `generation` and its
    /// time has not run out.
    pub fn get(&self, key: &str, generation: i64) -> Option<Bytes> {
        let entries = self.entries.lock().ok()?;
        match entries.get(key) {
            Some(e) if e.generation == generation && e.until_ms.is_none_or(|t| now_ms() < t) => {
                Some(e.body.clone())
            }
            _ => None,
        }
    }

    /// Remember `body` for `key` at `generation` until `until_ms`, dropping
    /// entries of other generations first and everything if still over the
    /// bounds.
    pub fn put(&self, key: String, generation: i64, until_ms: Option<i64>, body: Bytes) {
        if body.len() > MAX_BYTES {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        entries.retain(|_, e| e.generation == generation);
        let used: usize = entries.values().map(|e| e.body.len()).sum();
        if entries.len() >= MAX_ENTRIES || used + body.len() > MAX_BYTES {
            entries.clear();
        }
        let entry = Entry {
            generation,
            until_ms,
            body,
        };
        entries.insert(key, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_with_the_generation() {
        let cache = ListCache::default();
        cache.put("q".into(), 1, None, Bytes::from_static(b"[]"));
        assert_eq!(cache.get("q", 1), Some(Bytes::from_static(b"[]")));
        assert_eq!(cache.get("q", 2), None);
        cache.put("r".into(), 2, None, Bytes::from_static(b"[1]"));
        assert_eq!(cache.get("q", 1), None, "older generations are dropped");
    }

    #[test]
    fn entries_expire_at_their_time() {
        let cache = ListCache::default();
        cache.put(
            "past".into(),
            1,
            Some(now_ms() - 1),
            Bytes::from_static(b"[]"),
        );
        assert_eq!(cache.get("past", 1), None);
        cache.put(
            "later".into(),
            1,
            Some(now_ms() + 60_000),
            Bytes::from_static(b"[]"),
        );
        assert_eq!(cache.get("later", 1), Some(Bytes::from_static(b"[]")));
    }

    #[test]
    fn bounded() {
        let cache = ListCache::default();
        for i in 0..(MAX_ENTRIES + 5) {
            cache.put(format!("k{i}"), 1, None, Bytes::from_static(b"x"));
        }
        let n = cache.entries.lock().map(|e| e.len()).unwrap_or(0);
        assert!(n <= MAX_ENTRIES);
        cache.put("big".into(), 1, None, Bytes::from(vec![0u8; MAX_BYTES + 1]));
        assert_eq!(cache.get("big", 1), None);
    }
}
