//! What a test server's blob store holds out of sight: puts in progress
//! (local staging files, S3 multipart uploads under the server's prefix).
//! An S3 server that cannot list multipart uploads fails the test: a
//! check that cannot look would pass for nothing.

use crate::support::TestServer;

/// The server's S3 store (its prefix is recorded in the data dir), when
/// the suite runs on S3.
pub fn s3_store(s: &TestServer) -> Option<imgapi_blob::S3BlobStore> {
    let prefix = std::fs::read_to_string(s.data_dir.join("s3-prefix")).ok()?;
    Some(s3_store_at(&prefix))
}

/// The test bucket under `prefix`.
pub fn s3_store_at(prefix: &str) -> imgapi_blob::S3BlobStore {
    #[allow(clippy::disallowed_methods)] // test harness switch and credentials
    let env = |k: &str| std::env::var(k).ok();
    imgapi_blob::S3BlobStore::open(imgapi_blob::S3Config {
        endpoint: env("IMGAPI_TEST_S3_ENDPOINT"),
        bucket: env("IMGAPI_TEST_S3_BUCKET").unwrap_or_default(),
        region: env("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
        prefix: prefix.trim().to_string(),
        access_key_id: env("AWS_ACCESS_KEY_ID"),
        secret_access_key: env("AWS_SECRET_ACCESS_KEY"),
    })
    .unwrap()
}

/// Incomplete S3 multipart uploads under the server's prefix (0 on local
/// disk).
pub async fn pending_multipart_uploads(s: &TestServer) -> usize {
    let Some(store) = s3_store(s) else { return 0 };
    store
        .pending_uploads()
        .await
        .expect("the S3 server must list multipart uploads")
        .len()
}

/// Staging files of puts in progress on local disk (none on S3; staged
/// session parts, under `sessions/`, are not counted).
pub fn staging_files(s: &TestServer) -> usize {
    let Ok(dir) = std::fs::read_dir(s.data_dir.join("files/.staging")) else {
        return 0;
    };
    dir.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .count()
}

/// Puts in progress, whatever the backend.
pub async fn puts_in_progress(s: &TestServer) -> usize {
    staging_files(s) + pending_multipart_uploads(s).await
}
