//! Conformance checks of [`crate::QuotaStore`]: limits, growing and
//! releasing reservations, expiry, write-once claims, concurrency and the
//! stored overrides.

use uuid::Uuid;

use super::{fixture, futures_join_all, ok, rich_fixture};
use crate::{MetaStore, QuotaLimits, QuotaOverride, QuotaUse, ReservationRequest, ReserveOutcome};

const NOW: i64 = 1_700_000_000_000;

fn request(owner: Uuid, images: u64, bytes: u64, limits: QuotaLimits) -> ReservationRequest {
    ReservationRequest {
        id: Uuid::new_v4(),
        owner,
        image: Uuid::new_v4(),
        images,
        bytes,
        limits,
        claim_version: None,
        now_ms: NOW,
        expires_ms: NOW + 60_000,
    }
}

/// An image of `owner` with one file of `size` bytes.
async fn image_of(store: &dyn MetaStore, owner: Uuid, size: u64) -> Uuid {
    let mut img = rich_fixture(Uuid::new_v4());
    img.owner = owner;
    img.icon = None;
    img.files.truncate(1);
    img.files[0].size = size;
    ok(store.insert(&img).await, "insert image");
    img.uuid
}

/// Reservations count with the stored use against the limits; a request
/// with the same id grows its reservation; releasing gives the room back;
/// expired reservations do not count.
pub async fn quotas_reserve_checks_limits(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    image_of(store, owner, 40).await;
    let limits = QuotaLimits {
        images: 2,
        bytes: 100,
    };
    let first = request(owner, 0, 50, limits);
    let got = ok(store.reserve(&first).await, "reserve 50");
    assert_eq!(got, ReserveOutcome::Granted, "40 + 50 <= 100");
    let over = ok(
        store.reserve(&request(owner, 0, 20, limits)).await,
        "reserve 20",
    );
    let seen = QuotaUse {
        images: 1,
        bytes: 40,
        reserved_images: 0,
        reserved_bytes: 50,
    };
    assert_eq!(over, ReserveOutcome::OverBytes(seen), "40 + 50 + 20 > 100");
    let grow = ReservationRequest {
        bytes: 10,
        ..first.clone()
    };
    let got = ok(store.reserve(&grow).await, "grow by 10");
    assert_eq!(got, ReserveOutcome::Granted, "exactly the limit fits");
    let used = ok(store.quota_use(owner, NOW).await, "quota_use");
    assert_eq!(used.reserved_bytes, 60, "the reservation grew");
    let image = ok(store.reserve(&request(owner, 1, 0, limits)).await, "image");
    assert_eq!(image, ReserveOutcome::Granted, "1 + 1 <= 2 images");
    let image = ok(store.reserve(&request(owner, 1, 0, limits)).await, "image");
    assert!(
        matches!(image, ReserveOutcome::OverImages(_)),
        "1 image + 1 reserved + 1 > 2: {image:?}"
    );
    ok(store.release_reservation(first.id).await, "release");
    let used = ok(store.quota_use(owner, NOW).await, "quota_use");
    assert_eq!((used.reserved_bytes, used.reserved_images), (0, 1));
    // Past their expiry, reservations no longer count.
    let later = ok(
        store.quota_use(owner, NOW + 120_000).await,
        "quota_use later",
    );
    assert_eq!((later.reserved_bytes, later.reserved_images), (0, 0));
    let unlimited = QuotaLimits::default();
    let got = ok(
        store
            .reserve(&request(owner, 1, u64::MAX / 4, unlimited))
            .await,
        "no limit",
    );
    assert_eq!(got, ReserveOutcome::Granted, "0 = no limit");
}

/// A triple is taken by another image that has it, or by another image's
/// live claim; the image's own triple is not taken.
pub async fn quotas_version_claims(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let mut existing = fixture(owner);
    existing.name = "claimed".into();
    existing.version = "1".into();
    ok(store.insert(&existing).await, "insert");
    let claim = |image: Uuid, version: &str| ReservationRequest {
        image,
        claim_version: Some(("claimed".into(), version.into())),
        ..request(owner, 0, 0, QuotaLimits::default())
    };
    let got = ok(store.reserve(&claim(Uuid::new_v4(), "1")).await, "claim 1");
    assert_eq!(got, ReserveOutcome::VersionTaken(existing.uuid));
    let got = ok(
        store.reserve(&claim(existing.uuid, "1")).await,
        "own triple",
    );
    assert_eq!(got, ReserveOutcome::Granted);
    let first = Uuid::new_v4();
    let got = ok(store.reserve(&claim(first, "2")).await, "claim 2");
    assert_eq!(got, ReserveOutcome::Granted);
    let got = ok(
        store.reserve(&claim(Uuid::new_v4(), "2")).await,
        "claim 2 again",
    );
    assert_eq!(
        got,
        ReserveOutcome::VersionTaken(first),
        "a live claim takes it"
    );
    let other_owner = ReservationRequest {
        owner: Uuid::new_v4(),
        ..claim(Uuid::new_v4(), "1")
    };
    let got = ok(store.reserve(&other_owner).await, "other owner");
    assert_eq!(got, ReserveOutcome::Granted, "triples are per owner");
}

/// 20 reservations at once against room for 10: exactly 10 are granted.
pub async fn quotas_concurrent_reserves_never_overshoot(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let limits = QuotaLimits {
        images: 0,
        bytes: 100,
    };
    let requests: Vec<ReservationRequest> =
        (0..20).map(|_| request(owner, 0, 10, limits)).collect();
    let outcomes = futures_join_all(requests.iter().map(|r| store.reserve(r))).await;
    let granted = outcomes
        .into_iter()
        .map(|o| ok(o, "reserve"))
        .filter(|o| *o == ReserveOutcome::Granted)
        .count();
    assert_eq!(granted, 10, "exactly the room is granted");
}

/// Stored overrides: put, get, list, replace, delete.
pub async fn quota_overrides_crud(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    assert_eq!(ok(store.quota_override(owner).await, "get"), None);
    let o = QuotaOverride {
        owner,
        images: Some(3),
        bytes: None,
    };
    ok(store.put_quota_override(&o).await, "put");
    assert_eq!(
        ok(store.quota_override(owner).await, "get"),
        Some(o.clone())
    );
    let replaced = QuotaOverride {
        owner,
        images: None,
        bytes: Some(0),
    };
    ok(store.put_quota_override(&replaced).await, "replace");
    let all = ok(store.quota_overrides().await, "list");
    assert!(all.contains(&replaced), "{all:?}");
    assert!(ok(store.delete_quota_override(owner).await, "delete"));
    assert!(!ok(
        store.delete_quota_override(owner).await,
        "delete again"
    ));
}
