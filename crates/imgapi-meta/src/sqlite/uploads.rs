//! Upload sessions (SQLite): the session writes the writer task applies.
//! [`crate::UploadStore`] itself is shared with PostgreSQL
//! (`crate::sql::uploads`).

use sqlx::sqlite::SqliteConnection;
use sqlx::Sqlite;

use super::{affected, map_insert_err, SqliteStore};
use crate::sql::uploads::{UploadClaim, UploadSql, UploadWrite};
use crate::sql::Write;
use crate::{MetaError, UploadSession, UploadStore};

/// Perform `write` on `conn`, inside the writer's transaction: the rows
/// it touched.
pub(super) async fn apply(
    conn: &mut SqliteConnection,
    write: &UploadWrite,
) -> Result<i64, MetaError> {
    let done = UploadSql::<Sqlite>::write(write).execute(conn).await;
    match (done, write.inserted()) {
        (Err(e), Some(id)) => Err(map_insert_err(e, id)),
        (done, _) => affected(done),
    }
}

impl SqliteStore {
    /// Take the lease, then read the session back (the single writer makes
    /// the two as good as one step).
    pub(super) async fn claim_and_read_upload(
        &self,
        claim: UploadClaim,
    ) -> Result<Option<UploadSession>, MetaError> {
        let id = claim.id;
        let claim = Write::Upload(UploadWrite::Claim(claim));
        if self.writes.run(claim).await? == 0 {
            return Ok(None);
        }
        self.get_upload(id).await
    }
}
