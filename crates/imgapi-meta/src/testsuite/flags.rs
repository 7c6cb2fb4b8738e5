//! Conformance checks of [`crate::ImageFlagsStore`]: image lifecycle flags.

use imgapi_domain::filter::Predicate;
use uuid::Uuid;

use super::{fixture, matching, ok};
use crate::{FlagsChange, MetaError, MetaStore};

fn change(deprecated_ms: Option<Option<i64>>, protected: Option<bool>) -> FlagsChange {
    FlagsChange {
        deprecated_ms,
        protected,
        at_ms: 1_700_000_000_000,
        by: "operator".into(),
    }
}

/// Set, merge, clear; a missing image is `NotFound`; a change bumps the
/// generation.
pub async fn flags_set_merge_and_clear(store: &dyn MetaStore) {
    let img = fixture(Uuid::new_v4());
    ok(store.insert(&img).await, "insert");
    assert_eq!(ok(store.image_flags(img.uuid).await, "flags"), None);

    let before = ok(store.generation().await, "generation");
    let set = ok(
        store
            .change_image_flags(img.uuid, &change(Some(Some(5_000)), None))
            .await,
        "deprecate",
    );
    assert_eq!(set.deprecated_ms, Some(5_000));
    assert!(!set.protected, "an unset field takes its default");
    assert!(set.deprecated_at(5_000) && !set.deprecated_at(4_999));
    assert!(
        ok(store.generation().await, "generation") > before,
        "a flags change must bump the generation"
    );

    let merged = ok(
        store
            .change_image_flags(img.uuid, &change(None, Some(true)))
            .await,
        "protect",
    );
    assert_eq!(
        (merged.deprecated_ms, merged.protected),
        (Some(5_000), true),
        "setting one field keeps the other"
    );
    let cleared = ok(
        store
            .change_image_flags(img.uuid, &change(Some(None), None))
            .await,
        "clear deprecation",
    );
    assert_eq!((cleared.deprecated_ms, cleared.protected), (None, true));
    assert!(
        ok(store.protected_images().await, "protected images").contains(&img.uuid),
        "a protected image is listed as protected"
    );
    assert_eq!(
        ok(store.image_flags(img.uuid).await, "flags"),
        Some(cleared)
    );

    let missing = Uuid::new_v4();
    match store
        .change_image_flags(missing, &change(None, Some(true)))
        .await
    {
        Err(MetaError::NotFound(u)) => assert_eq!(u, missing),
        other => panic!("flags of a missing image: expected NotFound, got {other:?}"),
    }
    assert_eq!(ok(store.image_flags(missing).await, "flags"), None);
}

/// Flags stay when the record is overwritten, move with a uuid change and
/// go with the image.
pub async fn flags_follow_the_image(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let img = fixture(owner);
    let r1 = ok(store.insert(&img).await, "insert");
    ok(
        store
            .change_image_flags(img.uuid, &change(Some(Some(7)), Some(true)))
            .await,
        "set",
    );
    let mut overwritten = img.clone();
    overwritten.description = Some("overwritten".into());
    let r2 = ok(store.put(&overwritten).await, "put");
    assert!(r2 > r1);
    let kept = ok(store.image_flags(img.uuid).await, "flags after put");
    assert_eq!(
        kept.map(|f| (f.deprecated_ms, f.protected)),
        Some((Some(7), true))
    );

    let mut renamed = overwritten.clone();
    renamed.uuid = Uuid::new_v4();
    ok(store.rename(img.uuid, r2, &renamed).await, "rename");
    assert_eq!(ok(store.image_flags(img.uuid).await, "old flags"), None);
    let moved = ok(store.image_flags(renamed.uuid).await, "new flags");
    assert_eq!(
        moved.map(|f| (f.deprecated_ms, f.protected)),
        Some((Some(7), true))
    );

    ok(store.delete(renamed.uuid).await, "delete");
    assert_eq!(ok(store.image_flags(renamed.uuid).await, "flags"), None);
    // A new image under the same uuid starts without flags.
    ok(store.insert(&renamed).await, "re-insert");
    assert_eq!(ok(store.image_flags(renamed.uuid).await, "flags"), None);
}

/// `Predicate::NotDeprecated` and `next_deprecation_after`.
pub async fn flags_in_listings(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let viewer = Uuid::new_v4().to_string();
    let plain = fixture(owner);
    let past = fixture(owner);
    let future = fixture(owner);
    let cleared = fixture(owner);
    for img in [&plain, &past, &future, &cleared] {
        ok(store.insert(img).await, "insert");
    }
    let now = 2_000_000_000_000_i64;
    let soon = now + 60_000;
    for (img, at) in [
        (&past, Some(now - 1)),
        (&future, Some(soon)),
        (&cleared, None),
    ] {
        ok(
            store
                .change_image_flags(img.uuid, &change(Some(at), Some(false)))
                .await,
            "set",
        );
    }
    let mut expected = vec![plain.uuid, future.uuid, cleared.uuid];
    expected.sort();
    let mut seen = matching(
        store,
        owner,
        &[Predicate::NotDeprecated {
            at_ms: now,
            unless_owner: Some(viewer),
        }],
    )
    .await;
    seen.sort();
    assert_eq!(seen, expected, "deprecated images are left out");
    let mut seen = matching(
        store,
        owner,
        &[Predicate::NotDeprecated {
            at_ms: now,
            unless_owner: Some(owner.to_string()),
        }],
    )
    .await;
    seen.sort();
    let mut all = vec![plain.uuid, past.uuid, future.uuid, cleared.uuid];
    all.sort();
    assert_eq!(seen, all, "owners see their deprecated images");
    let at_soon = matching(
        store,
        owner,
        &[Predicate::NotDeprecated {
            at_ms: soon,
            unless_owner: None,
        }],
    )
    .await;
    assert!(!at_soon.contains(&future.uuid) && !at_soon.contains(&past.uuid));

    // Other runs of the suite may share the database: only bounds hold.
    let next = ok(store.next_deprecation_after(now).await, "next deprecation");
    assert!(
        next.is_some_and(|n| n > now && n <= soon),
        "next deprecation after {now}: {next:?}"
    );
}
