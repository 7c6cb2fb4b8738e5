//! Jobs (SQLite): the job writes the writer task applies. [`crate::JobStore`]
//! itself is shared with PostgreSQL (`crate::sql::jobs`).

use sqlx::sqlite::SqliteConnection;
use sqlx::Sqlite;

use super::{affected, map_insert_err};
use crate::sql::jobs::{JobSql, JobWrite};
use crate::MetaError;

/// Perform `write` on `conn`, inside the writer's transaction: the rows
/// it touched.
pub(super) async fn apply(conn: &mut SqliteConnection, write: &JobWrite) -> Result<i64, MetaError> {
    let done = JobSql::<Sqlite, i64>::write(write).execute(conn).await;
    match (done, write.inserted()) {
        (Err(e), Some(uuid)) => Err(map_insert_err(e, uuid)),
        (done, _) => affected(done),
    }
}
