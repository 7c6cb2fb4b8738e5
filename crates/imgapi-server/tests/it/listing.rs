//! ListImages filters, sorting, paging (api.md §5.1, UC9).

use crate::support::*;
use serde_json::{json, Value};

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn filters() {
    let s = TestServer::spawn().await;
    s.publish(json!({"name": "base64", "version": "1.7.0", "os": "smartos", "tags": {"role": "db", "n": 42}})).await;
    s.publish(
        json!({"name": "ubuntu", "version": "20.04", "os": "linux", "type": "zvol",
        "nic_driver": "virtio", "disk_driver": "virtio", "cpu_type": "host", "image_size": 10240}),
    )
    .await;
    s.publish(
        json!({"name": "base32", "version": "1.7.1", "type": "other", "tags": {"role": "web"}}),
    )
    .await;
    s.create(json!({"name": "unactivated"})).await;
    let q = |p: &str| format!("/images{p}");
    assert_eq!(
        names(&s.get_json(&q("")).await.1),
        ["base64", "ubuntu", "base32"]
    );
    assert_eq!(
        names(&s.get_json(&q("?name=~base")).await.1),
        ["base64", "base32"]
    );
    assert_eq!(
        names(&s.get_json(&q("?name=~BASE")).await.1),
        Vec::<String>::new()
    );
    assert_eq!(names(&s.get_json(&q("?name=ubuntu")).await.1), ["ubuntu"]);
    assert_eq!(
        names(&s.get_json(&q("?version=~1.7")).await.1),
        ["base64", "base32"]
    );
    assert_eq!(names(&s.get_json(&q("?os=linux")).await.1), ["ubuntu"]);
    assert_eq!(
        names(&s.get_json(&q("?type=!zvol")).await.1),
        ["base64", "base32"]
    );
    assert_eq!(names(&s.get_json(&q("?tag.role=db")).await.1), ["base64"]);
    assert_eq!(
        names(&s.get_json(&q("?tag.n=42&tag.role=db")).await.1),
        ["base64"]
    );
    assert_eq!(
        names(&s.get_json(&q("?tag.role=")).await.1),
        ["base64", "base32"]
    );
    assert_eq!(
        names(&s.get_json(&q(&format!("?owner={OWNER}"))).await.1).len(),
        3
    );
    assert_eq!(
        names(&s.get_json(&q(&format!("?owner={BOB}"))).await.1).len(),
        0
    );
    assert_eq!(
        names(&s.get_json(&q("?sort=published_at.desc")).await.1),
        ["base32", "ubuntu", "base64"]
    );
    assert_eq!(
        names(&s.get_json(&q("?sort=published_at.desc&limit=1")).await.1),
        ["base32"],
        "newest N"
    );
    assert_eq!(
        names(&s.get_json(&q("?limit=2")).await.1),
        ["base64", "ubuntu"]
    );
    assert_eq!(names(&s.get_json(&q("?limit=-1")).await.1).len(), 0);
    assert_eq!(names(&s.get_json(&q("?limit=0")).await.1).len(), 3);
    assert_eq!(names(&s.get_json(&q("?public=true")).await.1).len(), 3);
    assert_eq!(names(&s.get_json(&q("?billing_tag=x")).await.1).len(), 0);
    // Anonymous callers of a public server see only active images.
    assert_eq!(names(&s.get_json(&q("?state=all")).await.1).len(), 3);
    assert_eq!(s.get_json(&q("?state=unactivated")).await, (200, json!([])));
    let resp = s.get("/images?name=nothing").send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "[]");
}

#[tokio::test]
async fn parameter_errors_in_order() {
    let s = TestServer::spawn().await;
    let got = s.get_json("/images?limit=abc").await;
    assert_eq!(
        got,
        (
            422,
            json!({"code": "InvalidParameter", "message": "invalid limit: \"abc\"", "errors": [{"field": "state", "code": "Invalid"}]})
        )
    );
    let got = s.get_json("/images?state=bogus&limit=abc").await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid limit: \"abc\""),
    );
    let got = s.get_json("/images?state=bogus").await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid state: \"bogus\""),
    );
    let got = s.get_json("/images?public=maybe").await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid value for \"public\" param: \"maybe\" is not a boolean"),
    );
    let got = s.get_json("/images?sort=name").await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid 'sort': not a valid sorting attribute: 'name'"),
    );
    let got = s.get_json(&format!("/images?marker={BOB}")).await;
    assert_error(
        &got,
        404,
        "ResourceNotFound",
        Some(&format!("image {BOB} not found")),
    );
    let got = s.get_json("/images?marker=yesterday").await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid value for \"marker\" param: \"yesterday\" is not a UUID or date string"),
    );
    let got = s.get_json("/images?inclAdminFields=yes").await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid value for \"inclAdminFields\" param: \"yes\" is not a boolean"),
    );
    let got = s.get_json("/images?inclAdminFields=true").await;
    assert_error(
        &got,
        401,
        "UnauthorizedError",
        Some("Unauthorized (auth required to use \"inclAdminFields\" parameter)"),
    );
}

#[tokio::test]
async fn paging_with_marker_uc9() {
    let s = TestServer::spawn().await;
    let mut uuids = Vec::new();
    for i in 0..5 {
        let img = s.publish(json!({"name": format!("img{i}")})).await;
        uuids.push(uuid_of(&img));
    }
    let (_, page) = s.get_json("/images?limit=2").await;
    assert_eq!(names(&page), ["img0", "img1"]);
    let (_, page) = s
        .get_json(&format!("/images?limit=2&marker={}", uuids[1]))
        .await;
    assert_eq!(
        names(&page),
        ["img1", "img2"],
        "marker image repeated first"
    );
    let (_, page) = s
        .get_json(&format!(
            "/images?sort=published_at.desc&marker={}",
            uuids[2]
        ))
        .await;
    assert_eq!(names(&page), ["img2", "img1", "img0"]);
    let (_, page) = s.get_json("/images?marker=2000-01-01").await;
    assert_eq!(names(&page).len(), 5);
    let unactivated = uuid_of(&s.create(json!({})).await);
    let (_, page) = s.get_json(&format!("/images?marker={unactivated}")).await;
    assert_eq!(
        names(&page).len(),
        5,
        "an unactivated marker image is ignored"
    );
}

#[tokio::test]
async fn default_limit_is_1000() {
    // dc mode: listing unactivated images needs no authentication there.
    let s = TestServer::spawn_with("mode = \"dc\"").await;
    for i in 0..1001u32 {
        let uuid = format!("00000000-0000-4000-8000-{:012x}", i);
        let body = json!({"v": 2, "uuid": uuid, "owner": OWNER, "name": "many", "version": "1",
            "type": "other", "os": "other", "public": true,
            "published_at": format!("2020-01-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60)});
        let (st, b) = s
            .post_json(&format!("/images/{uuid}?action=import"), &body)
            .await;
        assert_eq!(st, 200, "{b}");
    }
    let (_, all) = s.get_json("/images?state=unactivated").await;
    assert_eq!(all.as_array().unwrap().len(), 1000);
    let (_, all) = s.get_json("/images?state=unactivated&limit=5000").await;
    assert_eq!(all.as_array().unwrap().len(), 1000);
}

/// Every accepted `sort` keeps its order; any other order or attribute is
/// refused instead of silently sorting descending.
#[tokio::test]
async fn sort_accepts_only_asc_and_desc() {
    let s = TestServer::spawn().await;
    s.publish(json!({"name": "older"})).await;
    s.publish(json!({"name": "newer"})).await;
    for (sort, expected) in [
        ("", ["older", "newer"]),
        ("?sort=published_at", ["older", "newer"]),
        ("?sort=published_at.asc", ["older", "newer"]),
        ("?sort=published_at.ASC", ["older", "newer"]),
        ("?sort=published_at.desc", ["newer", "older"]),
        ("?sort=published_at.DESC", ["newer", "older"]),
    ] {
        assert_eq!(
            names(&s.get_json(&format!("/images{sort}")).await.1),
            expected,
            "{sort}"
        );
    }
    for (order, shown) in [
        ("sideways", "sideways"),
        ("bogus", "bogus"),
        ("", ""),
        ("desc.x", "desc.x"),
    ] {
        let got = s
            .get_json(&format!("/images?sort=published_at.{order}"))
            .await;
        assert_eq!(
            got,
            (
                422,
                json!({"code": "InvalidParameter",
                    "message": format!("invalid 'sort': not a valid sorting order: '{shown}'"),
                    "errors": [{"field": "sort", "code": "Invalid"}]})
            ),
            "{order}"
        );
    }
    let got = s.get_json("/images?sort=name.asc").await;
    assert_eq!(
        got,
        (
            422,
            json!({"code": "InvalidParameter",
                "message": "invalid 'sort': not a valid sorting attribute: 'name'",
                "errors": [{"field": "sort", "code": "Invalid"}]})
        )
    );
}
