//! Configurations that cannot work stop `imgapi` at start-up with a
//! message saying why: dc mode with channels, and a second server on the
//! data_dir of the embedded store (which also keeps concurrent starts
//! from racing through the migrations).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::restart::start;

/// A config file for the binary on `data_dir`, with `extra` keys.
fn config_file(data_dir: &Path, name: &str, extra: &str) -> PathBuf {
    let path = data_dir.join(name);
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"info\"\nmetrics_listen = \"127.0.0.1:0\"\n{extra}",
        data_dir.display().to_string()
    );
    std::fs::write(&path, toml).unwrap();
    path
}

fn run_to_exit(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn dc_mode_with_channels_refuses_to_start_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        "dc.toml",
        "mode = \"dc\"\n[[channels]]\nname = \"dev\"\ndescription = \"d\"\ndefault = true\n",
    );
    let out = run_to_exit(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("mode = \"dc\" with [[channels]] is not supported"),
        "{stderr}"
    );
    assert!(
        stderr.contains("remove the [[channels]] entries"),
        "{stderr}"
    );
    assert!(
        stderr.contains("channels is invalid with an IMGAPI not configured for channels"),
        "{stderr}"
    );
}

/// S3 storage with no credentials stops the start-up at once, naming what
/// to set, instead of asking a cloud metadata service nobody configured.
/// The endpoint is a closed port: no request is made before the refusal.
#[test]
fn s3_storage_without_credentials_stops_at_start_up_naming_the_variables() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        "s3.toml",
        "[storage]\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:1\"\nbucket = \"b\"\n",
    );
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .arg("--config")
        .arg(&config)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "{stderr}");
    assert!(
        stderr.contains("[storage] kind = \"s3\" has no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{stderr}"
    );
    assert!(stderr.contains("credentials = \"instance\""), "{stderr}");
}

#[tokio::test]
async fn a_second_server_on_one_data_dir_stops_naming_the_lock_and_the_pid() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "imgapi.toml", "");
    let mut first = start(&config);
    let out = run_to_exit(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second server started: {stderr}");
    let lock_file = dir.path().join("imgapi.lock");
    assert!(stderr.contains(&*lock_file.to_string_lossy()), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.child.id())),
        "{stderr}"
    );
    // The tools still work beside the server.
    let check = Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .args(["--config"])
        .arg(&config)
        .arg("check")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // Gone (even by kill -9), it leaves the data_dir to the next one.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let mut next = start(&config);
    next.child.kill().unwrap();
    next.child.wait().unwrap();
}

/// Start the binary without waiting for it.
fn spawn(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn concurrent_starts_on_a_fresh_data_dir_never_half_migrate() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let config = config_file(dir.path(), "imgapi.toml", "");
        let mut children = [spawn(&config), spawn(&config)];
        // The loser exits at once; the winner serves until killed.
        let deadline = Instant::now() + Duration::from_secs(20);
        let loser = loop {
            if let Some(i) = children
                .iter_mut()
                .position(|c| c.try_wait().unwrap().is_some())
            {
                break i;
            }
            assert!(Instant::now() < deadline, "neither start was refused");
            std::thread::sleep(Duration::from_millis(20));
        };
        let winner = 1 - loser;
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            children[winner].try_wait().unwrap().is_none(),
            "both servers stopped"
        );
        children[winner].kill().unwrap();
        children[winner].wait().unwrap();
        let out = stderr_of(&mut children[loser]);
        assert!(out.contains("imgapi.lock"), "{out}");
        assert!(!out.contains("already exists"), "{out}");
    }
}

/// The stderr of an exited child.
fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        stderr.read_to_string(&mut text).unwrap();
    }
    text
}
