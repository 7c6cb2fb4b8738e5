//! The HTML catalog: `GET /catalog`, `GET /catalog/:uuid`,
//! same visibility as ListImages/GetImage, escaping, search, paging, and a
//! render in headless Chromium when it is installed.

use crate::support::*;
use serde_json::{json, Value};

const OTHER: &str = "99999999-9999-4999-8999-999999999999";

async fn html(s: &TestServer, path: &str) -> (u16, String, String) {
    let resp = s.get(path).send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, resp.text().await.unwrap())
}

fn list_names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

/// Names in the catalog table, in order (each row links to its page).
fn row_names(page: &str) -> Vec<String> {
    page.split("<tr><td><a href=\"/catalog/")
        .skip(1)
        .filter_map(|row| {
            let start = row.find("\">")? + 2;
            let end = row[start..].find("</a>")? + start;
            Some(row[start..end].to_string())
        })
        .collect()
}

fn next_link(page: &str) -> Option<String> {
    let at = page.find("rel=\"next\" href=\"")? + "rel=\"next\" href=\"".len();
    let end = page[at..].find('"')? + at;
    Some(page[at..end].replace("&amp;", "&"))
}

#[tokio::test]
async fn visibility_matches_list_images() {
    // dc mode: private images exist; `account` scopes what a caller sees.
    let s = TestServer::spawn_with("mode = \"dc\"").await;
    let public = s.publish(json!({"name": "pubimg", "version": "1.0"})).await;
    let private = s
        .publish(json!({"name": "privimg", "version": "2.0", "public": false}))
        .await;

    let (status, ct, page) = html(&s, "/catalog").await;
    assert_eq!(status, 200);
    assert_eq!(ct, "text/html; charset=utf-8");
    assert!(!page.contains("<script"), "no JavaScript");
    // Anonymous: exactly what anonymous ListImages shows.
    let anon = list_names(&s.get_json("/images").await.1);
    assert_eq!(row_names(&page), anon);

    // Another account: the private image is absent (list and page).
    let (_, _, page) = html(&s, &format!("/catalog?account={OTHER}")).await;
    assert_eq!(row_names(&page), ["pubimg"]);
    assert_eq!(
        list_names(&s.get_json(&format!("/images?account={OTHER}")).await.1),
        ["pubimg"]
    );
    let (status, ct, page) = html(
        &s,
        &format!("/catalog/{}?account={OTHER}", uuid_of(&private)),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(ct, "text/html; charset=utf-8");
    assert!(page.contains("Not found"));
    assert!(!page.contains("privimg"));
    // Links keep the account.
    let (_, _, page) = html(&s, &format!("/catalog?account={OTHER}")).await;
    assert!(page.contains(&format!("/catalog/{}?account={OTHER}", uuid_of(&public))));

    // The owner sees both, and the private image's page.
    let (_, _, page) = html(&s, &format!("/catalog?account={OWNER}")).await;
    assert_eq!(row_names(&page), ["pubimg", "privimg"]);
    let (status, _, page) = html(
        &s,
        &format!("/catalog/{}?account={OWNER}", uuid_of(&private)),
    )
    .await;
    assert_eq!(status, 200);
    assert!(page.contains("privimg"));
}

#[tokio::test]
async fn image_page_shows_manifest_file_icon_and_escapes() {
    let s = TestServer::spawn().await;
    let img = s
        .publish(json!({"name": "esc", "version": "1.0",
            "description": "<script>alert(\"x\")</script> & 'more'",
            "tags": {"k": "<b>bold</b>"}}))
        .await;
    let uuid = uuid_of(&img);
    let (status, _) = status_json(
        s.put(&format!("/images/{uuid}/icon"))
            .header("content-type", "image/png")
            .body(b"\x89PNGfake".to_vec())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let img = s.get_json(&format!("/images/{uuid}")).await.1;

    let (status, ct, page) = html(&s, &format!("/catalog/{uuid}")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ct, "text/html; charset=utf-8");
    assert!(!page.contains("<script>"), "{page}");
    assert!(!page.contains("<b>bold"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;more&#39;"));
    assert!(page.contains(&format!("src=\"/images/{uuid}/icon\"")));
    assert!(page.contains(&format!("href=\"/images/{uuid}/file\"")));
    let file = &img["files"][0];
    assert!(page.contains(file["sha1"].as_str().unwrap()));
    assert!(page.contains(&format!("{} bytes", file["size"])));
    // sha256 is in the record, shown though GetImage hides it.
    assert!(page.contains("SHA-256"));
    assert!(page.contains(&uuid));
    assert!(page.contains("zone-dataset"));

    // The catalog table escapes too, and has the file size.
    let (_, _, page) = html(&s, "/catalog").await;
    assert!(page.contains(">esc</a>"));
    assert!(page.contains(&format!("<td class=\"n\">{}</td>", file["size"])));
    // Escaped search values echo back into the form.
    let (status, _, page) = html(&s, "/catalog?name=%22%3E%3Cscript%3E").await;
    assert_eq!(status, 200);
    assert!(!page.contains("\"><script>"));
    assert!(page.contains("value=\"&quot;&gt;&lt;script&gt;\""));
}

#[tokio::test]
async fn not_found_pages() {
    let s = TestServer::spawn().await;
    for path in [
        "/catalog/00000000-0000-4000-8000-000000000000".to_string(),
        "/catalog/not-a-uuid".into(),
        "/catalog/<script>".into(),
    ] {
        let (status, ct, page) = html(&s, &path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(ct, "text/html; charset=utf-8");
        assert!(page.contains("Not found"));
        assert!(!page.contains("<script>"));
    }
    // `catalog = false`: no catalog at all (the JSON 404).
    let off = TestServer::spawn_with("catalog = false\n").await;
    let (status, body) = off.get_json("/catalog").await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "ResourceNotFound");
}

#[tokio::test]
async fn search_filters() {
    let s = TestServer::spawn().await;
    s.publish(json!({"name": "base64", "os": "smartos"})).await;
    s.publish(json!({"name": "ubuntu-base", "os": "linux", "type": "zvol",
        "nic_driver": "virtio", "disk_driver": "virtio", "cpu_type": "host", "image_size": 10240}))
        .await;
    s.publish(json!({"name": "minimal", "os": "smartos", "type": "other"}))
        .await;
    let names = |p: &'static str| {
        let s = &s;
        async move { row_names(&html(s, p).await.2) }
    };
    assert_eq!(names("/catalog?name=base").await, ["base64", "ubuntu-base"]);
    assert_eq!(names("/catalog?name=base&match=prefix").await, ["base64"]);
    assert_eq!(names("/catalog?os=linux").await, ["ubuntu-base"]);
    assert_eq!(names("/catalog?type=other").await, ["minimal"]);
    assert_eq!(
        names("/catalog?os=smartos&type=zone-dataset").await,
        ["base64"]
    );
    let (status, _, page) = html(&s, "/catalog?name=nothing").await;
    assert_eq!(status, 200);
    assert!(page.contains("No images."));
}

#[tokio::test]
async fn pagination_follows_markers() {
    let s = TestServer::spawn().await;
    let all: Vec<String> = (0..5).map(|i| format!("img{i}")).collect();
    for name in &all {
        s.publish(json!({"name": name})).await;
    }
    let mut seen = Vec::new();
    let mut path = "/catalog?limit=2".to_string();
    let mut pages = 0;
    loop {
        let (status, _, page) = html(&s, &path).await;
        assert_eq!(status, 200);
        let rows = row_names(&page);
        assert!(rows.len() <= 2);
        seen.extend(rows);
        pages += 1;
        assert!(pages <= 5, "pagination does not end");
        match next_link(&page) {
            Some(next) => {
                assert!(next.contains("limit=2") && next.contains("marker="));
                path = next;
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all);
}

/// Render `/catalog` in headless Chromium: a screenshot that is a real PNG
/// of the window's width, and a DOM with the image names.
#[tokio::test]
async fn renders_in_headless_chromium() {
    let Some(chromium) = which("chromium") else {
        eprintln!("SKIP: chromium not installed");
        return;
    };
    let s = TestServer::spawn().await;
    for name in ["alpha-image", "beta-image", "gamma-image"] {
        s.publish(json!({"name": name, "description": "an image for the browser test"}))
            .await;
    }
    let url = format!("{}/catalog", s.url);
    let tmp = tempfile::tempdir().unwrap();
    let shot = tmp.path().join("shot.png");
    let run = |extra: Vec<String>| {
        let profile = tmp.path().join(format!("profile-{}", extra.len()));
        let mut cmd = tokio::process::Command::new(&chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--window-size=1200,800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(&url)
        .kill_on_drop(true);
        async move {
            tokio::time::timeout(std::time::Duration::from_secs(90), cmd.output())
                .await
                .expect("chromium timed out")
                .expect("chromium runs")
        }
    };
    let out = run(vec![format!("--screenshot={}", shot.display())]).await;
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}); chromium said: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(png.len() > 5 * 1024, "screenshot is {} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&png[12..16], b"IHDR");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!(width, 1200);
    assert!(height > 0);
    assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND", "complete PNG");

    let out = run(vec!["--dump-dom".into()]).await;
    let dom = String::from_utf8_lossy(&out.stdout);
    for name in ["alpha-image", "beta-image", "gamma-image"] {
        assert!(dom.contains(name), "{name} not in the DOM: {dom}");
    }
    assert!(dom.contains("<table>"));
}

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.is_file())
    })
}
