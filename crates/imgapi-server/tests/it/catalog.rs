//! The HTML catalog: `GET /catalog`, `GET /catalog/:uuid`,
//! same visibility as ListImages/GetImage, escaping, search and filters,
//! paging, security headers, and renders in headless Chromium at phone and
//! desktop widths when it is installed.

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
    page.split("<a class=\"name\" href=\"/catalog/")
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
    assert!(page.contains(&format!(
        "<td class=\"n\" data-label=\"Size\"><span title=\"{} bytes\">{} B</span></td>",
        file["size"], file["size"]
    )));
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

/// The `YYYY-MM-DD HH:MM UTC` form of a stored `published_at`.
fn minute_of(published_at: &str) -> String {
    format!("{} {} UTC", &published_at[..10], &published_at[11..16])
}

async fn put_icon(s: &TestServer, uuid: &str) {
    let (status, body) = status_json(
        s.put(&format!("/images/{uuid}/icon"))
            .header("content-type", "image/png")
            .body(TINY_PNG.to_vec())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// A valid 1x1 PNG, so browsers draw the icon.
const TINY_PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82";

#[tokio::test]
async fn list_shows_icons_descriptions_human_sizes_and_dates() {
    let s = TestServer::spawn().await;
    let long = format!("{} END-OF-TEXT", "a fine image ".repeat(20));
    let with_icon = s
        .publish(json!({"name": "with-icon", "description": "<i>short</i> & sweet"}))
        .await;
    put_icon(&s, &uuid_of(&with_icon)).await;
    // 1.5 MiB file: the list shows "1.5 MiB", the exact count on hover.
    let big = s.create(json!({"name": "big", "description": long})).await;
    let big_uuid = uuid_of(&big);
    let (status, _) = s.upload(&big_uuid, vec![7u8; 1_572_864]).await;
    assert_eq!(status, 200);
    let (status, big) = s.activate(&big_uuid).await;
    assert_eq!(status, 200);

    let (status, _, page) = html(&s, "/catalog").await;
    assert_eq!(status, 200);
    assert_eq!(row_names(&page), ["with-icon", "big"]);
    // Exactly one icon: the image that has one, sized, from GetImageIcon.
    assert_eq!(page.matches("<img ").count(), 1, "{page}");
    assert!(page.contains(&format!(
        "<img class=\"icon\" src=\"/images/{}/icon\" width=\"48\" height=\"48\"",
        uuid_of(&with_icon)
    )));
    let icon = s
        .get(&format!("/images/{}/icon", uuid_of(&with_icon)))
        .send()
        .await
        .unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.bytes().await.unwrap().as_ref(), TINY_PNG);
    // Descriptions: escaped; a long one cut, whole on hover.
    assert!(page.contains("<div class=\"desc\">&lt;i&gt;short&lt;/i&gt; &amp; sweet</div>"));
    assert!(page.contains(&format!("title=\"{}\"", long.trim())));
    let shown = page.split("<div class=\"desc\" title=").nth(1).unwrap();
    let shown = &shown[shown.find('>').unwrap() + 1..shown.find("</div>").unwrap()];
    assert!(
        shown.ends_with('\u{2026}') && !shown.contains("END-OF-TEXT"),
        "{shown}"
    );
    // Sizes and dates.
    assert!(page.contains("<span title=\"1572864 bytes\">1.5 MiB</span>"));
    assert!(page.contains("<span title=\"11 bytes\">11 B</span>"));
    for img in [&with_icon, &big] {
        let at = img["published_at"].as_str().unwrap();
        assert!(
            page.contains(&format!(
                "<time datetime=\"{at}\" title=\"{at}\">{}</time>",
                minute_of(at)
            )),
            "{at} not shown: {page}"
        );
    }
}

#[tokio::test]
async fn image_page_has_tables_links_and_escapes_new_fields() {
    let s = TestServer::spawn().await;
    let origin = s.publish(json!({"name": "origin-img"})).await;
    let hostile_url = "https://example.com/\"><script>alert(1)</script>";
    let img = s
        .publish(json!({"name": "detailed", "version": "2.1",
            "origin": uuid_of(&origin),
            "homepage": hostile_url,
            "tags": {"role": "db", "<img src=x onerror=alert(1)>": "\"><script>alert(2)</script>",
                     "list": ["a", "b"]},
            "requirements": {"min_ram": 1024, "networks": [{"name": "net0", "description": "admin"}]}}))
        .await;
    let uuid = uuid_of(&img);
    let (status, ct, page) = html(&s, &format!("/catalog/{uuid}")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ct, "text/html; charset=utf-8");
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("<img src=x"), "{page}");

    // The homepage: a link, escaped, that leaks nothing and is not endorsed.
    assert!(page.contains(
        "<a href=\"https://example.com/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\" \
rel=\"noopener noreferrer nofollow\">"
    ));
    // The origin links to its own page.
    assert!(page.contains(&format!("<a href=\"/catalog/{}\">", uuid_of(&origin))));

    // Files: a table with sha1, sha256, human and exact size, compression.
    let full = s
        .get_json(&format!("/images/{uuid}?inclAdminFields=true"))
        .await
        .1;
    let file = &img["files"][0];
    let files = section(&page, "<table class=\"files stack\">");
    assert!(files.contains(&format!("<code>{}</code>", file["sha1"].as_str().unwrap())));
    if let Some(sha256) = full["files"][0]["sha256"].as_str() {
        assert!(files.contains(&format!("<code>{sha256}</code>")), "{files}");
    }
    assert!(files.contains(
        "<td class=\"nw\" data-label=\"Size\"><span title=\"11 bytes\">11 B</span>\
<div class=\"exact\">11 bytes</div></td>"
    ));
    assert!(files.contains("<td data-label=\"Compression\">gzip</td>"));

    // Tags and requirements: key/value tables, every key and value escaped.
    let tags = section(&page, "<table class=\"tags pairs\">");
    assert!(tags.contains("<tr><td><code>role</code></td><td>db</td></tr>"));
    assert!(tags.contains("<code>&lt;img src=x onerror=alert(1)&gt;</code>"));
    assert!(tags.contains("&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;"));
    assert!(tags.contains("<td>a, b</td>"));
    let reqs = section(&page, "<table class=\"requirements pairs\">");
    assert!(reqs.contains("<code>min_ram</code></td><td>1024</td>"));
    assert!(
        reqs.contains(
            "[{&quot;description&quot;:&quot;admin&quot;,&quot;name&quot;:&quot;net0&quot;}]"
        ) || reqs.contains(
            "[{&quot;name&quot;:&quot;net0&quot;,&quot;description&quot;:&quot;admin&quot;}]"
        ),
        "{reqs}"
    );
    // Dates in words with the exact value on hover.
    let at = img["published_at"].as_str().unwrap();
    assert!(page.contains(&format!("title=\"{at}\">{}</time>", minute_of(at))));

    // An image without tags or requirements has no such tables.
    let (_, _, plain) = html(&s, &format!("/catalog/{}", uuid_of(&origin))).await;
    assert!(!plain.contains("class=\"tags"));
    assert!(!plain.contains("class=\"requirements"));
    assert!(!plain.contains("noopener"), "no homepage, no link");
}

/// The HTML from `start` to the end of its table.
fn section<'a>(page: &'a str, start: &str) -> &'a str {
    let at = page
        .find(start)
        .unwrap_or_else(|| panic!("{start} missing: {page}"));
    let end = page[at..].find("</table>").unwrap() + at;
    &page[at..end]
}

/// CreateImage refuses a `javascript:` homepage, but a record may hold
/// anything (older servers, imports, restores): the page shows it as text.
#[tokio::test]
async fn javascript_homepage_is_never_a_link() {
    let s = TestServer::spawn().await;
    let mut body = manifest();
    body["homepage"] = json!("javascript:alert(document.domain)");
    let (status, err) = s.post_json("/images", &body).await;
    assert_eq!(status, 422, "{err}");

    let img = s.publish(json!({"name": "sneaky"})).await;
    let uuid = uuid_of(&img);
    let toml = s.config_toml.clone();
    let dir = s.stop().await.unwrap();
    for homepage in [
        "javascript:alert(document.domain)",
        " JaVaScRiPt:alert(1)",
        "data:text/html,<script>alert(1)</script>",
    ] {
        {
            let cfg = imgapi_server::Config::from_toml(&toml).unwrap();
            let meta = imgapi_meta::open(&cfg.database_url()).await.unwrap();
            let mut rec = meta
                .get(uuid.parse().unwrap())
                .await
                .unwrap()
                .unwrap()
                .image;
            rec.homepage = Some(homepage.to_string());
            meta.put(&rec).await.unwrap();
        }
        let s = TestServer::spawn_in(dir.path(), "").await;
        let (status, _, page) = html(&s, &format!("/catalog/{uuid}")).await;
        assert_eq!(status, 200, "{page}");
        let lower = page.to_ascii_lowercase();
        assert!(!lower.contains("href=\"javascript") && !lower.contains("href=\" javascript"));
        assert!(!lower.contains("href=\"data:"));
        assert!(
            !page.contains("noopener"),
            "{homepage} became a link: {page}"
        );
        assert!(!page.contains("<script"), "{page}");
        assert!(page.contains(&format!(
            "<dt>Homepage</dt><dd>{}</dd>",
            escape_html(homepage)
        )));
        s.stop().await;
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const SECURITY_HEADERS: [&str; 3] = [
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
];

#[tokio::test]
async fn security_headers_on_catalog_pages_only() {
    use base64::Engine as _;
    use sha2::Digest as _;

    let s = TestServer::spawn().await;
    let img = s.publish(json!({"name": "hdr"})).await;
    let uuid = uuid_of(&img);
    for (path, status) in [
        ("/catalog".to_string(), 200),
        ("/catalog/".to_string(), 200),
        (format!("/catalog/{uuid}"), 200),
        ("/catalog/not-a-uuid".to_string(), 404),
        (
            "/catalog/00000000-0000-4000-8000-000000000000".to_string(),
            404,
        ),
    ] {
        let resp = s.get(&path).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let h = resp.headers().clone();
        let header = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        let csp = header("content-security-policy");
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        for wanted in [
            "default-src 'none'",
            "img-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
        ] {
            assert!(directives.contains(&wanted), "{wanted} not in {csp}");
        }
        assert!(!csp.contains("script-src"), "no script is allowed: {csp}");
        // The style hash is the page's one <style> element, byte for byte.
        let page = resp.text().await.unwrap();
        assert_eq!(page.matches("<style>").count(), 1);
        let css = &page[page.find("<style>").unwrap() + 7..page.find("</style>").unwrap()];
        let hash =
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(css.as_bytes()));
        assert!(
            directives.contains(&format!("style-src 'sha256-{hash}'").as_str()),
            "{csp}"
        );
        assert!(
            !page.contains(" style=\""),
            "inline style attributes would be blocked"
        );
    }
    // The JSON API answers as before: none of these headers.
    for path in [
        "/images".to_string(),
        format!("/images/{uuid}"),
        format!("/images/{uuid}/file"),
        "/ping".to_string(),
        "/catalog/x/y".to_string(),
    ] {
        let resp = s.get(&path).send().await.unwrap();
        for name in SECURITY_HEADERS {
            assert!(resp.headers().get(name).is_none(), "{name} on {path}");
        }
    }
    // POST /catalog is the JSON 405, as before.
    let resp = s.post("/catalog").send().await.unwrap();
    assert_eq!(resp.status(), 405);
    for name in SECURITY_HEADERS {
        assert!(resp.headers().get(name).is_none(), "{name} on the 405");
    }
}

/// Every filter combination lists exactly what ListImages lists for the
/// same caller: owner narrows, it never widens.
#[tokio::test]
async fn owner_filter_keeps_list_images_visibility() {
    let s = TestServer::spawn_with("mode = \"dc\"").await;
    s.publish(json!({"name": "owner-pub", "os": "linux"})).await;
    s.publish(json!({"name": "owner-priv", "public": false}))
        .await;
    s.publish(json!({"name": "owner-shared", "public": false, "acl": [CAROL]}))
        .await;
    s.publish(json!({"name": "bob-pub", "owner": BOB})).await;
    s.publish(json!({"name": "bob-priv", "owner": BOB, "public": false}))
        .await;
    let mut seen_any = false;
    for account in ["", OWNER, BOB, CAROL, OTHER] {
        for owner in ["", OWNER, BOB, "not-a-uuid"] {
            for os in ["", "linux"] {
                let mut q: Vec<(&str, &str)> = Vec::new();
                for (k, v) in [("account", account), ("owner", owner), ("os", os)] {
                    if !v.is_empty() {
                        q.push((k, v));
                    }
                }
                let query: String = q
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&");
                let (list_status, list) = s.get_json(&format!("/images?{query}")).await;
                let (status, _, page) = html(&s, &format!("/catalog?{query}")).await;
                assert_eq!(status, list_status, "{query}: {list}");
                if status != 200 {
                    continue;
                }
                let mut want = list_names(&list);
                let mut got = row_names(&page);
                want.sort();
                got.sort();
                assert_eq!(got, want, "/catalog?{query}");
                seen_any |= got.len() > 1;
                if !owner.is_empty() {
                    assert!(page.contains(&format!("name=\"owner\" placeholder=\"owner UUID\" spellcheck=\"false\" value=\"{owner}\"")));
                }
            }
        }
    }
    assert!(seen_any);
    // Spelled out: dc mode without `account` is the operator's view; an
    // account sees only what it may of that owner's images.
    let (_, _, page) = html(&s, &format!("/catalog?owner={BOB}")).await;
    assert_eq!(row_names(&page), ["bob-pub", "bob-priv"]);
    let (_, _, page) = html(&s, &format!("/catalog?owner={BOB}&account={CAROL}")).await;
    assert_eq!(row_names(&page), ["bob-pub"]);
    let (_, _, page) = html(&s, &format!("/catalog?owner={OWNER}&account={CAROL}")).await;
    assert_eq!(row_names(&page), ["owner-pub", "owner-shared"]);
    let (_, _, page) = html(&s, &format!("/catalog?owner={BOB}&account={BOB}")).await;
    assert_eq!(row_names(&page), ["bob-pub", "bob-priv"]);
    // Page links keep the owner filter.
    let (_, _, page) = html(
        &s,
        &format!("/catalog?owner={OWNER}&account={OWNER}&limit=1"),
    )
    .await;
    let next = next_link(&page).unwrap();
    assert!(next.contains(&format!("owner={OWNER}")), "{next}");
}

#[tokio::test]
async fn os_and_type_are_choices() {
    let s = TestServer::spawn().await;
    s.publish(json!({"name": "lx", "os": "linux", "type": "lx-dataset"}))
        .await;
    let (_, _, page) = html(&s, "/catalog?os=linux&type=lx-dataset").await;
    assert!(page.contains("<select name=\"os\"><option value=\"\">any</option>"));
    assert!(page.contains("<option selected>linux</option>"));
    assert!(page.contains("<option>smartos</option>"));
    assert!(page.contains("<option selected>lx-dataset</option>"));
    assert_eq!(row_names(&page), ["lx"]);
    // A value outside the lists is kept (escaped) so the form says what
    // the list is filtered by.
    let (status, _, page) = html(&s, "/catalog?os=%3Cplan9%3E").await;
    assert_eq!(status, 200);
    assert!(page.contains("<option selected>&lt;plan9&gt;</option>"));
    assert!(page.contains("No images."));
    // No channels on this server: no channel choice.
    assert!(!page.contains("name=\"channel\""));
}

const CHANNELS: &str = "[[channels]]\nname = \"dev\"\ndefault = true\n\
[[channels]]\nname = \"staging\"\n[[channels]]\nname = \"release\"\n";

#[tokio::test]
async fn channel_filter_on_a_server_with_channels() {
    let s = TestServer::spawn_with(CHANNELS).await;
    // Both start in the default channel (dev); one is added to staging.
    s.publish(json!({"name": "dev-only"})).await;
    let promoted = uuid_of(&s.publish(json!({"name": "promoted"})).await);
    let resp = s
        .post(&format!(
            "/images/{promoted}?action=channel-add&channel=dev"
        ))
        .header("accept-version", "~2")
        .json(&json!({"channel": "staging"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    for (query, names) in [
        ("", vec!["dev-only", "promoted"]),
        ("?channel=dev", vec!["dev-only", "promoted"]),
        ("?channel=staging", vec!["promoted"]),
        ("?channel=release", vec![]),
        ("?channel=*", vec!["dev-only", "promoted"]),
    ] {
        let (status, _, page) = html(&s, &format!("/catalog{query}")).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(row_names(&page), names, "{query}");
        let list = list_names(&s.get_json(&format!("/images{query}")).await.1);
        assert_eq!(row_names(&page), list, "{query}");
    }
    // The choice shows the channel listed (the default when none given).
    let (_, _, page) = html(&s, "/catalog").await;
    assert!(
        page.contains(
            "<select name=\"channel\"><option value=\"*\">all channels</option>\
<option selected>dev</option><option>staging</option><option>release</option></select>"
        ),
        "{page}"
    );
    let (_, _, page) = html(&s, "/catalog?channel=staging").await;
    assert!(page.contains("<option selected>staging</option>"));
    // Links from a channel's list stay in it.
    assert!(page.contains(&format!("/catalog/{promoted}?channel=staging")));
    let (_, _, page) = html(&s, "/catalog?channel=*").await;
    assert!(page.contains("<option value=\"*\" selected>all channels</option>"));
    // An unknown channel is the API's error, as a page.
    let (status, ct, page) = html(&s, "/catalog?channel=%3Cnope%3E").await;
    assert_eq!(status, 422, "{page}");
    assert_eq!(ct, "text/html; charset=utf-8");
    assert!(page.contains("unknown channel: &lt;nope&gt;"), "{page}");
}

/// Render the list and an image's page in headless Chromium at phone and
/// desktop widths: real PNGs of the window's size, and DOMs with the
/// expected elements. Set `IMGAPI_CATALOG_SCREENSHOTS=<dir>` to keep the
/// PNGs for a look.
#[tokio::test]
async fn renders_in_headless_chromium_at_phone_and_desktop_widths() {
    let Some(chromium) = which("chromium") else {
        eprintln!("SKIP: chromium not installed");
        return;
    };
    let s = TestServer::spawn().await;
    for (name, os) in [
        ("alpha-image", "smartos"),
        ("beta-image", "linux"),
        ("gamma-image", "linux"),
    ] {
        let img = s
            .publish(json!({"name": name, "os": os, "version": "20260101",
                "description": "An image for the browser test, with a description long enough to wrap on a phone.",
                "homepage": "https://example.com/images",
                "tags": {"role": "browser-test"}}))
            .await;
        if name == "alpha-image" {
            put_icon(&s, &uuid_of(&img)).await;
        }
    }
    let detail_uuid = uuid_of(&s.get_json("/images?name=alpha-image").await.1[0]);
    let tmp = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("IMGAPI_CATALOG_SCREENSHOTS").map(std::path::PathBuf::from);

    for (label, width, height) in [("phone", 390u32, 844u32), ("desktop", 1280, 800)] {
        for (page_name, path) in [
            ("list", "/catalog".to_string()),
            ("image", format!("/catalog/{detail_uuid}")),
        ] {
            let url = format!("{}{path}", s.url);
            let shot = tmp.path().join(format!("{page_name}-{label}.png"));
            let out = chromium_run(
                &chromium,
                tmp.path(),
                width,
                height,
                &format!("--screenshot={}", shot.display()),
                &url,
            )
            .await;
            let png = std::fs::read(&shot).unwrap_or_else(|e| {
                panic!(
                    "no screenshot ({e}); chromium said: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            assert!(
                png.len() > 5 * 1024,
                "{label} {page_name}: {} bytes",
                png.len()
            );
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
            assert_eq!(&png[12..16], b"IHDR");
            let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
            let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
            assert_eq!((w, h), (width, height), "{label} {page_name}");
            assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND", "complete PNG");
            if let Some(dir) = &keep {
                std::fs::create_dir_all(dir).unwrap();
                std::fs::copy(&shot, dir.join(shot.file_name().unwrap())).unwrap();
            }

            let out = chromium_run(&chromium, tmp.path(), width, height, "--dump-dom", &url).await;
            let dom = String::from_utf8_lossy(&out.stdout);
            assert!(dom.contains("<meta name=\"viewport\""), "{dom}");
            if page_name == "list" {
                for name in ["alpha-image", "beta-image", "gamma-image"] {
                    assert!(
                        dom.contains(&format!(">{name}</a>")),
                        "{name} not in the DOM: {dom}"
                    );
                }
                assert!(dom.contains("<table class=\"images\">"), "{dom}");
                assert!(dom.contains("<form class=\"filters\""), "{dom}");
                assert!(dom.contains("<select name=\"os\">"), "{dom}");
                assert!(
                    dom.contains(&format!("src=\"/images/{detail_uuid}/icon\"")),
                    "{dom}"
                );
                assert!(dom.contains("</time>"), "{dom}");
            } else {
                assert!(dom.contains("<table class=\"files stack\">"), "{dom}");
                assert!(dom.contains("<table class=\"tags pairs\">"), "{dom}");
                assert!(dom.contains(
                    "<a href=\"https://example.com/images\" rel=\"noopener noreferrer nofollow\">"
                ), "{dom}");
                assert!(dom.contains("<h1>alpha-image 20260101</h1>"), "{dom}");
            }
        }
    }
}

async fn chromium_run(
    chromium: &std::path::Path,
    tmp: &std::path::Path,
    width: u32,
    height: u32,
    action: &str,
    url: &str,
) -> std::process::Output {
    let profile = tempfile::tempdir_in(tmp).unwrap();
    let mut cmd = tokio::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--window-size={width},{height}"))
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(action)
    .arg(url)
    .kill_on_drop(true);
    tokio::time::timeout(std::time::Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium timed out")
        .expect("chromium runs")
}

/// A signed image's page lists its signatures; an unsigned one has no
/// such section.
#[tokio::test]
async fn image_page_lists_signatures() {
    let s = TestServer::spawn().await;
    let unsigned = uuid_of(&s.publish(json!({"name": "unsigned"})).await);
    let (_, _, page) = html(&s, &format!("/catalog/{unsigned}")).await;
    assert!(!page.contains("<h2>Signatures"), "{page}");

    let img = s.create(json!({"name": "signed"})).await;
    let uuid = uuid_of(&img);
    assert_eq!(s.upload(&uuid, b"signed".to_vec()).await.0, 200);
    let text = crate::signatures::statement(&s, &uuid).await;
    let (status, sig) =
        crate::signatures::add_signature(&s, &uuid, &crate::signatures::sshsig(5, &text)).await;
    assert_eq!(status, 200, "{sig}");
    assert_eq!(s.activate(&uuid).await.0, 200);
    let (status, _, page) = html(&s, &format!("/catalog/{uuid}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<h2>Signatures</h2>"), "{page}");
    assert!(
        page.contains(sig["fingerprint"].as_str().unwrap()),
        "{page}"
    );
    assert!(
        page.contains("<td data-label=\"Verifies\">yes</td>"),
        "{page}"
    );
    assert!(
        page.contains(&format!("href=\"/images/{uuid}/signatures\"")),
        "{page}"
    );
}
