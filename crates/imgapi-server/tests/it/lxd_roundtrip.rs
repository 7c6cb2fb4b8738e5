//! Issue 16 end to end: LXD images that came in through
//! AdminImportLxdImage (from the simplestreams tree `lxd.rs` writes) are
//! served back out over `[simplestreams]`, and the real clients (`lxc`,
//! `sstream-query`) read them as they read the source tree: same
//! fingerprints, same aliases, same bytes.

use std::process::Command;

use serde_json::{json, Value};

use crate::lxd::{
    import, sha256_hex, squashfs_missing, uuid_of_fingerprint, Tree, COMBINED_ALIAS, SPLIT_ALIAS,
};
use crate::lxd_serve::{fingerprints, sstream_query, tls_server, Lxc};
use crate::support::*;

/// The alias names `lxc image list` shows for the image `fingerprint`.
fn aliases_of(listed: &[Value], fingerprint: &str) -> Vec<String> {
    let image = listed
        .iter()
        .find(|i| i["fingerprint"] == fingerprint)
        .unwrap_or_else(|| panic!("{fingerprint} not listed: {listed:?}"));
    let mut names: Vec<String> = image["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Import `alias` from the tree and make it public (a dc-mode server
/// imports private images, and only public ones are served).
async fn import_public(s: &TestServer, alias: &str, fingerprint: &str) {
    let (status, lines) = import(s, &format!("t:{alias}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        lines.last().unwrap()["payload"]["status"],
        "Pull complete",
        "{lines:?}"
    );
    let uuid = uuid_of_fingerprint(fingerprint);
    let (status, img) = s
        .post_json(
            &format!("/images/{uuid}?action=update"),
            &json!({"public": true}),
        )
        .await;
    assert_eq!(status, 200, "{img}");
}

// Multi-threaded: `lxc` runs as a blocking child process while the server
// answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lxd_images_imported_from_simplestreams_are_served_back_to_lxc() {
    let Some(bin) = which("lxc") else {
        eprintln!("SKIP: lxc not installed (Debian lxd-client)");
        return;
    };
    if let Some(why) = squashfs_missing() {
        eprintln!("SKIP: {why}");
        return;
    }
    let mut tree = Tree::new();
    let built = tree.publish("20240101_13:00");
    let source = tree.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let (s, cert) = tls_server(dir.path(), &crate::lxd::config(&source.url)).await;

    let combined_fp = built.combined_fingerprint();
    let split_fp = built.split_fingerprint();
    import_public(&s, SPLIT_ALIAS, &split_fp).await;
    import_public(&s, COMBINED_ALIAS, &combined_fp).await;

    let lxc = Lxc::with_remote(bin, dir.path().join("lxc"), cert.clone(), &s.url);
    let listed = lxc.list();
    let mut both = vec![combined_fp.clone(), split_fp.clone()];
    both.sort();
    assert_eq!(fingerprints(&listed), both, "{listed:?}");
    // lxc adds `ALIAS/ARCH` forms of its own; the tree's aliases are all there.
    for (fingerprint, aliases) in [
        (&combined_fp, [COMBINED_ALIAS, "alpine/3.19/default"]),
        (&split_fp, [SPLIT_ALIAS, "debian/bookworm"]),
    ] {
        let listed_aliases = aliases_of(&listed, fingerprint);
        for alias in aliases {
            assert!(
                listed_aliases.iter().any(|a| a == alias),
                "{alias} not in {listed_aliases:?}"
            );
        }
    }

    // lxc checks each item's sha256 and the fingerprint while exporting.
    assert_eq!(
        lxc.export(COMBINED_ALIAS, &dir.path().join("export-combined")),
        [built.combined.clone()]
    );
    let mut split = vec![built.meta.clone(), built.squashfs.clone()];
    split.sort();
    assert_eq!(
        lxc.export("debian/bookworm", &dir.path().join("export-split")),
        split
    );

    // python-simplestreams reads the same tree over the same TLS listener.
    let Some(query) = sstream_query() else {
        eprintln!("SKIP: sstream-query not installed (PyPI python-simplestreams)");
        return;
    };
    let out = Command::new(&query)
        .args(["--no-verify", "--json"])
        .arg(format!("{}/streams/v1/index.json", s.url))
        .env("SSL_CERT_FILE", &cert)
        .env("REQUESTS_CA_BUNDLE", &cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let items: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut got: Vec<(String, String)> = items
        .iter()
        .map(|i| {
            (
                i["ftype"].as_str().unwrap().to_string(),
                i["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("lxd.tar.xz".to_string(), sha256_hex(&built.meta)),
            ("lxd_combined.tar.gz".to_string(), combined_fp.clone()),
            ("squashfs".to_string(), sha256_hex(&built.squashfs)),
        ],
        "{items:?}"
    );
    let meta = items.iter().find(|i| i["ftype"] == "lxd.tar.xz").unwrap();
    assert_eq!(meta["combined_squashfs_sha256"], split_fp);
}
