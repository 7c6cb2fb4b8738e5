//! Configurations that cannot work stop the server at start-up with a
//! message saying why: dc mode with channels, and a second server on the
//! data_dir of the embedded store.

use std::process::Command;
use std::time::Duration;

use imgapi_server::{AppState, Config};

use crate::support::*;

fn base_toml(data_dir: &std::path::Path) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"warn\"\nmetrics_listen = \"\"\n",
        data_dir.display().to_string()
    )
}

#[tokio::test]
async fn dc_mode_with_channels_refuses_to_start_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}mode = \"dc\"\n[[channels]]\nname = \"dev\"\ndescription = \"d\"\ndefault = true\n",
        base_toml(dir.path())
    );
    let refused = AppState::open(Config::from_toml(&toml).unwrap())
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        refused.contains("mode = \"dc\" with [[channels]] is not supported"),
        "{refused}"
    );
    assert!(
        refused.contains("remove the [[channels]] entries"),
        "{refused}"
    );
    assert!(
        refused.contains("channels is invalid with an IMGAPI not configured for channels"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_second_server_on_one_data_dir_stops_naming_the_lock_and_the_pid() {
    let s = TestServer::spawn_raw("").await;
    let toml = base_toml(&s.data_dir);
    // Another process.
    let config_file = s.data_dir.join("second.toml");
    std::fs::write(&config_file, &toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .arg("--config")
        .arg(&config_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second server started: {stderr}");
    let lock_file = s.data_dir.join("imgapi.lock");
    assert!(stderr.contains(&*lock_file.to_string_lossy()), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", std::process::id())),
        "{stderr}"
    );
    assert!(
        !stderr.contains("already exists"),
        "a migration ran: {stderr}"
    );
    // The tools still open the stores beside the server.
    let config = Config::from_toml(&toml).unwrap();
    assert!(AppState::open_for_tool(config.clone()).await.is_ok());
    assert!(imgapi_server::check::Stores::open(&config).await.is_ok());

    // Stopped, the server leaves the data_dir to the next one.
    let dir = s.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let next = TestServer::spawn_in(dir.path(), "").await;
    assert_eq!(next.get_json("/ping").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_on_a_fresh_data_dir_never_half_migrate() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let open = || AppState::open(Config::from_toml(&base_toml(dir.path())).unwrap());
        let (first, second) = tokio::join!(open(), open());
        let errors: Vec<String> = [&first, &second]
            .iter()
            .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("imgapi.lock"), "{errors:?}");
    }
}
