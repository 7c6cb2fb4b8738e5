//! Retention rules (docs/lifecycle.md "Retention rules"): the rules API,
//! the dry run, a run as a job, and (PostgreSQL) one run across three
//! instances.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

const DAY_MS: i64 = 86_400_000;
/// dc mode: AdminImportImage keeps the owner it is given.
const DC: &str = "mode = \"dc\"\n";

fn days_ago(days: i64) -> String {
    let ms = chrono::Utc::now().timestamp_millis() - days * DAY_MS;
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// An active image of `owner` named `name`, published `days` ago, with
/// an optional origin: AdminImportImage keeps `published_at` (and, in dc
/// mode, the owner).
async fn image(s: &TestServer, owner: &str, name: &str, days: i64, origin: Option<&str>) -> String {
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut body = json!({"v": 2, "uuid": uuid, "owner": owner, "name": name,
        "version": format!("{days}d-{}", &uuid[..8]), "type": "zone-dataset", "os": "smartos",
        "public": true, "published_at": days_ago(days)});
    if let Some(o) = origin {
        body["origin"] = json!(o);
    }
    let (status, img) = s
        .post_json(&format!("/images/{uuid}?action=import"), &body)
        .await;
    assert_eq!(status, 200, "import: {img}");
    let (status, img) = s.upload(&uuid, b"image bytes".to_vec()).await;
    assert_eq!(status, 200, "upload: {img}");
    let (status, img) = s.activate(&uuid).await;
    assert_eq!(status, 200, "activate: {img}");
    assert_eq!(
        img["published_at"], body["published_at"],
        "published_at kept"
    );
    uuid
}

fn uuids(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["uuid"].as_str().unwrap().to_string())
        .collect()
}

fn set(items: &[&String]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Wait for a job to finish; its final object.
async fn finished_job(s: &TestServer, job: &str) -> Value {
    for _ in 0..300 {
        let (status, got) = s.get_json(&format!("/jobs/{job}")).await;
        assert_eq!(status, 200, "{got}");
        if got["execution"] != "queued" && got["execution"] != "running" {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("job {job} did not finish");
}

async fn add_rule(s: &TestServer, rule: Value) -> Value {
    let (status, got) = s.post_json("/retention/rules", &rule).await;
    assert_eq!(status, 201, "{got}");
    got
}

#[tokio::test]
async fn rules_api_validation_config_rules_and_operators_only() {
    let toml = format!(
        "[retention]\n[[retention.rules]]\nname = \"base-*\"\nowner = \"{BOB}\"\nkeep_versions = 3\n"
    );
    let s = TestServer::spawn_with(&toml).await;
    let (status, rules) = s.get_json("/retention/rules").await;
    assert_eq!(status, 200);
    assert_eq!(
        rules,
        json!([{"id": "config-1", "source": "config", "owner": BOB, "name": "base-*",
            "keep_versions": 3, "keep_days": null}])
    );

    for (body, field) in [
        (json!({"name": "x"}), "keep_versions"),
        (json!({"name": "x", "keep_versions": 0}), "keep_versions"),
        (json!({"name": "x", "keep_days": -3}), "keep_days"),
        (json!({"name": "", "keep_days": 3}), "name"),
        (json!({"keep_days": 3}), "name"),
        (
            json!({"name": "x", "keep_days": 3, "owner": "bob"}),
            "owner",
        ),
        (json!({"name": "x", "keep_days": 3, "extra": 1}), "extra"),
    ] {
        let got = s.post_json("/retention/rules", &body).await;
        assert_error(&got, 422, "InvalidParameter", None);
        assert_eq!(got.1["errors"][0]["field"], field, "{body}: {}", got.1);
    }
    let got = status_json(s.post("/retention/rules").send().await.unwrap()).await;
    assert_error(&got, 422, "InvalidParameter", None);

    let rule = add_rule(
        &s,
        json!({"name": "web", "owner": OWNER, "keep_versions": 2, "keep_days": 30}),
    )
    .await;
    let id = rule["id"].as_str().unwrap().to_string();
    assert_eq!(rule["source"], "api");
    assert_eq!(rule["owner"], OWNER);
    assert!(rule["created_at"].is_string());
    let (_, rules) = s.get_json("/retention/rules").await;
    assert_eq!(rules.as_array().unwrap().len(), 2);
    assert_eq!(rules[1], rule);

    // Operators only.
    let acct = format!("account={OWNER}");
    for got in [
        s.get_json(&format!("/retention/rules?{acct}")).await,
        s.get_json(&format!("/retention/runs?{acct}")).await,
        s.post_json(
            &format!("/retention/rules?{acct}"),
            &json!({"name": "x", "keep_days": 1}),
        )
        .await,
        status_json(
            s.delete(&format!("/retention/rules/{id}?{acct}"))
                .send()
                .await
                .unwrap(),
        )
        .await,
        s.post_json(&format!("/retention/runs?dry_run=true&{acct}"), &json!({}))
            .await,
    ] {
        assert_error(
            &got,
            403,
            "OperatorOnly",
            Some("this endpoint may only be called by an operator"),
        );
    }

    // Config rules stay; unknown ids are 404; a rule deletes once.
    let got = status_json(s.delete("/retention/rules/config-1").send().await.unwrap()).await;
    assert_error(&got, 422, "InvalidParameter", None);
    assert!(got.1["message"]
        .as_str()
        .unwrap()
        .contains("configuration file"));
    let delete = || async {
        s.delete(&format!("/retention/rules/{id}"))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(delete().await, 204);
    assert_eq!(delete().await, 404);
    let got = status_json(s.delete("/retention/rules/nope").send().await.unwrap()).await;
    assert_error(&got, 404, "ResourceNotFound", None);
    let got = s
        .post_json("/retention/runs?dry_run=maybe", &json!({}))
        .await;
    assert_error(&got, 422, "InvalidParameter", None);
}

#[tokio::test]
async fn config_rule_is_invalid_at_start_up() {
    let bad = "[retention]\n[[retention.rules]]\nname = \"x\"\n";
    let err = imgapi_server::config::Config::from_toml(bad).unwrap_err();
    assert!(err.to_string().contains("config-1"), "{err}");
}

/// The set-up of the plan tests: what each image is for.
struct Fixture {
    /// OWNER `base`: the two oldest of four go (keep_versions 2).
    base: Vec<String>,
    /// OWNER `other`: outside the `ba*` pattern.
    other: Vec<String>,
    /// BOB `base`: the 40-day one goes (keep_days 35 in config).
    bob: Vec<String>,
    /// CAROL `solo`: one old version, kept as the last active one.
    solo: String,
    /// OWNER `chain`: c1 <- c2 <- c3 <- c4; keep_versions 1 keeps c4, so
    /// its whole origin chain stays.
    chain: Vec<String>,
    /// OWNER `dyn`: keep_versions 1 and keep_days 15: 30 and 20 go.
    both: Vec<String>,
}

async fn fixture(s: &TestServer) -> Fixture {
    let mut base = Vec::new();
    for days in [40, 30, 20, 10] {
        base.push(image(s, OWNER, "base", days, None).await);
    }
    let other = vec![
        image(s, OWNER, "other", 40, None).await,
        image(s, OWNER, "other", 30, None).await,
    ];
    let bob = vec![
        image(s, BOB, "base", 40, None).await,
        image(s, BOB, "base", 30, None).await,
    ];
    let solo = image(s, CAROL, "solo", 100, None).await;
    let mut chain: Vec<String> = Vec::new();
    for days in [50, 40, 30, 5] {
        let origin = chain.last().cloned();
        chain.push(image(s, OWNER, "chain", days, origin.as_deref()).await);
    }
    let mut both = Vec::new();
    for days in [30, 20, 10, 5] {
        both.push(image(s, OWNER, "dyn", days, None).await);
    }
    add_rule(
        s,
        json!({"owner": OWNER, "name": "ba*", "keep_versions": 2}),
    )
    .await;
    add_rule(s, json!({"owner": CAROL, "name": "s?lo", "keep_days": 5})).await;
    add_rule(
        s,
        json!({"owner": OWNER, "name": "chain", "keep_versions": 1}),
    )
    .await;
    add_rule(
        s,
        json!({"owner": OWNER, "name": "dyn", "keep_versions": 1, "keep_days": 15}),
    )
    .await;
    Fixture {
        base,
        other,
        bob,
        solo,
        chain,
        both,
    }
}

fn config_rule() -> String {
    format!("{DC}[retention]\n[[retention.rules]]\nname = \"base\"\nowner = \"{BOB}\"\nkeep_days = 35\n")
}

#[tokio::test]
async fn dry_run_lists_exactly_what_a_run_deletes() {
    let s = TestServer::spawn_with(&config_rule()).await;
    let (status, empty) = s
        .post_json("/retention/runs?dry_run=true", &json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(empty, json!({"delete": [], "kept": []}));
    let f = fixture(&s).await;

    let (status, plan) = s
        .post_json("/retention/runs?dry_run=true", &json!({}))
        .await;
    assert_eq!(status, 200, "{plan}");
    let expected = set(&[&f.base[0], &f.base[1], &f.bob[0], &f.both[0], &f.both[1]]);
    assert_eq!(uuids(&plan["delete"]), expected, "{plan}");
    // Oldest first, each with its rule and manifest fields.
    let listed = plan["delete"].as_array().unwrap();
    let when: Vec<&str> = listed
        .iter()
        .map(|d| d["published_at"].as_str().unwrap())
        .collect();
    assert!(when.windows(2).all(|w| w[0] <= w[1]), "{plan}");
    let bobs = listed
        .iter()
        .find(|d| d["uuid"] == f.bob[0].as_str())
        .unwrap();
    assert_eq!(bobs["rule"], "config-1", "{plan}");
    assert_eq!(bobs["owner"], BOB);
    assert_eq!(bobs["name"], "base");
    assert!(bobs.get("reason").is_none());
    let kept: Vec<(String, String)> = plan["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["uuid"].as_str().unwrap().to_string(),
                k["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let origin_of_c4 = format!("origin of {}", f.chain[3]);
    assert_eq!(
        kept,
        vec![
            (f.solo.clone(), "last active version".to_string()),
            (f.chain[0].clone(), origin_of_c4.clone()),
            (f.chain[1].clone(), origin_of_c4.clone()),
            (f.chain[2].clone(), origin_of_c4),
        ],
        "{plan}"
    );
    // A dry run deletes nothing.
    for uuid in &expected {
        assert_eq!(s.get_json(&format!("/images/{uuid}")).await.0, 200);
    }

    // The run deletes exactly the dry run's list, as a job.
    let (status, job) = s.post_json("/retention/runs", &json!({})).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["name"], "retention");
    let (status, runs) = s.get_json("/retention/runs").await;
    assert_eq!(status, 200, "{runs}");
    assert_eq!(runs[0]["uuid"], job["uuid"], "the newest run first: {runs}");
    assert_eq!(job["params"]["task"], "retention");
    let job = finished_job(&s, job["uuid"].as_str().unwrap()).await;
    assert_eq!(job["execution"], "succeeded", "{job}");
    let steps = job["chain_results"].as_array().unwrap();
    assert_eq!(steps[0]["name"], "plan");
    assert_eq!(steps[0]["result"], "5 to delete, 4 kept");
    let deleted: BTreeSet<String> = steps
        .iter()
        .filter(|st| st["name"] == "delete_image")
        .map(|st| {
            assert!(
                st["result"].as_str().unwrap().starts_with("deleted"),
                "{st}"
            );
            st["image_uuid"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(deleted, expected);
    let summary = steps.last().unwrap();
    assert_eq!(summary["name"], "summary");
    let text = summary["result"].as_str().unwrap();
    assert!(text.starts_with("deleted 5 ["), "{text}");
    assert!(text.contains("kept 0 []; failed 0 []"), "{text}");
    for uuid in &expected {
        assert!(text.contains(uuid.as_str()));
    }

    // Gone from every read path; the rest intact with its file.
    for uuid in &expected {
        assert_eq!(s.get_json(&format!("/images/{uuid}")).await.0, 404);
    }
    let rest = [
        &f.base[2],
        &f.base[3],
        &f.other[0],
        &f.other[1],
        &f.bob[1],
        &f.solo,
        &f.chain[0],
        &f.chain[1],
        &f.chain[2],
        &f.chain[3],
        &f.both[2],
        &f.both[3],
    ];
    for uuid in rest {
        let (status, img) = s.get_json(&format!("/images/{uuid}")).await;
        assert_eq!(status, 200);
        assert_eq!(img["state"], "active");
        let resp = s.get(&format!("/images/{uuid}/file")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(&resp.bytes().await.unwrap()[..], b"image bytes");
    }
    // Nothing is left to do.
    let (_, again) = s
        .post_json("/retention/runs?dry_run=true", &json!({}))
        .await;
    assert_eq!(again["delete"], json!([]), "{again}");
}

/// A protected image is never removed: the plan keeps it ("protected") and
/// the run leaves it.
#[tokio::test]
async fn protected_images_stay() {
    let s = TestServer::spawn_with(&config_rule()).await;
    let f = fixture(&s).await;
    let protect = |uuid: String| {
        let s = &s;
        async move {
            let resp = s
                .put(&format!("/images/{uuid}/lifecycle"))
                .json(&json!({"protected": true}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
    };
    protect(f.base[0].clone()).await;
    let (status, plan) = s
        .post_json("/retention/runs?dry_run=true", &json!({}))
        .await;
    assert_eq!(status, 200, "{plan}");
    assert!(!uuids(&plan["delete"]).contains(&f.base[0]), "{plan}");
    let kept = plan["kept"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["uuid"] == f.base[0].as_str())
        .unwrap_or_else(|| panic!("protected image not kept: {plan}"));
    assert_eq!(kept["reason"], "protected", "{plan}");

    let (status, job) = s.post_json("/retention/runs", &json!({})).await;
    assert_eq!(status, 202, "{job}");
    let job = finished_job(&s, job["uuid"].as_str().unwrap()).await;
    assert_eq!(job["execution"], "succeeded", "{job}");
    // A run names images of every owner: ListImageJobs never shows it.
    let nil = "00000000-0000-0000-0000-000000000000";
    let (status, listed) = s.get_json(&format!("/images/{nil}/jobs")).await;
    assert_eq!(status, 404, "{listed}");
    assert_eq!(s.get_json(&format!("/images/{}", f.base[0])).await.0, 200);
    assert_eq!(s.get_json(&format!("/images/{}", f.base[1])).await.0, 404);
}

#[tokio::test]
async fn an_image_that_changed_since_planning_stays() {
    let s = TestServer::spawn_with(DC).await;
    let old = image(&s, OWNER, "base", 20, None).await;
    let new = image(&s, OWNER, "base", 10, None).await;
    add_rule(&s, json!({"name": "base", "keep_versions": 1})).await;
    let (_, plan) = s
        .post_json("/retention/runs?dry_run=true", &json!({}))
        .await;
    assert_eq!(uuids(&plan["delete"]), set(&[&old]));
    // A newer image now names `old` as its origin: the run leaves it.
    let child = image(&s, BOB, "child", 1, Some(&old)).await;
    let (_, job) = s.post_json("/retention/runs", &json!({})).await;
    let job = finished_job(&s, job["uuid"].as_str().unwrap()).await;
    assert_eq!(job["execution"], "succeeded", "{job}");
    let steps = job["chain_results"].as_array().unwrap();
    assert_eq!(steps[0]["result"], "0 to delete, 1 kept", "{job}");
    for uuid in [&old, &new, &child] {
        assert_eq!(s.get_json(&format!("/images/{uuid}")).await.0, 200);
    }
}

#[tokio::test]
async fn the_origin_of_an_unactivated_image_stays() {
    let s = TestServer::spawn_with(DC).await;
    let old = image(&s, OWNER, "base", 20, None).await;
    let new = image(&s, OWNER, "base", 10, None).await;
    // Created from `old`, never activated: no `published_at`.
    let (status, child) = s
        .post_json(
            "/images",
            &json!({"name": "child", "version": "1", "type": "zone-dataset", "os": "smartos",
                "owner": BOB, "origin": old}),
        )
        .await;
    assert_eq!(status, 200, "{child}");
    add_rule(&s, json!({"name": "base", "keep_versions": 1})).await;
    let (_, plan) = s
        .post_json("/retention/runs?dry_run=true", &json!({}))
        .await;
    assert_eq!(plan["delete"], json!([]), "{plan}");
    assert_eq!(plan["kept"][0]["uuid"], old.as_str());
    assert_eq!(
        plan["kept"][0]["reason"],
        format!("origin of {}", uuid_of(&child))
    );
    let (_, job) = s.post_json("/retention/runs", &json!({})).await;
    let job = finished_job(&s, job["uuid"].as_str().unwrap()).await;
    assert_eq!(job["execution"], "succeeded", "{job}");
    for uuid in [&old, &new] {
        assert_eq!(s.get_json(&format!("/images/{uuid}")).await.0, 200);
    }
}

#[tokio::test]
async fn one_run_across_three_instances_deletes_each_image_once() {
    let Some((admin_url, endpoint, bucket)) = scale_out_env() else {
        eprintln!("SKIP: retention multi-instance test needs IMGAPI_TEST_PG_URL and IMGAPI_TEST_S3_* (set by .ci/run)");
        return;
    };
    let db = create_database(&admin_url);
    let prefix = format!("retention-{}", uuid::Uuid::new_v4().simple());
    // A schedule on every instance: at most one scheduled job between them.
    let toml = format!(
        "{DC}database_url = {db:?}\n[storage]\nkind = \"s3\"\nendpoint = {endpoint:?}\nbucket = {bucket:?}\nprefix = {prefix:?}\n[retention]\ninterval_hours = 24\n"
    );
    let mut s = Vec::new();
    for _ in 0..3 {
        s.push(TestServer::spawn_raw(&toml).await);
    }
    let jobs_path = "/retention/runs";
    // Each instance looks at start-up; give the last one time to look too.
    let mut scheduled = json!([]);
    for _ in 0..50 {
        let (status, got) = s[2].get_json(jobs_path).await;
        if status == 200 && !got.as_array().unwrap().is_empty() {
            scheduled = got;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, again) = s[2].get_json(jobs_path).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again.as_array().map(Vec::len),
        scheduled.as_array().map(Vec::len)
    );
    assert_eq!(
        scheduled.as_array().unwrap().len(),
        1,
        "three instances queue one scheduled run: {scheduled}"
    );
    let scheduled = finished_job(&s[0], scheduled[0]["uuid"].as_str().unwrap()).await;
    assert_eq!(scheduled["execution"], "succeeded", "{scheduled}");

    let mut versions = Vec::new();
    for days in [60, 50, 40, 30, 20, 10] {
        versions.push(image(&s[0], OWNER, "multi", days, None).await);
    }
    add_rule(&s[1], json!({"name": "multi", "keep_versions": 2})).await;
    let (_, plan) = s[2]
        .post_json("/retention/runs?dry_run=true", &json!({}))
        .await;
    let expected = set(&[&versions[0], &versions[1], &versions[2], &versions[3]]);
    assert_eq!(uuids(&plan["delete"]), expected);
    let (status, job) = s[1].post_json("/retention/runs", &json!({})).await;
    assert_eq!(status, 202, "{job}");
    let job = finished_job(&s[2], job["uuid"].as_str().unwrap()).await;
    assert_eq!(job["execution"], "succeeded", "{job}");
    let steps = job["chain_results"].as_array().unwrap();
    assert_eq!(
        steps.iter().filter(|st| st["name"] == "plan").count(),
        1,
        "one instance ran the job, once: {job}"
    );
    let deletes: Vec<&Value> = steps
        .iter()
        .filter(|st| st["name"] == "delete_image")
        .collect();
    assert_eq!(deletes.len(), 4, "{job}");
    assert!(deletes
        .iter()
        .all(|st| st["error"] == "" && st["result"].as_str().unwrap().starts_with("deleted")));
    for server in &s {
        for uuid in &expected {
            assert_eq!(server.get_json(&format!("/images/{uuid}")).await.0, 404);
        }
        for uuid in &versions[4..] {
            let resp = server
                .get(&format!("/images/{uuid}/file"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
    }
    let (_, all) = s[0].get_json(jobs_path).await;
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
}
