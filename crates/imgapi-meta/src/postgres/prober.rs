//! "Is PostgreSQL there?" asked on a connection of its own.
//!
//! A question through the pool would wait behind the pool's busy
//! connections, so a healthy database under a burst of slow queries would
//! look unreachable. This one connection is opened on first use, kept while
//! it works and replaced after any failure (a question abandoned half-way,
//! by a caller's timeout, drops the connection with it).

use std::str::FromStr;
use std::sync::Arc;

use imgapi_domain::redact::redact_url;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::Mutex;

use super::{describe, map_err};
use crate::MetaError;

/// A prober of the database at one URL.
pub struct PostgresProber {
    options: PgConnectOptions,
    target: Arc<str>,
    connection: Mutex<Option<PgConnection>>,
}

impl PostgresProber {
    /// No I/O yet: the connection opens at the first [`Self::probe`].
    pub fn new(url: &str) -> Result<Self, MetaError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| {
                MetaError::Backend(format!(
                    "invalid PostgreSQL URL `{}`: {}",
                    redact_url(url),
                    e
                ))
            })?
            .application_name("imgapi-probe");
        Ok(PostgresProber {
            target: describe(&options).into(),
            options,
            connection: Mutex::new(None),
        })
    }

    /// `SELECT 1`, connecting first when needed. Unbounded in time: the
    /// caller sets the limit.
    pub async fn probe(&self) -> Result<(), MetaError> {
        let mut slot = self.connection.lock().await;
        let mut connection = match slot.take() {
            Some(connection) => connection,
            None => PgConnection::connect_with(&self.options)
                .await
                .map_err(|e| map_err(&self.target, e))?,
        };
        sqlx::query("SELECT 1")
            .execute(&mut connection)
            .await
            .map_err(|e| map_err(&self.target, e))?;
        *slot = Some(connection);
        Ok(())
    }
}
