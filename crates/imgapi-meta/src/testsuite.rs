//! Conformance suite every [`MetaStore`] backend runs.
//!
//! [`run_all`] calls one async fn per contract point; each is public so a
//! backend can also run them one by one. Every check creates its own random
//! uuids and owner and restricts its queries to that owner, so the suite can
//! run against a shared database (and concurrently with itself). Failures
//! panic with a message naming the contract point.

use std::collections::BTreeMap;
use std::fmt::Debug;

use imgapi_domain::filter::{ImageQuery, Predicate, SortOrder};
use imgapi_domain::image::parse_iso_ms;
use imgapi_domain::{IconRecord, ImageFile, ImageRecord, ImageState};
use serde_json::{json, Map, Number, Value};
use uuid::Uuid;

use crate::{
    JobExecution, JobLease, JobRecord, MetaError, MetaStore, StoredImage, UploadLease,
    UploadSession,
};

mod changes;
mod flags;
mod mirror_cursors;
mod quotas;
mod recycle_bin;
mod retention;
mod signatures;
mod usage;
mod webhooks;
pub use changes::{changes_follow_every_image_write, changes_paging_bounds, changes_purge};
pub use flags::{flags_follow_the_image, flags_in_listings, flags_set_merge_and_clear};
pub use mirror_cursors::mirror_cursors_put_and_get;
pub use quotas::{
    quota_overrides_crud, quotas_concurrent_reserves_never_overshoot, quotas_reserve_checks_limits,
    quotas_version_claims,
};
pub use recycle_bin::{
    recycle_bin_conflicts, recycle_bin_expiry_and_abandoned, recycle_bin_move_restore_purge,
};
pub use retention::retention_rules_round_trip;
pub use signatures::{signatures_follow_the_image, signatures_paging};
pub use usage::{
    jobs_counted_by_execution, usage_is_one_snapshot, usage_per_owner_and_billing_tag,
};
pub use webhooks::{
    webhooks_claim_race, webhooks_leases, webhooks_round_trip, webhooks_upsert_by_name,
};

/// Run every contract check against `store`.
pub async fn run_all(store: &dyn MetaStore) {
    ping(store).await;
    insert_get_round_trip(store).await;
    insert_existing_is_already_exists(store).await;
    update_checks_revision(store).await;
    update_of_missing_is_not_found(store).await;
    concurrent_updates_one_wins(store).await;
    put_creates_and_overwrites(store).await;
    rename_moves_record(store).await;
    delete_reports_existence(store).await;
    list_each_predicate(store).await;
    list_or_of_conjunctions(store).await;
    list_sort_and_ties(store).await;
    list_limit(store).await;
    list_markers(store).await;
    list_matching_nothing(store).await;
    dependents_by_origin_and_channel(store).await;
    count_by_state_counts(store).await;
    generation_grows_with_writes(store).await;
    jobs_insert_get_list(store).await;
    jobs_claim_lease_and_release(store).await;
    jobs_concurrent_claims_one_wins(store).await;
    jobs_finished_are_not_claimable(store).await;
    jobs_pruned_when_finished_long_ago(store).await;
    uploads_insert_get_delete(store).await;
    uploads_lease_advance_release(store).await;
    uploads_concurrent_claims_one_wins(store).await;
    uploads_stale_leases_of_a_restarted_holder(store).await;
    uploads_expiry(store).await;
    usage_per_owner_and_billing_tag(store).await;
    usage_is_one_snapshot(store).await;
    jobs_counted_by_execution(store).await;
    flags_set_merge_and_clear(store).await;
    flags_follow_the_image(store).await;
    flags_in_listings(store).await;
    retention_rules_round_trip(store).await;
    recycle_bin_move_restore_purge(store).await;
    quotas_reserve_checks_limits(store).await;
    quotas_version_claims(store).await;
    quotas_concurrent_reserves_never_overshoot(store).await;
    quota_overrides_crud(store).await;
    recycle_bin_conflicts(store).await;
    recycle_bin_expiry_and_abandoned(store).await;
    changes_follow_every_image_write(store).await;
    changes_paging_bounds(store).await;
    webhooks_round_trip(store).await;
    webhooks_upsert_by_name(store).await;
    webhooks_leases(store).await;
    webhooks_claim_race(store).await;
    mirror_cursors_put_and_get(store).await;
    signatures_follow_the_image(store).await;
    signatures_paging(store).await;
}

/// Every committed write moves the generation forward; reads do not.
pub async fn generation_grows_with_writes(store: &dyn MetaStore) {
    let before = ok(store.generation().await, "generation");
    let again = ok(store.generation().await, "generation");
    assert!(again >= before);
    let img = fixture(Uuid::new_v4());
    ok(store.insert(&img).await, "insert");
    let after_insert = ok(store.generation().await, "generation");
    assert!(after_insert > before, "insert must bump the generation");
    ok(store.delete(img.uuid).await, "delete");
    let after_delete = ok(store.generation().await, "generation");
    assert!(
        after_delete > after_insert,
        "delete must bump the generation"
    );
}

// ---------------------------------------------------------------------------
// Fixtures and helpers

/// A minimal valid record with a fresh uuid, owned by `owner`.
pub fn fixture(owner: Uuid) -> ImageRecord {
    ImageRecord {
        v: Number::from(2),
        uuid: Uuid::new_v4(),
        owner,
        name: "base".into(),
        version: "1.0.0".into(),
        description: None,
        homepage: None,
        eula: None,
        disabled: false,
        activated: false,
        published_at: None,
        state: ImageState::Unactivated,
        public: false,
        image_type: "zone-dataset".into(),
        os: "smartos".into(),
        origin: None,
        error: None,
        files: vec![],
        icon: None,
        acl: vec![],
        requirements: None,
        users: None,
        billing_tags: None,
        traits: None,
        tags: None,
        generate_passwords: None,
        inherited_directories: None,
        nic_driver: None,
        disk_driver: None,
        cpu_type: None,
        image_size: None,
        channels: None,
        urn: None,
        expires_at: None,
    }
}

/// [`fixture`], activated, with `published_at`.
fn published(owner: Uuid, published_at: Option<&str>) -> ImageRecord {
    let mut img = fixture(owner);
    img.activated = true;
    img.state = ImageState::Active;
    img.published_at = published_at.map(str::to_owned);
    img
}

/// A record using every optional field.
pub fn rich_fixture(owner: Uuid) -> ImageRecord {
    let mut img = fixture(owner);
    img.description = Some("a \"rich\" image ✓".into());
    img.homepage = Some("https://example.com/img".into());
    img.eula = Some("https://example.com/eula".into());
    img.activated = true;
    img.published_at = Some("2020-02-03T04:05:06.789Z".into());
    img.state = ImageState::Active;
    img.public = true;
    img.origin = Some(Uuid::new_v4());
    img.error = Some(json!({"message": "old", "code": "X"}));
    img.files = vec![ImageFile {
        sha1: "97f20b32c2016782257176fb58a35e5044f05840".into(),
        size: 1_234_567,
        compression: "gzip".into(),
        dataset_guid: Some("1234".into()),
        content_md5: "3tqHbeE6dVBFdi4r9BfX0Q==".into(),
        sha256: Some("3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7".into()),
        mtime: "2020-02-03T04:05:06.000Z".into(),
        stor: "local".into(),
        digest: Some("sha256:abc".into()),
        uncompressed_digest: Some("sha256:def".into()),
        blob_key: Some("images/ab/cd".into()),
    }];
    img.icon = Some(IconRecord {
        sha1: "da39a3ee5e6b4b0d3255bfef95601890afd80709".into(),
        size: 10,
        content_type: "image/png".into(),
        content_md5: "1B2M2Y8AsgTpgAmY7PhCfg==".into(),
        mtime: "2020-02-03T04:05:06.000Z".into(),
        stor: "local".into(),
        blob_key: None,
    });
    img.acl = vec![Uuid::new_v4(), Uuid::new_v4()];
    img.requirements = Some(json!({"min_ram": 512, "networks": [{"name": "net0"}]}));
    img.users = Some(json!([{"name": "root"}]));
    img.billing_tags = Some(vec!["small".into(), "fast".into()]);
    img.traits = Some(object(json!({"hw": ["a", "b"], "ssd": true})));
    img.tags = Some(object(json!({"z": 1, "a": {"b": 2}, "role": "db"})));
    img.generate_passwords = Some(false);
    img.inherited_directories = Some(vec!["/opt".into()]);
    img.nic_driver = Some("virtio".into());
    img.disk_driver = Some("virtio".into());
    img.cpu_type = Some("host".into());
    img.image_size = Some(Number::from(10_240));
    img.channels = Some(vec!["dev".into(), "staging".into()]);
    img.urn = Some("sdc:sdc:base:1.0.0".into());
    img.expires_at = Some("2030-01-01T00:00:00Z".into());
    img
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The empty expected result.
const NO_UUIDS: Vec<Uuid> = Vec::new();

#[track_caller]
fn ok<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

async fn insert_all(store: &dyn MetaStore, images: &[&ImageRecord]) {
    for img in images {
        ok(store.insert(img).await, "insert fixture");
    }
}

async fn list_uuids(
    store: &dyn MetaStore,
    any_of: Vec<Vec<Predicate>>,
    order: SortOrder,
    limit: Option<u32>,
) -> Vec<Uuid> {
    let query = ImageQuery {
        any_of,
        order,
        limit,
    };
    ok(store.list(&query).await, "list")
        .into_iter()
        .map(|img| img.uuid)
        .collect()
}

/// `list` of one conjunction restricted to `owner`, ascending, no limit.
async fn matching(store: &dyn MetaStore, owner: Uuid, preds: &[Predicate]) -> Vec<Uuid> {
    let mut conj = vec![Predicate::OwnerEq(owner.to_string())];
    conj.extend_from_slice(preds);
    list_uuids(store, vec![conj], SortOrder::Asc, None).await
}

fn ms(iso: &str) -> i64 {
    parse_iso_ms(iso).unwrap_or_else(|| panic!("bad date in test: {iso}"))
}

// ---------------------------------------------------------------------------
// Contract points

pub async fn ping(store: &dyn MetaStore) {
    ok(store.ping().await, "ping");
}

pub async fn insert_get_round_trip(store: &dyn MetaStore) {
    let img = rich_fixture(Uuid::new_v4());
    let revision = ok(store.insert(&img).await, "insert");
    let got = ok(store.get(img.uuid).await, "get");
    assert_eq!(
        got,
        Some(StoredImage {
            image: img.clone(),
            revision
        }),
        "get returns exactly what insert stored"
    );
    let minimal = fixture(Uuid::new_v4());
    let rev2 = ok(store.insert(&minimal).await, "insert minimal");
    assert_ne!(rev2, revision, "revisions differ between writes");
    let got = ok(store.get(minimal.uuid).await, "get minimal");
    assert_eq!(got.map(|s| s.image), Some(minimal));
    assert_eq!(
        ok(store.get(Uuid::new_v4()).await, "get unknown"),
        None,
        "get of an unknown uuid is None"
    );
}

pub async fn insert_existing_is_already_exists(store: &dyn MetaStore) {
    let img = fixture(Uuid::new_v4());
    let revision = ok(store.insert(&img).await, "insert");
    let mut again = img.clone();
    again.name = "other".into();
    match store.insert(&again).await {
        Err(MetaError::AlreadyExists(u)) => assert_eq!(u, img.uuid),
        other => panic!("second insert: expected AlreadyExists, got {other:?}"),
    }
    let got = ok(store.get(img.uuid).await, "get");
    assert_eq!(
        got,
        Some(StoredImage {
            image: img,
            revision
        }),
        "a failed insert leaves the record untouched"
    );
}

pub async fn update_checks_revision(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let mut img = fixture(owner);
    img.channels = Some(vec!["old-chan".into()]);
    let r1 = ok(store.insert(&img).await, "insert");

    let mut v2 = img.clone();
    v2.description = Some("second".into());
    v2.channels = Some(vec!["new-chan".into()]);
    let r2 = ok(store.update(&v2, r1).await, "update at current revision");
    assert_ne!(r1, r2, "update changes the revision");
    let got = ok(store.get(img.uuid).await, "get");
    assert_eq!(
        got,
        Some(StoredImage {
            image: v2.clone(),
            revision: r2
        })
    );

    // Search columns follow the record.
    let chan = |c: &str| Predicate::Channel(c.into());
    assert_eq!(matching(store, owner, &[chan("old-chan")]).await, NO_UUIDS);
    assert_eq!(
        matching(store, owner, &[chan("new-chan")]).await,
        vec![img.uuid]
    );

    let mut v3 = img.clone();
    v3.description = Some("stale".into());
    match store.update(&v3, r1).await {
        Err(MetaError::Conflict(u)) => assert_eq!(u, img.uuid),
        other => panic!("update at stale revision: expected Conflict, got {other:?}"),
    }
    let got = ok(store.get(img.uuid).await, "get after conflict");
    assert_eq!(got.map(|s| (s.image, s.revision)), Some((v2, r2)));
}

pub async fn update_of_missing_is_not_found(store: &dyn MetaStore) {
    let img = fixture(Uuid::new_v4());
    let r1 = ok(store.insert(&img).await, "insert");
    assert!(ok(store.delete(img.uuid).await, "delete"));
    match store.update(&img, r1).await {
        Err(MetaError::NotFound(u)) => assert_eq!(u, img.uuid),
        other => panic!("update of deleted: expected NotFound, got {other:?}"),
    }
    let never = fixture(Uuid::new_v4());
    match store.update(&never, 1).await {
        Err(MetaError::NotFound(u)) => assert_eq!(u, never.uuid),
        other => panic!("update of never-inserted: expected NotFound, got {other:?}"),
    }
    assert_eq!(ok(store.get(never.uuid).await, "get"), None);

    // A revision from before a delete does not apply to a re-created record.
    let r_new = ok(store.insert(&img).await, "re-insert");
    assert_ne!(r_new, r1, "revisions are not reused after delete");
}

/// Two updates racing from the same revision: exactly one wins.
pub async fn concurrent_updates_one_wins(store: &dyn MetaStore) {
    let img = fixture(Uuid::new_v4());
    let r1 = ok(store.insert(&img).await, "insert");
    let mut a = img.clone();
    a.description = Some("a".into());
    let mut b = img.clone();
    b.description = Some("b".into());
    let (ra, rb) = tokio::join!(store.update(&a, r1), store.update(&b, r1));
    let (winner, rev) = match (ra, rb) {
        (Ok(rev), Err(MetaError::Conflict(_))) => (a, rev),
        (Err(MetaError::Conflict(_)), Ok(rev)) => (b, rev),
        other => panic!("racing updates: expected one Ok and one Conflict, got {other:?}"),
    };
    let got = ok(store.get(img.uuid).await, "get");
    assert_eq!(got.map(|s| (s.image, s.revision)), Some((winner, rev)));
}

pub async fn put_creates_and_overwrites(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let mut img = fixture(owner);
    img.tags = Some(object(json!({"placeholder": true})));
    let r1 = ok(store.put(&img).await, "put (create)");
    let got = ok(store.get(img.uuid).await, "get");
    assert_eq!(
        got,
        Some(StoredImage {
            image: img.clone(),
            revision: r1
        })
    );

    let mut real = rich_fixture(owner);
    real.uuid = img.uuid;
    real.tags = Some(object(json!({"role": "real"})));
    let r2 = ok(store.put(&real).await, "put (overwrite)");
    assert_ne!(r1, r2, "put changes the revision");
    let got = ok(store.get(img.uuid).await, "get");
    assert_eq!(
        got,
        Some(StoredImage {
            image: real.clone(),
            revision: r2
        })
    );
    let tag = |k: &str| Predicate::Tag {
        key: k.into(),
        value: None,
    };
    assert_eq!(
        matching(store, owner, &[tag("placeholder")]).await,
        NO_UUIDS
    );
    assert_eq!(matching(store, owner, &[tag("role")]).await, vec![img.uuid]);

    match store.update(&img, r1).await {
        Err(MetaError::Conflict(_)) => {}
        other => panic!("update at revision from before put: expected Conflict, got {other:?}"),
    }
}

pub async fn rename_moves_record(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let mut old = fixture(owner);
    old.tags = Some(object(json!({"k": "v"})));
    old.acl = vec![Uuid::new_v4()];
    let r1 = ok(store.insert(&old).await, "insert");

    let mut renamed = old.clone();
    renamed.uuid = Uuid::new_v4();
    renamed.description = Some("renamed".into());

    // Stale revision: Conflict, nothing changes.
    match store.rename(old.uuid, r1 + 1000, &renamed).await {
        Err(MetaError::Conflict(u)) => assert_eq!(u, old.uuid),
        other => panic!("rename at stale revision: expected Conflict, got {other:?}"),
    }
    // Target uuid taken: AlreadyExists, nothing changes.
    let taken = fixture(owner);
    let taken_rev = ok(store.insert(&taken).await, "insert taken");
    let mut onto_taken = old.clone();
    onto_taken.uuid = taken.uuid;
    match store.rename(old.uuid, r1, &onto_taken).await {
        Err(MetaError::AlreadyExists(u)) => assert_eq!(u, taken.uuid),
        other => panic!("rename onto existing uuid: expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        ok(store.get(old.uuid).await, "get old").map(|s| (s.image, s.revision)),
        Some((old.clone(), r1)),
        "failed renames leave the old record"
    );
    assert_eq!(
        ok(store.get(taken.uuid).await, "get taken").map(|s| s.revision),
        Some(taken_rev)
    );

    let r2 = ok(store.rename(old.uuid, r1, &renamed).await, "rename");
    assert_ne!(r1, r2);
    assert_eq!(ok(store.get(old.uuid).await, "get old"), None);
    assert_eq!(
        ok(store.get(renamed.uuid).await, "get new"),
        Some(StoredImage {
            image: renamed.clone(),
            revision: r2
        })
    );
    let tag = Predicate::Tag {
        key: "k".into(),
        value: Some("v".into()),
    };
    assert_eq!(matching(store, owner, &[tag]).await, vec![renamed.uuid]);
    let acl = Predicate::AclContains(old.acl[0].to_string());
    assert_eq!(matching(store, owner, &[acl]).await, vec![renamed.uuid]);

    // Renaming a missing record.
    match store.rename(old.uuid, r2, &fixture(owner)).await {
        Err(MetaError::NotFound(u)) => assert_eq!(u, old.uuid),
        other => panic!("rename of missing: expected NotFound, got {other:?}"),
    }
    // Same uuid: behaves as update.
    let mut same = renamed.clone();
    same.name = "same".into();
    let r3 = ok(
        store.rename(renamed.uuid, r2, &same).await,
        "rename to same uuid",
    );
    assert_eq!(
        ok(store.get(same.uuid).await, "get").map(|s| (s.image, s.revision)),
        Some((same, r3))
    );
}

pub async fn delete_reports_existence(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let mut img = rich_fixture(owner);
    img.origin = Some(Uuid::new_v4());
    ok(store.insert(&img).await, "insert");
    assert!(ok(store.delete(img.uuid).await, "delete"), "first delete");
    assert!(!ok(store.delete(img.uuid).await, "delete"), "second delete");
    assert_eq!(ok(store.get(img.uuid).await, "get"), None);
    assert_eq!(matching(store, owner, &[]).await, NO_UUIDS);
    let tag = Predicate::Tag {
        key: "role".into(),
        value: None,
    };
    assert_eq!(matching(store, owner, &[tag]).await, NO_UUIDS);
    let origin = img.origin.unwrap_or_default();
    assert_eq!(
        ok(store.dependents(origin, None).await, "dependents"),
        NO_UUIDS
    );
    // The uuid is free again.
    ok(store.insert(&img).await, "re-insert after delete");
}

pub async fn list_each_predicate(store: &dyn MetaStore) {
    use Predicate as P;
    let owner = Uuid::new_v4();
    let (acct1, acct2) = (Uuid::new_v4(), Uuid::new_v4());

    let mut a = published(owner, Some("2020-01-01T00:00:00Z"));
    a.name = "Base-64".into();
    a.version = "1.2.3".into();
    a.public = true;
    a.tags = Some(object(json!({
        "role": "db", "n": 42, "ok": true, "cfg": {"a": 1}, "long": "x".repeat(101)
    })));
    a.billing_tags = Some(vec!["bt1".into(), "bt2".into()]);
    a.channels = Some(vec!["dev".into()]);
    a.acl = vec![acct1];

    let mut b = published(owner, Some("2021-01-01T00:00:00Z"));
    b.name = "base".into();
    b.version = "2.0.0-rc1".into();
    b.os = "linux".into();
    b.image_type = "lx-dataset".into();
    b.disabled = true;
    b.state = ImageState::Disabled;
    b.tags = Some(object(json!({"role": "web"})));
    b.billing_tags = Some(vec!["bt2".into()]);
    b.channels = Some(vec!["dev".into(), "staging".into()]);
    b.acl = vec![acct2];

    let mut c = fixture(owner);
    c.name = "other".into();
    c.version = "0.1".into();
    c.os = "other".into();
    c.image_type = "zvol".into();
    c.state = ImageState::Creating;

    insert_all(store, &[&b, &c, &a]).await;
    let (a, b, c) = (a.uuid, b.uuid, c.uuid);
    let none: Vec<Uuid> = vec![];
    let s = |v: &str| v.to_owned();
    let tag = |k: &str, v: Option<&str>| P::Tag {
        key: s(k),
        value: v.map(s),
    };

    let cases: Vec<(Vec<Predicate>, Vec<Uuid>)> = vec![
        (vec![], vec![c, a, b]),
        (vec![P::NameEq(s("base"))], vec![b]),
        (vec![P::NameEq(s("Base"))], none.clone()),
        (vec![P::NameContains(s("ase"))], vec![a, b]),
        (vec![P::NameContains(s("Base"))], vec![a]),
        (vec![P::NameContains(s("BASE"))], none.clone()),
        (vec![P::NameContains(s("%"))], none.clone()),
        (vec![P::NameContains(s("_"))], none.clone()),
        (vec![P::NameContains(s(""))], vec![c, a, b]),
        (vec![P::VersionEq(s("1.2.3"))], vec![a]),
        (vec![P::VersionContains(s("rc"))], vec![b]),
        (vec![P::VersionContains(s("RC"))], none.clone()),
        (vec![P::VersionContains(s("."))], vec![c, a, b]),
        (vec![P::OsEq(s("linux"))], vec![b]),
        (vec![P::TypeEq(s("zvol"))], vec![c]),
        (vec![P::TypeNe(s("zvol"))], vec![a, b]),
        (vec![P::Public(true)], vec![a]),
        (vec![P::Public(false)], vec![c, b]),
        (vec![P::Activated(true)], vec![a, b]),
        (vec![P::Activated(false)], vec![c]),
        (vec![P::Disabled(true)], vec![b]),
        (vec![P::Disabled(false)], vec![c, a]),
        (vec![P::StateEq(s("disabled"))], vec![b]),
        (vec![P::StateEq(s("creating"))], vec![c]),
        (vec![P::StateEq(s("active"))], vec![a]),
        (vec![P::Activated(true), P::Disabled(false)], vec![a]),
        (vec![tag("role", None)], vec![a, b]),
        (vec![tag("role", Some("db"))], vec![a]),
        (vec![tag("role", Some("DB"))], none.clone()),
        (vec![tag("role", Some(""))], none.clone()),
        (vec![tag("n", Some("42"))], vec![a]),
        (vec![tag("ok", Some("true"))], vec![a]),
        (vec![tag("cfg", Some(""))], vec![a]),
        (vec![tag("long", Some(""))], vec![a]),
        (vec![tag("missing", None)], none.clone()),
        (vec![tag("role", Some("db")), tag("n", Some("42"))], vec![a]),
        (
            vec![tag("role", Some("db")), tag("n", Some("43"))],
            none.clone(),
        ),
        (vec![P::BillingTag(s("bt2"))], vec![a, b]),
        (
            vec![P::BillingTag(s("bt1")), P::BillingTag(s("bt2"))],
            vec![a],
        ),
        (vec![P::BillingTag(s("bt3"))], none.clone()),
        (vec![P::Channel(s("dev"))], vec![a, b]),
        (vec![P::Channel(s("staging"))], vec![b]),
        (vec![P::Channel(s("nope"))], none.clone()),
        (vec![P::AclContains(acct1.to_string())], vec![a]),
        (vec![P::AclContains(acct2.to_string())], vec![b]),
        (vec![P::AclContains(owner.to_string())], none.clone()),
        (vec![P::PublishedAtGe(ms("2020-06-01T00:00:00Z"))], vec![b]),
        (vec![P::PublishedAtLe(ms("2020-06-01T00:00:00Z"))], vec![a]),
        (vec![P::PublishedAtGe(i64::MIN)], vec![a, b]),
        (vec![P::PublishedAtLe(i64::MAX)], vec![a, b]),
        (
            vec![
                P::PublishedAtGe(ms("2020-01-01T00:00:00Z")),
                P::PublishedAtLe(ms("2020-01-01T00:00:00Z")),
            ],
            vec![a],
        ),
    ];
    for (preds, expected) in cases {
        let got = matching(store, owner, &preds).await;
        assert_eq!(got, expected, "list with {preds:?}");
    }

    // Owner is an exact match too.
    let other_owner = vec![vec![P::OwnerEq(Uuid::new_v4().to_string())]];
    assert_eq!(
        list_uuids(store, other_owner, SortOrder::Asc, None).await,
        none
    );
}

pub async fn list_or_of_conjunctions(store: &dyn MetaStore) {
    use Predicate as P;
    let owner = Uuid::new_v4();
    let other = Uuid::new_v4();
    let account = Uuid::new_v4();

    // owner's private image, other's public image, other's image shared
    // via acl, other's private image: the `account` algorithm's shape.
    let mine = published(owner, Some("2020-01-01T00:00:00Z"));
    let mut public = published(other, Some("2020-01-02T00:00:00Z"));
    public.public = true;
    let mut shared = published(other, Some("2020-01-03T00:00:00Z"));
    shared.acl = vec![account];
    let hidden = published(other, Some("2020-01-04T00:00:00Z"));
    insert_all(store, &[&mine, &public, &shared, &hidden]).await;

    let own = |u: Uuid| P::OwnerEq(u.to_string());
    let any_of = vec![
        vec![own(owner)],
        vec![own(other), P::Public(true), P::Activated(true)],
        vec![
            own(other),
            P::Public(false),
            P::Activated(true),
            P::AclContains(account.to_string()),
        ],
    ];
    assert_eq!(
        list_uuids(store, any_of.clone(), SortOrder::Asc, None).await,
        vec![mine.uuid, public.uuid, shared.uuid],
        "union of conjunctions"
    );
    assert_eq!(
        list_uuids(store, any_of, SortOrder::Desc, Some(2)).await,
        vec![shared.uuid, public.uuid],
        "one sort and one limit over the union"
    );

    // Overlapping conjunctions: each image once.
    let overlap = vec![vec![own(other)], vec![own(other), P::Public(true)]];
    assert_eq!(
        list_uuids(store, overlap, SortOrder::Asc, None).await,
        vec![public.uuid, shared.uuid, hidden.uuid]
    );
}

pub async fn list_sort_and_ties(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let n1 = fixture(owner);
    let n2 = fixture(owner);
    let epoch = published(owner, Some("1970-01-01T00:00:00Z"));
    let p1 = published(owner, Some("2019-05-05T05:05:05.500Z"));
    let p2 = published(owner, Some("2019-05-05T05:05:05.500Z"));
    let p3 = published(owner, Some("2022-01-01T00:00:00Z"));
    insert_all(store, &[&p3, &n1, &p1, &epoch, &p2, &n2]).await;

    // Missing published_at sorts as 0, tying with the epoch; ties by uuid.
    let mut zeros = vec![n1.uuid, n2.uuid, epoch.uuid];
    zeros.sort();
    let mut same = vec![p1.uuid, p2.uuid];
    same.sort();
    let mut asc = zeros;
    asc.extend(same);
    asc.push(p3.uuid);
    let desc: Vec<Uuid> = asc.iter().rev().copied().collect();

    let conj = || vec![vec![Predicate::OwnerEq(owner.to_string())]];
    assert_eq!(
        list_uuids(store, conj(), SortOrder::Asc, None).await,
        asc,
        "ascending"
    );
    assert_eq!(
        list_uuids(store, conj(), SortOrder::Desc, None).await,
        desc,
        "descending"
    );
}

pub async fn list_limit(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let imgs: Vec<ImageRecord> = (1..=5)
        .map(|i| published(owner, Some(&format!("2020-01-0{i}T00:00:00Z"))))
        .collect();
    for img in imgs.iter().rev() {
        ok(store.insert(img).await, "insert");
    }
    let all: Vec<Uuid> = imgs.iter().map(|i| i.uuid).collect();
    let conj = || vec![vec![Predicate::OwnerEq(owner.to_string())]];
    assert_eq!(
        list_uuids(store, conj(), SortOrder::Asc, Some(2)).await,
        all[..2].to_vec()
    );
    assert_eq!(
        list_uuids(store, conj(), SortOrder::Desc, Some(2)).await,
        vec![all[4], all[3]]
    );
    assert_eq!(
        list_uuids(store, conj(), SortOrder::Asc, Some(1)).await,
        vec![all[0]]
    );
    assert_eq!(
        list_uuids(store, conj(), SortOrder::Asc, Some(100)).await,
        all
    );
    assert_eq!(
        list_uuids(store, conj(), SortOrder::Asc, Some(u32::MAX)).await,
        all
    );
}

/// Markers become `PublishedAtGe` (asc) / `PublishedAtLe` (desc), inclusive,
/// and exclude images without `published_at`.
pub async fn list_markers(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let missing = fixture(owner);
    let epoch = published(owner, Some("1970-01-01T00:00:00Z"));
    let m1 = published(owner, Some("2019-01-01T00:00:00Z"));
    let m2 = published(owner, Some("2020-01-01T00:00:00Z"));
    let m3 = published(owner, Some("2021-01-01T00:00:00Z"));
    insert_all(store, &[&missing, &epoch, &m1, &m2, &m3]).await;
    let m2_ms = ms("2020-01-01T00:00:00Z");
    let with = |p: Predicate| vec![vec![Predicate::OwnerEq(owner.to_string()), p]];

    assert_eq!(
        list_uuids(
            store,
            with(Predicate::PublishedAtGe(m2_ms)),
            SortOrder::Asc,
            None
        )
        .await,
        vec![m2.uuid, m3.uuid],
        "ascending marker is inclusive"
    );
    assert_eq!(
        list_uuids(
            store,
            with(Predicate::PublishedAtLe(m2_ms)),
            SortOrder::Desc,
            None
        )
        .await,
        vec![m2.uuid, m1.uuid, epoch.uuid],
        "descending marker is inclusive and excludes missing published_at"
    );
    assert_eq!(
        list_uuids(
            store,
            with(Predicate::PublishedAtGe(0)),
            SortOrder::Asc,
            Some(2)
        )
        .await,
        vec![epoch.uuid, m1.uuid],
        "marker at 0 keeps the epoch image, not the unpublished one"
    );
}

pub async fn list_matching_nothing(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let img = published(owner, Some("2020-01-01T00:00:00Z"));
    ok(store.insert(&img).await, "insert");

    assert_eq!(
        list_uuids(store, vec![], SortOrder::Asc, None).await,
        NO_UUIDS,
        "empty any_of matches nothing"
    );
    assert_eq!(
        list_uuids(store, vec![vec![]], SortOrder::Asc, Some(0)).await,
        NO_UUIDS,
        "limit 0"
    );
    let all = ok(store.list(&ImageQuery::all()).await, "list all");
    assert!(
        all.iter().any(|i| i == &img),
        "vec![vec![]] matches everything"
    );
}

pub async fn dependents_by_origin_and_channel(store: &dyn MetaStore) {
    let owner = Uuid::new_v4();
    let origin = Uuid::new_v4();
    let mut d1 = published(owner, Some("2021-01-01T00:00:00Z"));
    d1.origin = Some(origin);
    d1.channels = Some(vec!["dev".into()]);
    let mut d2 = fixture(owner);
    d2.origin = Some(origin);
    d2.channels = Some(vec!["staging".into(), "dev".into()]);
    let mut d3 = published(owner, Some("2020-01-01T00:00:00Z"));
    d3.origin = Some(origin);
    let mut unrelated = published(owner, Some("2020-01-01T00:00:00Z"));
    unrelated.origin = Some(Uuid::new_v4());
    unrelated.channels = Some(vec!["dev".into()]);
    insert_all(store, &[&d1, &d2, &d3, &unrelated]).await;

    assert_eq!(
        ok(store.dependents(origin, None).await, "dependents"),
        vec![d2.uuid, d3.uuid, d1.uuid],
        "all dependents, by published_at (missing = 0)"
    );
    assert_eq!(
        ok(store.dependents(origin, Some("dev")).await, "dependents"),
        vec![d2.uuid, d1.uuid]
    );
    assert_eq!(
        ok(
            store.dependents(origin, Some("staging")).await,
            "dependents"
        ),
        vec![d2.uuid]
    );
    assert_eq!(
        ok(store.dependents(origin, Some("nope")).await, "dependents"),
        NO_UUIDS
    );
    assert_eq!(
        ok(store.dependents(Uuid::new_v4(), None).await, "dependents"),
        NO_UUIDS
    );
}

pub async fn count_by_state_counts(store: &dyn MetaStore) {
    let counts = |v: Vec<(String, u64)>| -> BTreeMap<String, u64> {
        let n = v.len();
        let map: BTreeMap<String, u64> = v.into_iter().collect();
        assert_eq!(map.len(), n, "each state reported once");
        map
    };
    let before = counts(ok(store.count_by_state().await, "count_by_state"));
    let owner = Uuid::new_v4();
    let mut f1 = fixture(owner);
    f1.state = ImageState::Failed;
    let mut f2 = fixture(owner);
    f2.state = ImageState::Failed;
    let mut c1 = fixture(owner);
    c1.state = ImageState::Creating;
    insert_all(store, &[&f1, &f2, &c1]).await;
    let after = counts(ok(store.count_by_state().await, "count_by_state"));

    // `>=`: other writers may share the database.
    let get = |m: &BTreeMap<String, u64>, s: &str| m.get(s).copied().unwrap_or(0);
    assert!(get(&after, "failed") >= get(&before, "failed") + 2);
    assert!(get(&after, "creating") > get(&before, "creating"));
    assert!(
        after.keys().all(|k| k.parse::<ImageState>().is_ok()),
        "states are reported by name: {after:?}"
    );
    assert!(after.values().all(|&n| n > 0), "no zero counts: {after:?}");
}

// ---------------------------------------------------------------------------
// Jobs

/// A queued job about `image_uuid`, created at `created_at`.
pub fn job_fixture(image_uuid: Uuid, created_at: &str) -> JobRecord {
    JobRecord {
        uuid: Uuid::new_v4(),
        image_uuid,
        name: "import-remote-image".into(),
        execution: JobExecution::Queued,
        params: json!({"source": "https://images.example.com", "image_uuid": image_uuid.to_string(), "n": [1, 2.5, "ü"]}),
        chain_results: vec![],
        created_at: created_at.into(),
        started_at: None,
        finished_at: None,
        lease: None,
        attempts: 0,
    }
}

/// A far-away "now" so that leases of other runs sharing the database
/// never get in the way (and ours never expire by accident).
const NOW: i64 = 4_000_000_000_000;
const LEASE: i64 = 60_000;

/// Finish `job` (held by `owner`) so it is not claimable any more.
async fn finish_job(store: &dyn MetaStore, job: &JobRecord, owner: &str) {
    let mut done = job.clone();
    done.execution = JobExecution::Succeeded;
    done.lease = None;
    assert!(
        ok(store.update_job(&done, owner).await, "update_job (finish)"),
        "the lease holder can finish its job"
    );
}

pub async fn jobs_insert_get_list(store: &dyn MetaStore) {
    let image = Uuid::new_v4();
    let first = job_fixture(image, "2030-01-01T00:00:00.000Z");
    let second = job_fixture(image, "2030-01-01T00:00:01.000Z");
    let other = job_fixture(Uuid::new_v4(), "2030-01-01T00:00:00.500Z");
    for j in [&second, &first, &other] {
        ok(store.insert_job(j).await, "insert_job");
    }
    assert!(
        matches!(store.insert_job(&first).await, Err(MetaError::AlreadyExists(u)) if u == first.uuid),
        "inserting a job uuid twice is AlreadyExists"
    );
    assert_eq!(
        ok(store.get_job(first.uuid).await, "get_job"),
        Some(first.clone()),
        "round trip"
    );
    assert_eq!(ok(store.get_job(Uuid::new_v4()).await, "get_job"), None);
    let listed = ok(store.image_jobs(image).await, "image_jobs");
    assert_eq!(
        listed,
        vec![first.clone(), second.clone()],
        "an image's jobs, oldest first"
    );
    assert_eq!(
        ok(store.image_jobs(Uuid::new_v4()).await, "image_jobs"),
        vec![]
    );
    for j in [&first, &second, &other] {
        let claimed = ok(
            store.claim_job(j.uuid, "suite", NOW, NOW + LEASE).await,
            "claim_job",
        );
        finish_job(
            store,
            &claimed.unwrap_or_else(|| panic!("claim {}", j.uuid)),
            "suite",
        )
        .await;
    }
}

pub async fn jobs_claim_lease_and_release(store: &dyn MetaStore) {
    let job = job_fixture(Uuid::new_v4(), "2030-01-02T00:00:00.000Z");
    // Owner names of our own: other runs may share the database.
    let (a_id, b_id, c_id) = (owner_name("a"), owner_name("b"), owner_name("c"));
    ok(store.insert_job(&job).await, "insert_job");
    let claimable = ok(store.claimable_jobs(NOW, 100_000).await, "claimable_jobs");
    assert!(
        claimable.contains(&job.uuid),
        "a queued job without lease is claimable"
    );

    let a = ok(
        store.claim_job(job.uuid, &a_id, NOW, NOW + LEASE).await,
        "claim_job",
    )
    .unwrap_or_else(|| panic!("a free job can be claimed"));
    assert_eq!(
        a.execution,
        JobExecution::Running,
        "claiming starts the job"
    );
    assert_eq!(a.attempts, 1);
    assert_eq!(
        a.lease,
        Some(JobLease {
            owner: a_id.clone(),
            expires_ms: NOW + LEASE
        })
    );
    assert_eq!(
        ok(
            store.claim_job(job.uuid, &b_id, NOW + 1, NOW + LEASE).await,
            "claim_job"
        ),
        None,
        "a live lease cannot be taken"
    );
    let claimable = ok(
        store.claimable_jobs(NOW + 1, 100_000).await,
        "claimable_jobs",
    );
    assert!(
        !claimable.contains(&job.uuid),
        "a leased job is not claimable"
    );

    // Progress by the holder is written; by anyone else refused.
    let mut progress = a.clone();
    progress
        .chain_results
        .push(json!({"name": "step", "result": "ok"}));
    progress.started_at = Some("2030-01-02T00:00:01.000Z".into());
    progress.lease = Some(JobLease {
        owner: a_id.clone(),
        expires_ms: NOW + 2 * LEASE,
    });
    assert!(
        !ok(store.update_job(&progress, &b_id).await, "update_job"),
        "not the lease holder"
    );
    assert!(
        ok(store.update_job(&progress, &a_id).await, "update_job"),
        "the lease holder"
    );
    assert_eq!(
        ok(store.get_job(job.uuid).await, "get_job"),
        Some(progress.clone())
    );

    // Expired: another instance takes over; the old holder has lost it.
    let t = NOW + 2 * LEASE + 1;
    let claimable = ok(store.claimable_jobs(t, 100_000).await, "claimable_jobs");
    assert!(
        claimable.contains(&job.uuid),
        "an expired lease makes the job claimable"
    );
    let b = ok(
        store.claim_job(job.uuid, &b_id, t, t + LEASE).await,
        "claim_job",
    )
    .unwrap_or_else(|| panic!("an expired lease can be taken over"));
    assert_eq!(b.attempts, 2);
    assert_eq!(
        b.chain_results, progress.chain_results,
        "progress survives a take-over"
    );
    assert!(
        !ok(store.update_job(&progress, &a_id).await, "update_job"),
        "a lost lease"
    );

    // Released (graceful shutdown): claimable at once.
    assert_eq!(ok(store.release_jobs(&b_id).await, "release_jobs"), 1);
    assert_eq!(
        ok(store.get_job(job.uuid).await, "get_job").and_then(|j| j.lease),
        None
    );
    let c = ok(
        store.claim_job(job.uuid, &c_id, t, t + LEASE).await,
        "claim_job",
    )
    .unwrap_or_else(|| panic!("a released job can be claimed"));
    assert_eq!(c.attempts, 3);
    finish_job(store, &c, &c_id).await;
}

pub async fn jobs_concurrent_claims_one_wins(store: &dyn MetaStore) {
    let job = job_fixture(Uuid::new_v4(), "2030-01-03T00:00:00.000Z");
    ok(store.insert_job(&job).await, "insert_job");
    let owners: Vec<String> = (0..8)
        .map(|i| owner_name(&format!("instance-{i}")))
        .collect();
    let claims = owners
        .iter()
        .map(|o| store.claim_job(job.uuid, o, NOW, NOW + LEASE));
    let results = futures_join_all(claims).await;
    let winners: Vec<JobRecord> = results
        .into_iter()
        .filter_map(|r| ok(r, "claim_job"))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one of eight racing claims wins");
    let winner = &winners[0];
    let owner = winner
        .lease
        .as_ref()
        .map(|l| l.owner.clone())
        .unwrap_or_default();
    assert_eq!(winner.attempts, 1);
    finish_job(store, winner, &owner).await;
}

/// Only finished jobs that finished before the cut-off go; unfinished
/// ones stay whatever their timestamps say. The timestamps lie in 1971 so
/// that runs sharing the database never see each other's jobs pruned.
pub async fn jobs_pruned_when_finished_long_ago(store: &dyn MetaStore) {
    let job_in = |execution: JobExecution, finished_at: &str| {
        let mut job = job_fixture(Uuid::new_v4(), "1971-01-01T00:00:00.000Z");
        job.execution = execution;
        job.finished_at = Some(finished_at.to_string());
        job
    };
    let long_ago = "1971-01-01T12:00:00.000Z";
    let recently = "1971-01-02T12:00:00.000Z";
    let pruned = [
        job_in(JobExecution::Succeeded, long_ago),
        job_in(JobExecution::Failed, long_ago),
        job_in(JobExecution::Canceled, long_ago),
    ];
    let kept = [
        job_in(JobExecution::Succeeded, recently),
        job_in(JobExecution::Queued, long_ago),
        job_in(JobExecution::Running, long_ago),
    ];
    for job in pruned.iter().chain(&kept) {
        ok(store.insert_job(job).await, "insert_job");
    }
    // A run sharing the database may prune these first: the count is not
    // checked, only what is left.
    ok(
        store.prune_finished_jobs("1971-01-02T00:00:00.000Z").await,
        "prune_finished_jobs",
    );
    for job in &pruned {
        assert_eq!(
            ok(store.get_job(job.uuid).await, "get_job"),
            None,
            "a {} job finished before the cut-off is pruned",
            job.execution.as_str()
        );
    }
    for job in &kept {
        assert!(
            ok(store.get_job(job.uuid).await, "get_job").is_some(),
            "a {} job finished at {:?} stays",
            job.execution.as_str(),
            job.finished_at
        );
    }
}

pub async fn jobs_finished_are_not_claimable(store: &dyn MetaStore) {
    let job = job_fixture(Uuid::new_v4(), "2030-01-04T00:00:00.000Z");
    let (a_id, b_id) = (owner_name("a"), owner_name("b"));
    ok(store.insert_job(&job).await, "insert_job");
    let claimed = ok(
        store.claim_job(job.uuid, &a_id, NOW, NOW + LEASE).await,
        "claim_job",
    )
    .unwrap_or_else(|| panic!("claim"));
    let mut failed = claimed.clone();
    failed.execution = JobExecution::Failed;
    failed.finished_at = Some("2030-01-04T00:00:05.000Z".into());
    failed.lease = None;
    assert!(ok(store.update_job(&failed, &a_id).await, "update_job"));
    let later = NOW + 10 * LEASE;
    assert!(!ok(store.claimable_jobs(later, 100_000).await, "claimable_jobs").contains(&job.uuid));
    assert_eq!(
        ok(
            store.claim_job(job.uuid, &b_id, later, later + LEASE).await,
            "claim_job"
        ),
        None
    );
    assert_eq!(
        ok(store.release_jobs(&a_id).await, "release_jobs"),
        0,
        "finished jobs hold no lease"
    );
    assert_eq!(ok(store.get_job(job.uuid).await, "get_job"), Some(failed));
}

fn owner_name(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

/// Poll every future concurrently (no extra dependency for `join_all`).
pub(crate) async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, fut) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

// ---------------------------------------------------------------------------
// Upload sessions

/// A fresh session of a fresh image, expiring at `expires_ms`.
pub fn upload_fixture(expires_ms: i64) -> UploadSession {
    UploadSession {
        id: Uuid::new_v4(),
        image_uuid: Uuid::new_v4(),
        compression: "gzip".into(),
        sha1: Some("97f20b32c2016782257176fb58a35e5044f05840".into()),
        dataset_guid: None,
        stor: "local".into(),
        blob_key: format!("images/a/{}-file0-staged", Uuid::new_v4()),
        handle: Uuid::new_v4().simple().to_string(),
        offset: 0,
        size: None,
        parts: vec![],
        digests: "AQ==".into(),
        created_ms: NOW,
        expires_ms,
        lease: None,
    }
}

pub async fn uploads_insert_get_delete(store: &dyn MetaStore) {
    let mut upload = upload_fixture(NOW + LEASE);
    upload.size = Some(21_474_836_480);
    upload.dataset_guid = Some("1234".into());
    ok(store.insert_upload(&upload).await, "insert_upload");
    assert!(
        matches!(store.insert_upload(&upload).await, Err(MetaError::AlreadyExists(u)) if u == upload.id),
        "inserting an upload id twice is AlreadyExists"
    );
    assert_eq!(
        ok(store.get_upload(upload.id).await, "get_upload"),
        Some(upload.clone()),
        "round trip"
    );
    assert_eq!(
        ok(store.get_upload(Uuid::new_v4()).await, "get_upload"),
        None
    );
    let handles = ok(store.upload_handles().await, "upload_handles");
    assert!(handles.contains(&upload.handle), "handle listed");
    assert!(ok(store.delete_upload(upload.id).await, "delete_upload"));
    assert!(!ok(
        store.delete_upload(upload.id).await,
        "delete_upload again"
    ));
    assert_eq!(ok(store.get_upload(upload.id).await, "get_upload"), None);
    let handles = ok(store.upload_handles().await, "upload_handles");
    assert!(!handles.contains(&upload.handle), "handle gone");
}

pub async fn uploads_lease_advance_release(store: &dyn MetaStore) {
    let upload = upload_fixture(NOW + 10 * LEASE);
    let (a_id, b_id) = (owner_name("ua"), owner_name("ub"));
    ok(store.insert_upload(&upload).await, "insert_upload");

    let a = ok(
        store.claim_upload(upload.id, &a_id, NOW, NOW + LEASE).await,
        "claim_upload",
    )
    .unwrap_or_else(|| panic!("a free upload can be claimed"));
    assert_eq!(
        a.lease,
        Some(UploadLease {
            owner: a_id.clone(),
            expires_ms: NOW + LEASE
        })
    );
    assert_eq!(
        ok(
            store
                .claim_upload(upload.id, &b_id, NOW + 1, NOW + LEASE)
                .await,
            "claim_upload"
        ),
        None,
        "a live lease cannot be taken"
    );
    assert!(ok(
        store.renew_upload(upload.id, &a_id, NOW + 2 * LEASE).await,
        "renew"
    ));
    assert!(!ok(
        store.renew_upload(upload.id, &b_id, NOW + 3 * LEASE).await,
        "renew by b"
    ));

    // A chunk: recorded by the holder, from the offset it started at.
    let mut progressed = a.clone();
    progressed.offset = 5 << 20;
    progressed.size = Some(9 << 20);
    progressed.parts = vec!["\"etag-1\"".into()];
    progressed.digests = "AQID".into();
    progressed.expires_ms = NOW + 20 * LEASE;
    assert!(
        !ok(
            store.advance_upload(&progressed, &b_id, 0).await,
            "advance by b"
        ),
        "not the lease holder"
    );
    assert!(
        !ok(
            store.advance_upload(&progressed, &a_id, 1).await,
            "advance from 1"
        ),
        "not from the stored offset"
    );
    assert!(
        ok(store.advance_upload(&progressed, &a_id, 0).await, "advance"),
        "the lease holder, from the stored offset"
    );
    let got = ok(store.get_upload(upload.id).await, "get_upload")
        .unwrap_or_else(|| panic!("upload still there"));
    let mut want = progressed.clone();
    want.lease = None;
    assert_eq!(got, want, "advance records progress and ends the lease");
    assert!(
        !ok(
            store.advance_upload(&progressed, &a_id, 0).await,
            "advance again"
        ),
        "the lease ended with the advance"
    );

    // An expired lease can be taken over; release ends only one's own.
    let b = ok(
        store.claim_upload(upload.id, &b_id, NOW, NOW + LEASE).await,
        "claim by b",
    );
    assert!(b.is_some(), "a free upload can be claimed again");
    let a2 = ok(
        store
            .claim_upload(upload.id, &a_id, NOW + LEASE + 1, NOW + 2 * LEASE)
            .await,
        "claim after expiry",
    );
    assert!(a2.is_some(), "an expired lease can be taken over");
    assert!(!ok(
        store.release_upload(upload.id, &b_id).await,
        "release by b"
    ));
    assert!(ok(
        store.release_upload(upload.id, &a_id).await,
        "release by a"
    ));
    let got = ok(store.get_upload(upload.id).await, "get_upload");
    assert_eq!(got.and_then(|u| u.lease), None, "released");
    assert!(ok(store.delete_upload(upload.id).await, "delete_upload"));
    assert_eq!(
        ok(
            store.claim_upload(upload.id, &a_id, NOW, NOW + LEASE).await,
            "claim gone"
        ),
        None,
        "a deleted upload cannot be claimed"
    );
}

pub async fn uploads_concurrent_claims_one_wins(store: &dyn MetaStore) {
    let upload = upload_fixture(NOW + LEASE);
    ok(store.insert_upload(&upload).await, "insert_upload");
    let owners: Vec<String> = (0..8).map(|i| owner_name(&format!("uc{i}"))).collect();
    let claims = owners
        .iter()
        .map(|o| store.claim_upload(upload.id, o, NOW, NOW + LEASE));
    let results = futures_join_all(claims).await;
    let won = results
        .into_iter()
        .filter(|r| matches!(r, Ok(Some(_))))
        .count();
    assert_eq!(won, 1, "exactly one concurrent claim wins");
    ok(store.delete_upload(upload.id).await, "delete_upload");
}

/// A holder that starts again ends the leases of its earlier run, and
/// only those: not its current run's, not another holder's (also not one
/// whose name merely extends its own).
pub async fn uploads_stale_leases_of_a_restarted_holder(store: &dyn MetaStore) {
    let holder = format!("{}/", owner_name("host@127.0.0.1:80"));
    let longer = format!("{}0/", holder.trim_end_matches('/'));
    let owners = [
        format!("{holder}boot-old/req-1"),
        format!("{holder}boot-new/req-2"),
        format!("{longer}boot-old/req-3"),
        format!("{}/boot-old/req-4", owner_name("other")),
    ];
    let mut ids = Vec::new();
    for owner in &owners {
        let upload = upload_fixture(NOW + 10 * LEASE);
        ok(store.insert_upload(&upload).await, "insert_upload");
        let claimed = ok(
            store.claim_upload(upload.id, owner, NOW, NOW + LEASE).await,
            "claim_upload",
        );
        assert!(claimed.is_some(), "a free upload can be claimed");
        ids.push(upload.id);
    }
    let released = ok(
        store
            .release_stale_upload_leases(&holder, &format!("{holder}boot-new/"))
            .await,
        "release_stale_upload_leases",
    );
    assert_eq!(released, 1, "only the earlier run's lease ends");
    let mut leased = Vec::new();
    for id in &ids {
        let upload = ok(store.get_upload(*id).await, "get_upload");
        leased.push(upload.and_then(|u| u.lease).is_some());
        ok(store.delete_upload(*id).await, "delete_upload");
    }
    assert_eq!(leased, [false, true, true, true]);
}

pub async fn uploads_expiry(store: &dyn MetaStore) {
    // Far in the past, so that other runs' sessions do not interfere with
    // what "expired before" means for ours.
    let t0 = 1_000_000;
    let old = upload_fixture(t0);
    let older = upload_fixture(t0 - 1);
    let live = upload_fixture(NOW + LEASE);
    let leased = upload_fixture(t0 + 1);
    for u in [&old, &older, &live, &leased] {
        ok(store.insert_upload(u).await, "insert_upload");
    }
    let holder = owner_name("ue");
    assert!(ok(
        store
            .claim_upload(leased.id, &holder, t0, NOW + LEASE)
            .await,
        "claim"
    )
    .is_some());
    let expired: Vec<Uuid> = ok(store.expired_uploads(NOW, 100_000).await, "expired_uploads")
        .into_iter()
        .map(|u| u.id)
        .collect();
    let ours: Vec<Uuid> = expired
        .iter()
        .copied()
        .filter(|id| [old.id, older.id, live.id, leased.id].contains(id))
        .collect();
    assert_eq!(
        ours,
        vec![older.id, old.id, leased.id],
        "expired sessions, oldest expiry first"
    );
    assert!(
        !ok(
            store.delete_expired_upload(live.id, NOW).await,
            "delete live"
        ),
        "a live session is not deleted"
    );
    assert!(
        !ok(
            store.delete_expired_upload(leased.id, NOW).await,
            "delete leased"
        ),
        "an expired session under a live lease is not deleted"
    );
    assert!(ok(
        store.delete_expired_upload(old.id, NOW).await,
        "delete expired"
    ));
    assert!(ok(
        store.delete_expired_upload(older.id, NOW).await,
        "delete expired"
    ));
    assert!(
        ok(
            store
                .delete_expired_upload(leased.id, NOW + 2 * LEASE)
                .await,
            "after lease"
        ),
        "once its lease is over too"
    );
    assert_eq!(ok(store.get_upload(old.id).await, "get"), None);
    assert!(ok(store.get_upload(live.id).await, "get").is_some());
    ok(store.delete_upload(live.id).await, "delete_upload");
}
