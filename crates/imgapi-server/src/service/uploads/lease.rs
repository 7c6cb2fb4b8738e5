//! Upload-session leases as this instance takes them: who holds one
//! ([`LeaseHolder`]), the guard of a held lease ([`Lease`]), and the
//! start-up release of the leases an earlier run of this instance left
//! behind ([`release_stale_leases`]).
//!
//! A lease owner names the instance (host and listen address: stable
//! across restarts), this run of it (a boot id drawn at start-up) and the
//! request. An instance killed mid-chunk (kill -9, crash, power cut) never
//! releases its leases; when it starts again under the same name, every
//! lease of its name with another boot id is known to be dead and ends
//! at once. An instance that never comes back, or comes back under
//! another name, leaves its leases to expire.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imgapi_meta::UploadSession;
use uuid::Uuid;

use super::{not_found, now_ms};
use crate::app::AppState;
use crate::service::ServiceError;

/// How often a chunk in progress renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(10);

/// How long a lease lasts without renewal: a chunk whose client sends
/// nothing for the body idle timeout fails anyway.
fn lease_ms(app: &AppState) -> i64 {
    let secs = app.config.body_idle_timeout_secs.saturating_add(30);
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// This instance as a holder of upload-session leases.
#[derive(Debug, Clone)]
pub struct LeaseHolder {
    /// `host@listen/`: the same for every run of this instance. The `/`
    /// ends it, so no other instance's name starts with it (`…:80/` is
    /// not a prefix of `…:8080/`); hostnames and addresses have none.
    instance: String,
    /// `instance` + this run's boot id + `/`.
    run: String,
}

impl LeaseHolder {
    /// The holder of an instance on `hostname` listening on `listen`. With
    /// port 0 the port differs on every run, so the name is not stable:
    /// the boot id goes into the instance name too, and no later run ever
    /// takes this run's leases for its own.
    pub fn new(hostname: &str, listen: SocketAddr) -> LeaseHolder {
        let boot = Uuid::new_v4().simple().to_string();
        let instance = if listen.port() == 0 {
            format!("{hostname}@{listen}~{boot}/")
        } else {
            format!("{hostname}@{listen}/")
        };
        let run = format!("{instance}{boot}/");
        LeaseHolder { instance, run }
    }

    /// A fresh owner name for one request's lease: requests of one run
    /// must not be able to end or advance each other's leases.
    fn owner_of_request(&self) -> String {
        format!("{}{}", self.run, Uuid::new_v4().simple())
    }
}

/// End the leases an earlier run of this instance held when it died, so
/// that their sessions take a chunk at once instead of after the lease
/// time. Run once at start-up, once the listen address is this process's
/// (a second process that cannot bind it never gets here). A failure is
/// logged: the leases then expire by themselves.
pub async fn release_stale_leases(app: &AppState) {
    let holder = &app.upload_leases;
    match app
        .meta
        .release_stale_upload_leases(&holder.instance, &holder.run)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            released = n,
            "released the upload-session leases of this instance's previous run"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot release the upload-session leases of this instance's previous run; they expire by themselves"
        ),
    }
}

/// 409 UploadSessionBusy, saying when the holder's lease expires: the
/// latest the session frees (sooner when the holder finishes). At least
/// 1 s, also for a lease released since the claim failed.
pub(super) fn busy(session: &UploadSession) -> ServiceError {
    let left_ms = session
        .lease
        .as_ref()
        .map_or(0, |lease| lease.expires_ms.saturating_sub(now_ms()));
    let retry_after_secs = u64::try_from(left_ms.saturating_add(999) / 1000)
        .unwrap_or(0)
        .max(1);
    ServiceError::UploadSessionBusy {
        id: session.id,
        retry_after_secs,
    }
}

/// Holds a session's lease; releases it when dropped unreleased (the
/// request was cancelled: client gone, shutdown), so that the next request
/// need not wait for the lease to expire.
pub(super) struct Lease {
    meta: Arc<dyn imgapi_meta::MetaStore>,
    id: Uuid,
    pub(super) owner: String,
    held: bool,
}

impl Lease {
    pub(super) async fn claim(
        app: &AppState,
        id: Uuid,
    ) -> Result<(Lease, UploadSession), ServiceError> {
        let owner = app.upload_leases.owner_of_request();
        let now = now_ms();
        let claimed = app
            .meta
            .claim_upload(id, &owner, now, now.saturating_add(lease_ms(app)))
            .await
            .map_err(ServiceError::meta(format!(
                "error claiming upload session {id}"
            )))?;
        match claimed {
            Some(session) => Ok((
                Lease {
                    meta: Arc::clone(&app.meta),
                    id,
                    owner,
                    held: true,
                },
                session,
            )),
            None => match app.meta.get_upload(id).await {
                Ok(Some(session)) => Err(busy(&session)),
                Ok(None) => Err(not_found(id)),
                Err(e) => Err(ServiceError::meta(format!(
                    "error loading upload session {id}"
                ))(e)),
            },
        }
    }

    /// Keep the lease alive while `work` runs.
    pub(super) async fn renewing<T>(
        &self,
        app: &AppState,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let renew = async {
            let mut tick = tokio::time::interval(RENEW_EVERY);
            tick.tick().await; // the first tick is immediate
            loop {
                tick.tick().await;
                let until = now_ms().saturating_add(lease_ms(app));
                match self.meta.renew_upload(self.id, &self.owner, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(upload = %self.id, "upload session lease lost while writing")
                    }
                    Err(e) => {
                        tracing::warn!(upload = %self.id, error = %e, "could not renew upload session lease")
                    }
                }
            }
        };
        let work = std::pin::pin!(work);
        let renew = std::pin::pin!(renew);
        match futures_util::future::select(work, renew).await {
            futures_util::future::Either::Left((out, _)) => out,
            // (The renewal loop never ends; if it did, the work goes on.)
            futures_util::future::Either::Right(((), work)) => work.await,
        }
    }

    pub(super) async fn release(mut self) {
        self.held = false;
        if let Err(e) = self.meta.release_upload(self.id, &self.owner).await {
            tracing::warn!(upload = %self.id, error = %e, "could not release upload session lease (it expires by itself)");
        }
    }

    /// The lease ended another way (advance, delete).
    pub(super) fn ended(mut self) {
        self.held = false;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let (meta, id, owner) = (Arc::clone(&self.meta), self.id, self.owner.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = meta.release_upload(id, &owner).await;
            });
        }
    }
}
