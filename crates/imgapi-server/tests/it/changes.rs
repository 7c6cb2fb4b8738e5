//! The change feed (docs/events.md): `GET /changes`. One event per state
//! change of an image, in commit order; paging with `next`; `limit=0`;
//! long polls woken by a write; cursors surviving restarts; 410
//! ChangesExpired for purged or foreign cursors; parameter errors; the
//! channel filter. Who sees which event is the access matrix's
//! "change feed" section.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

const DC: &str = "mode = \"dc\"";

/// Every event after `since` (all pages), as `(type, uuid, fields)`.
async fn events_after(s: &TestServer, since: i64, query: &str) -> (Vec<Value>, i64) {
    let mut all = Vec::new();
    let mut at = since;
    loop {
        let (status, page) = s
            .get_json(&format!("/changes?since={at}&limit=3{query}"))
            .await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap().clone();
        let next = page["next"].as_i64().unwrap();
        if events.is_empty() {
            assert_eq!(next, at, "nothing hidden here: next stays");
            return (all, at);
        }
        assert_eq!(next, events.last().unwrap()["seq"].as_i64().unwrap());
        at = next;
        all.extend(events);
    }
}

fn summary(events: &[Value], uuid: &str) -> Vec<(String, Vec<String>)> {
    events
        .iter()
        .filter(|e| e["uuid"] == uuid)
        .map(|e| {
            let fields = e["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
            (e["type"].as_str().unwrap().to_string(), fields)
        })
        .collect()
}

async fn head(s: &TestServer) -> i64 {
    let (status, page) = s.get_json("/changes?limit=0").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"], json!([]));
    page["next"].as_i64().unwrap()
}

fn owned(s: &str) -> (String, Vec<String>) {
    let (kind, fields) = s.split_once(':').unwrap_or((s, ""));
    (
        format!("image.{kind}"),
        fields
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

#[tokio::test]
async fn every_image_operation_leaves_one_event_in_order() {
    let s = TestServer::spawn_with(DC).await;
    let start = head(&s).await;
    let img = s.create(json!({"name": "evented"})).await;
    let uuid = uuid_of(&img);
    assert_eq!(s.upload(&uuid, b"bytes".to_vec()).await.0, 200);
    let icon = s
        .put(&format!("/images/{uuid}/icon"))
        .header("content-type", "image/png")
        .body(vec![0x89, b'P', b'N', b'G'])
        .send()
        .await
        .unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(s.activate(&uuid).await.0, 200);
    let (status, _) = s
        .post_json(
            &format!("/images/{uuid}?action=update"),
            &json!({"description": "new words", "homepage": "https://example.com"}),
        )
        .await;
    assert_eq!(status, 200);
    for action in ["disable", "enable"] {
        let (status, _) = s
            .post_json(&format!("/images/{uuid}?action={action}"), &json!({}))
            .await;
        assert_eq!(status, 200);
    }
    let (status, _) = s
        .post_json(&format!("/images/{uuid}/acl"), &json!([BOB]))
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .post_json(&format!("/images/{uuid}/acl?action=remove"), &json!([BOB]))
        .await;
    assert_eq!(status, 200);
    let protect = s
        .put(&format!("/images/{uuid}/lifecycle"))
        .json(&json!({"protected": true, "deprecated_at": "2030-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(protect.status(), 200);
    let unprotect = s
        .put(&format!("/images/{uuid}/lifecycle"))
        .json(&json!({"protected": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(unprotect.status(), 200);
    let deleted = s.delete(&format!("/images/{uuid}")).send().await.unwrap();
    assert_eq!(deleted.status(), 204);

    let (events, _) = events_after(&s, start, "").await;
    let want: Vec<(String, Vec<String>)> = [
        "created",
        "file_added:files",
        "icon_changed:icon",
        "activated:activated,published_at,state",
        "updated:description,homepage",
        "disabled:disabled,state",
        "enabled:disabled,state",
        "acl_changed:acl",
        "acl_changed:acl",
        "lifecycle_changed:deprecated_at,protected",
        "lifecycle_changed:protected",
        "deleted",
    ]
    .iter()
    .map(|s| owned(s))
    .collect();
    assert_eq!(summary(&events, &uuid), want);
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let gapless: Vec<i64> = (start + 1..=start + seqs.len() as i64).collect();
    assert_eq!(
        seqs, gapless,
        "nothing else writes here: the numbers are consecutive"
    );
    let first = &events[0];
    assert_eq!(first["owner"], OWNER);
    assert_eq!(first["name"], "evented");
    assert_eq!(first["version"], img["version"]);
    let time = first["time"].as_str().unwrap();
    assert!(
        time.ends_with('Z') && time.len() == 24,
        "ISO 8601 with ms: {time}"
    );
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["seq", "time", "type", "uuid", "owner", "name", "version", "fields"],
        "an event has exactly the documented keys"
    );
    assert_eq!(
        head(&s).await,
        *seqs.last().unwrap(),
        "limit=0: the latest number"
    );
}

#[tokio::test]
async fn channel_changes_and_the_channel_filter() {
    let s = TestServer::spawn_with(
        r#"
[[channels]]
name = "dev"
default = true
[[channels]]
name = "release"
"#,
    )
    .await;
    let start = head(&s).await;
    let img = s.publish(json!({"name": "promoted"})).await;
    let uuid = uuid_of(&img);
    let other = uuid_of(&s.publish(json!({"name": "stays"})).await);
    let (status, body) = s
        .post_json(
            &format!("/images/{uuid}?action=channel-add"),
            &json!({"channel": "release"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (events, _) = events_after(&s, start, "&channel=release").await;
    assert_eq!(
        summary(&events, &uuid),
        vec![owned("channel_added:channels")],
        "in `release` only from the promotion on"
    );
    assert!(summary(&events, &other).is_empty(), "not in release");
    let (events, _) = events_after(&s, start, "").await;
    assert_eq!(
        summary(&events, &other).len(),
        3,
        "created, file_added, activated: in the default channel"
    );
    let (status, body) = s.get_json("/changes?channel=nope").await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_an_event_is_committed() {
    let s = TestServer::spawn().await;
    let since = head(&s).await;
    let url = format!("{}/changes?since={since}&wait=20", s.url);
    let client = s.client.clone();
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        let resp = client.get(url).send().await.unwrap();
        (
            resp.status().as_u16(),
            resp.json::<Value>().await.unwrap(),
            started.elapsed(),
        )
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let img = s.create(json!({})).await;
    let (status, page, took) = poll.await.unwrap();
    assert_eq!(status, 200);
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["uuid"], img["uuid"]);
    assert_eq!(events[0]["type"], "image.created");
    assert!(
        took < Duration::from_secs(2),
        "answered {took:?} after the poll began"
    );

    // Nothing new: the wait runs out and `next` stays.
    let next = page["next"].as_i64().unwrap();
    let started = Instant::now();
    let (status, page) = s.get_json(&format!("/changes?since={next}&wait=1")).await;
    assert_eq!((status, page), (200, json!({"events": [], "next": next})));
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn hidden_events_advance_next_without_showing_uuids() {
    let s = TestServer::spawn_with(DC).await;
    let since = head(&s).await;
    // Private, unactivated images of OWNER: BOB may see none of them.
    for _ in 0..3 {
        s.create(json!({"public": false})).await;
    }
    let (status, page) = s
        .get_json(&format!("/changes?since={since}&account={BOB}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["events"], json!([]));
    assert_eq!(
        page["next"].as_i64().unwrap(),
        since + 3,
        "next moves past what the caller may not see"
    );
    let (_, page) = s
        .get_json(&format!("/changes?since={since}&account={OWNER}"))
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn the_cursor_survives_a_restart() {
    let s = TestServer::spawn().await;
    let data_dir = s.data_dir.clone();
    s.create(json!({})).await;
    let before = head(&s).await;
    let dir = s.stop().await;
    let s = TestServer::spawn_in(&data_dir, "").await;
    assert_eq!(head(&s).await, before, "the log's end is where it was");
    let img = s.create(json!({})).await;
    let (events, _) = events_after(&s, before, "").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["uuid"], img["uuid"]);
    assert_eq!(events[0]["seq"], before + 1, "numbering goes on");
    drop(dir);
}

#[tokio::test]
async fn purged_and_foreign_cursors_are_410_changes_expired() {
    // Events older than ~0.36 s go at the next sweep (every second).
    let s = TestServer::spawn_with(
        "[changes]\nretention_hours = 0.0001\n[lifecycle]\nsweep_interval_secs = 1\n",
    )
    .await;
    s.create(json!({})).await;
    s.create(json!({})).await;
    let latest = head(&s).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = s.get_json("/changes?since=1").await;
        if status == 410 {
            assert_error(&(status, body), 410, "ChangesExpired", None);
            break;
        }
        assert!(Instant::now() < deadline, "never purged: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = s.get_json("/changes?since=1").await;
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("no longer kept") && message.contains("limit=0"),
        "{status} {message}"
    );
    // From the oldest kept, and from the end: fine.
    assert_eq!(s.get_json("/changes?since=0").await.0, 200);
    assert_eq!(s.get_json(&format!("/changes?since={latest}")).await.0, 200);
    // A cursor of another database.
    let ahead = latest + 1000;
    let got = s.get_json(&format!("/changes?since={ahead}")).await;
    assert_error(&got, 410, "ChangesExpired", None);
    assert!(got.1["message"].as_str().unwrap().contains("ahead"));
}

#[tokio::test]
async fn bad_parameters_are_422_invalid_parameter() {
    let s = TestServer::spawn().await;
    for (query, name) in [
        ("since=-1", "since"),
        ("since=x", "since"),
        ("limit=1001", "limit"),
        ("limit=-5", "limit"),
        ("wait=61", "wait"),
        ("wait=1.5", "wait"),
    ] {
        let got = s.get_json(&format!("/changes?{query}")).await;
        assert_error(&got, 422, "InvalidParameter", None);
        assert_eq!(got.1["errors"][0]["field"], name, "{query}: {}", got.1);
    }
    let got = s.get_json("/changes?account=nope").await;
    assert_error(&got, 422, "InvalidParameter", None);
}
