//! Jobs (PostgreSQL): each job write is one statement on the pool.
//! [`crate::JobStore`] itself is shared with SQLite (`crate::sql::jobs`).

use sqlx::Postgres;

use super::PostgresStore;
use crate::sql::affected_rows;
use crate::sql::jobs::{JobSql, JobWrite};
use crate::MetaError;

impl PostgresStore {
    /// Apply `write`: the rows it touched.
    pub(super) async fn apply_job(&self, write: JobWrite) -> Result<i64, MetaError> {
        let done = JobSql::<Postgres, i32>::write(&write)
            .execute(&self.pool)
            .await
            .map_err(|e| match write.inserted() {
                Some(uuid) => self.insert_err(e, uuid),
                None => self.err(e),
            })?;
        Ok(affected_rows(done.rows_affected()))
    }
}
