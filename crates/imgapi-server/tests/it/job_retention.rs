//! Finished jobs older than `jobs_retention_days` are deleted by the
//! server's own task, started with it; unfinished jobs stay.

use std::time::Duration;

use imgapi_meta::{JobExecution, JobLease, JobRecord};
use imgapi_server::{AppState, Config};
use serde_json::json;
use uuid::Uuid;

fn job(execution: JobExecution, finished_at: &str) -> JobRecord {
    JobRecord {
        uuid: Uuid::new_v4(),
        image_uuid: Uuid::new_v4(),
        name: "import-remote-image".into(),
        execution,
        params: json!({}),
        chain_results: vec![],
        created_at: "2020-01-01T00:00:00.000Z".into(),
        started_at: Some("2020-01-01T00:00:00.000Z".into()),
        finished_at: Some(finished_at.into()),
        lease: None,
        attempts: 1,
    }
}

#[tokio::test]
async fn serve_prunes_finished_jobs_past_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"warn\"\njobs_retention_days = 30\n",
        dir.path().display().to_string()
    );
    let app = AppState::open(Config::from_toml(&toml).unwrap())
        .await
        .unwrap();
    let recent = imgapi_domain::image::now_iso();
    let old_finished = job(JobExecution::Failed, "2020-01-02T00:00:00.000Z");
    let recent_finished = job(JobExecution::Succeeded, &recent);
    // Leased by another instance for long, so this server does not run it.
    let mut old_running = job(JobExecution::Running, "2020-01-02T00:00:00.000Z");
    old_running.lease = Some(JobLease {
        owner: "another-instance".into(),
        expires_ms: i64::MAX,
    });
    for j in [&old_finished, &recent_finished, &old_running] {
        app.meta.insert_job(j).await.unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(imgapi_server::serve(app.clone(), listener, async {
        let _ = rx.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.meta.get_job(old_finished.uuid).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a job finished long ago is pruned at start-up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(app
        .meta
        .get_job(recent_finished.uuid)
        .await
        .unwrap()
        .is_some());
    assert!(
        app.meta.get_job(old_running.uuid).await.unwrap().is_some(),
        "a running job is never pruned"
    );
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}
