//! Upload sessions (PostgreSQL): each session write is one statement on the
//! pool. [`crate::UploadStore`] itself is shared with SQLite
//! (`crate::sql::uploads`).

use sqlx::Postgres;

use super::PostgresStore;
use crate::sql::affected_rows;
use crate::sql::uploads::{claim_upload_sql, upload_columns, UploadClaim, UploadSql, UploadWrite};
use crate::{MetaError, UploadSession};

type Sql = UploadSql<Postgres>;

/// The claim returns the session as claimed, in the same statement.
const CLAIM_RETURNING: &str = concat!(claim_upload_sql!(), " RETURNING ", upload_columns!());

impl PostgresStore {
    /// Apply `write`: the rows it touched.
    pub(super) async fn apply_upload(&self, write: UploadWrite) -> Result<i64, MetaError> {
        let done =
            Sql::write(&write)
                .execute(&self.pool)
                .await
                .map_err(|e| match write.inserted() {
                    Some(id) => self.insert_err(e, id),
                    None => self.err(e),
                })?;
        Ok(affected_rows(done.rows_affected()))
    }

    /// Take the lease and read the session in one statement.
    pub(super) async fn claim_returning_upload(
        &self,
        claim: UploadClaim,
    ) -> Result<Option<UploadSession>, MetaError> {
        let row = Sql::claim(CLAIM_RETURNING, &claim)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| Sql::decode(&r, |e| self.err(e))).transpose()
    }
}
