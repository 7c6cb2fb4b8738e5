//! Interrupted downloads, end to end: the built `imgadm` binary against an
//! in-process server through a loopback proxy (tests/common/proxy.rs) that
//! throttles, holds or cuts the download and counts the bytes it forwards.
//!
//! * `import_ctrl_c_in_a_terminal_then_resume`: `imgadm import` in a real
//!   terminal (a private tmux server): the progress bar renders, Ctrl-C stops
//!   it with nothing installed and the partial download kept, and a rerun
//!   fetches only the missing bytes. Skipped when tmux is not installed.
//! * `get_file_cut_then_resumed` / `import_cut_then_resumed`: the connection
//!   is cut mid-body; the same run reconnects and asks for the rest with
//!   `Range`, so the file crosses the wire once.
//! * `import_stopped_just_before_install_downloads_nothing_again`: an import
//!   stopped between verifying its download and installing it is finished by
//!   the next run without downloading the file again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::proxy::Proxy;
use common::tmux::{sh_quote, show, Tmux};
use common::{spawn, Server};

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::{json, Value};
use sha1::Digest;

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";
const MIB: u64 = 1024 * 1024;
/// Response headers and the image JSON the client fetches before the file
/// (twice for `import`): an upper bound on what the proxy forwards besides
/// file bytes in one run.
const OVERHEAD: u64 = 64 * 1024;
/// For waits that only fail when something is broken: generous, as on a
/// loaded 2-core machine publishing the big image alone can take a minute.
const PATIENCE: Duration = Duration::from_secs(300);

fn imgadm() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_imgadm"))
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Write `size` pseudo-random bytes (xorshift64) to `path`.
fn write_random(path: &Path, size: u64, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = seed | 1;
    let mut block = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        for w in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(MIB) as usize;
        f.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    f.into_inner().unwrap().sync_all().unwrap();
}

fn sha1_of(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut hasher = sha1::Sha1::new();
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return hex::encode(hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Publish an image of `size` random bytes (`imgadm create -f`); returns
/// its uuid and sha1 (computed by the server, checked by `imgadm create`
/// against its own). The data file is removed again.
fn publish(server: &Server, name: &str, size: u64) -> (String, String) {
    let t = Instant::now();
    let m = json!({
        "name": name, "version": "1.0.0", "type": "other", "os": "other",
        "owner": OWNER, "public": true
    });
    let mp = server.dir.path().join(format!("{name}.json"));
    std::fs::write(&mp, m.to_string()).unwrap();
    let fp = server.dir.path().join(format!("{name}.bin"));
    write_random(&fp, size, size ^ 0x9e37_79b9_7f4a_7c15);
    let out = Command::new(imgadm())
        .env("IMGAPI_URL", &server.url)
        // No profile from the user's ~/.imgadm.
        .env("IMGADM_CONFIG_DIR", server.dir.path())
        .args(["-j", "create", "-m", p(&mp), "-f", p(&fp)])
        .timeout(PATIENCE)
        .assert()
        .success();
    std::fs::remove_file(&fp).unwrap();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["state"], "active");
    assert_eq!(v["files"][0]["size"], size);
    eprintln!("published {size} bytes in {:?}", t.elapsed());
    let sha1 = v["files"][0]["sha1"].as_str().unwrap().to_string();
    (v["uuid"].as_str().unwrap().to_string(), sha1)
}

/// A consumer with its own config dir and store.
struct Consumer {
    dir: tempfile::TempDir,
}

impl Consumer {
    fn new() -> Consumer {
        Consumer {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config_dir(&self) -> &Path {
        self.dir.path()
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    /// `.tmp-<uuid>/file.part`: the partial download of an import.
    fn part(&self, uuid: &str) -> PathBuf {
        self.store().join(format!(".tmp-{uuid}")).join("file.part")
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new(imgadm());
        cmd.env_remove("IMGAPI_URL")
            .env("IMGADM_CONFIG_DIR", self.config_dir())
            .env("IMGADM_STORE", self.store())
            .timeout(PATIENCE);
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).assert().success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    }

    /// Installed image uuids, from `imgadm installed -j`.
    fn installed(&self) -> Vec<String> {
        let v: Value = serde_json::from_str(&self.ok(&["-j", "installed"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| m["uuid"].as_str().unwrap().to_string())
            .collect()
    }

    /// What an import left in the store: nothing installed, partial kept,
    /// lock released.
    fn assert_not_installed_partial_kept(&self, uuid: &str, size: u64) -> u64 {
        assert!(self.installed().is_empty(), "{:?}", self.installed());
        assert!(!self.store().join(uuid).exists());
        let part = len(&self.part(uuid));
        assert!(
            part > 0 && part < size,
            "partial download: {part} of {size}"
        );
        part
    }
}

/// Assert a rerun fetched only the missing `size - part` bytes.
fn assert_resumed(forwarded: u64, size: u64, part: u64) {
    assert!(
        forwarded >= size - part && forwarded <= size - part + OVERHEAD,
        "rerun forwarded {forwarded} bytes; file {size}, partial {part}"
    );
    assert!(forwarded < size, "rerun restarted from zero");
}

#[test]
fn import_ctrl_c_in_a_terminal_then_resume() {
    if !Tmux::available() {
        eprintln!("SKIP: tmux not installed");
        return;
    }
    const SIZE: u64 = 256 * MIB;
    let server = spawn();
    let (uuid, sha1) = publish(&server, "big", SIZE);
    let proxy = Proxy::start(&server.url);
    // 20 MB/s: some 13 s for the whole file. The hold at half the file makes
    // sure it cannot finish before Ctrl-C, however slow this test thread is.
    proxy.set_rate(20_000_000);
    proxy.hold_at(SIZE / 2);
    let c = Consumer::new();
    c.ok(&["sources", "add", &proxy.url]);

    // `trap :` makes sh outlive the interrupted child (a handler, unlike an
    // ignored signal, is not inherited), so it can report the exit status.
    let script = format!(
        "trap : INT; env -u IMGAPI_URL IMGADM_CONFIG_DIR={} IMGADM_STORE={} {} import {}; \
         echo EXIT=$?; exec sleep 3600",
        sh_quote(p(c.config_dir())),
        sh_quote(p(&c.store())),
        sh_quote(p(&imgadm())),
        uuid
    );
    let started = Instant::now();
    let tmux = Tmux::start(&script);
    let part = c.part(&uuid);
    let total = format!("/{}.00 MiB", SIZE / MIB);
    let screen = tmux.wait_for("the progress bar with some MiB downloaded", |s| {
        s.lines()
            .any(|l| l.starts_with("Downloading [") && l.contains(&total))
            // Enough kept that counting it in the rerun's rate would show.
            && len(&part) >= 64 * MIB
    });
    eprintln!("progress bar after {:?}:\n{screen}", started.elapsed());
    assert!(
        screen.contains(&format!("Importing image {uuid} (big@1.0.0)")),
        "{screen}"
    );
    let bar = screen
        .lines()
        .find(|l| l.starts_with("Downloading ["))
        .unwrap();
    assert!(bar.contains(" MiB/s") && bar.contains("eta"), "{bar}");

    tmux.send_keys("C-c");
    let screen = tmux.wait_for("the interrupted import to exit", |s| s.contains("EXIT="));
    eprintln!("after Ctrl-C:\n{screen}");
    // Stopped by SIGINT: 128 + 2, saying how to go on.
    assert!(screen.contains("EXIT=130"), "{screen}");
    assert!(
        screen.contains("interrupted; run the same command to resume"),
        "{screen}"
    );
    assert!(!screen.contains("Installed image"), "{screen}");
    drop(tmux);

    // Nothing installed, the partial download kept.
    let kept = c.assert_not_installed_partial_kept(&uuid, SIZE);
    assert!(kept >= 4 * MIB);
    assert!(
        proxy.wait_idle(PATIENCE),
        "interrupted connection still open"
    );
    let first = proxy.reset_down();
    assert!(kept <= first, "kept {kept}, forwarded {first}");

    // The rerun, in the terminal through the same 20 MB/s, fetches only the
    // rest: it says where it resumes, and its rate counts only this run's
    // bytes (counting the kept ones too showed several times the link).
    proxy.release();
    let t = Instant::now();
    let tmux = Tmux::start(&script);
    // A second of transfer in, so one burst cannot make the rate.
    let screen = tmux.wait_for("the rerun's progress bar", |s| {
        s.contains("EXIT=")
            || (len(&part) >= kept + 20 * MIB
                && s.lines()
                    .any(|l| l.starts_with("Downloading [") && bar_rate_mib(l).is_some()))
    });
    eprintln!("rerun:\n{screen}");
    // The note is longer than the 120 columns: join the wrapped lines.
    let joined = screen.replace('\n', "");
    let note = format!("imgadm: resuming the download of image {uuid} at ");
    assert!(joined.contains(&note), "{screen}");
    assert!(joined.contains(" of 256.0 MiB (at byte "), "{screen}");
    if let Some(rate) = screen
        .lines()
        .find(|l| l.starts_with("Downloading ["))
        .and_then(bar_rate_mib)
    {
        // 20 MB/s is 19.1 MiB/s; allow for a burst at the start, not for
        // the 64 MiB kept (counted, they made some 80 MiB/s here).
        assert!(rate < 45.0, "rate {rate} MiB/s through a 20 MB/s link");
    }
    let screen = tmux.wait_for("the rerun to finish", |s| s.contains("EXIT="));
    eprintln!("rerun took {:?}:\n{screen}", t.elapsed());
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains(&format!("Installed image {uuid} (big@1.0.0)")),
        "{screen}"
    );
    drop(tmux);
    assert_resumed(proxy.down(), SIZE, kept);
    assert_eq!(c.installed(), vec![uuid.clone()]);
    assert_eq!(sha1_of(&c.store().join(&uuid).join("file")), sha1);
    assert!(!c.store().join(format!(".tmp-{uuid}")).exists());
    // The interrupted import's lock (its pid is gone) was taken over and
    // released.
    assert!(!c.store().join(format!(".lock-{uuid}")).exists());
}

/// The `12.34 MiB/s` rate of a progress bar line, in MiB/s.
fn bar_rate_mib(line: &str) -> Option<f64> {
    let before = line.split(" MiB/s").next()?;
    if before.len() == line.len() {
        return None;
    }
    before.rsplit(' ').next()?.parse().ok()
}

/// Size of the images of the cut tests, and where the proxy cuts.
const CUT_SIZE: u64 = 24 * MIB;
const CUT_AT: u64 = 10 * MIB;

/// One run survived a cut: the client resumed with `Range` on a new
/// connection, so the proxy forwarded the file once (plus headers and the
/// manifests), not the first 10 MiB twice.
fn assert_resumed_within_run(proxy: &Proxy) {
    assert_eq!(proxy.cuts(), 1);
    assert!(
        proxy.connections() >= 2,
        "{} connections",
        proxy.connections()
    );
    let forwarded = proxy.down();
    assert!(
        (CUT_SIZE..=CUT_SIZE + 2 * OVERHEAD).contains(&forwarded),
        "forwarded {forwarded} bytes for a {CUT_SIZE}-byte file cut at {CUT_AT}"
    );
}

#[test]
fn get_file_cut_then_resumed() {
    let server = spawn();
    let (uuid, sha1) = publish(&server, "cut", CUT_SIZE);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("file.bin");
    let part = dir.path().join("file.bin.part");

    let cutting = Proxy::start(&server.url);
    cutting.cut_once_at(CUT_AT);
    let out = Command::new(imgadm())
        .env("IMGADM_CONFIG_DIR", dir.path())
        .args(["--url", &cutting.url, "get-file", &uuid, "-o", p(&dest)])
        .timeout(PATIENCE)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("({CUT_SIZE} bytes, sha1 {sha1})")),
        "{}",
        show(&out)
    );
    assert_resumed_within_run(&cutting);
    assert!(!part.exists());
    assert_eq!(sha1_of(&dest), sha1);
}

#[test]
fn import_cut_then_resumed() {
    let server = spawn();
    let (uuid, sha1) = publish(&server, "cutimport", CUT_SIZE);
    let c = Consumer::new();

    let cutting = Proxy::start(&server.url);
    cutting.cut_once_at(CUT_AT);
    c.ok(&["sources", "add", &cutting.url]);
    let out = c.ok(&["import", &uuid]);
    assert!(out.contains(&format!("Installed image {uuid}")), "{out}");
    assert_resumed_within_run(&cutting);
    assert_eq!(c.installed(), vec![uuid.clone()]);
    assert_eq!(sha1_of(&c.store().join(&uuid).join("file")), sha1);
    assert!(!c.store().join(format!(".tmp-{uuid}")).exists());
    assert!(!c.store().join(format!(".lock-{uuid}")).exists());
}

#[test]
fn import_stopped_just_before_install_downloads_nothing_again() {
    const SIZE: u64 = 6 * MIB;
    let server = spawn();
    let (uuid, sha1) = publish(&server, "late", SIZE);
    let proxy = Proxy::start(&server.url);
    let c = Consumer::new();
    c.ok(&["sources", "add", &proxy.url]);
    c.ok(&["import", &uuid]);
    // The state of an import stopped (Ctrl-C) after the download was
    // verified and renamed to `file`, before the directory was renamed into
    // place.
    let tmp = c.store().join(format!(".tmp-{uuid}"));
    std::fs::rename(c.store().join(&uuid), &tmp).unwrap();
    assert!(c.installed().is_empty());
    proxy.reset_down();

    let out = c.ok(&["import", &uuid]);
    assert!(out.contains(&format!("Installed image {uuid}")), "{out}");
    let forwarded = proxy.down();
    assert!(forwarded < OVERHEAD, "downloaded {forwarded} bytes again");
    assert_eq!(c.installed(), vec![uuid.clone()]);
    assert_eq!(sha1_of(&c.store().join(&uuid).join("file")), sha1);
    assert!(!tmp.exists());
}
