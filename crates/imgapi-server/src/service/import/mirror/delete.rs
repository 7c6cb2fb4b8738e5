//! `--delete`: removing what this mirror imported and the upstream
//! listing no longer has.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use imgapi_domain::filter::ImageQuery;
use imgapi_domain::ImageRecord;
use uuid::Uuid;

use super::error::SyncError;
use super::{MirrorError, Run};
use crate::service::images::{delete_image, Removal};
use crate::service::ServiceError;

/// `imgapi mirror --delete` is a deletion an operator asked for: it goes to
/// the recycle bin when there is one.
fn mirror_removal() -> Removal {
    Removal::Requested {
        by: Some("imgapi mirror".into()),
    }
}

impl Run<'_> {
    /// `--delete`: what this mirror imported from this upstream and the
    /// listing no longer has, dependents first; the origin of a remaining
    /// image stays.
    pub(super) async fn delete_gone(
        &mut self,
        listed: &HashSet<Uuid>,
        stop: &AtomicBool,
    ) -> Result<(), MirrorError> {
        let locals = self
            .app
            .meta
            .list(&ImageQuery::all())
            .await
            .map_err(MirrorError::Local)?;
        let gone = locals.into_iter().filter(|i| !listed.contains(&i.uuid));
        self.delete_mirrored(gone.collect(), stop).await;
        Ok(())
    }

    /// Of `gone` (local images the upstream no longer has for this
    /// mirror), delete those this mirror imported from this upstream,
    /// dependents first; the origin of a remaining image stays.
    pub(super) async fn delete_mirrored(&mut self, gone: Vec<ImageRecord>, stop: &AtomicBool) {
        let mut candidates = Vec::new();
        for img in gone {
            match self.mirrored_here(img.uuid).await {
                Ok(true) => candidates.push(img),
                Ok(false) => {}
                Err(e) => self.fail(
                    Some(img.uuid),
                    &img.uuid.to_string(),
                    SyncError::Provenance(e),
                ),
            }
        }
        // Newest first: dependents usually come after their origins.
        candidates.reverse();
        let mut deleted: HashSet<Uuid> = HashSet::new();
        let mut given_up: HashSet<Uuid> = HashSet::new();
        loop {
            let mut progress = false;
            for img in &candidates {
                if deleted.contains(&img.uuid) || given_up.contains(&img.uuid) {
                    continue;
                }
                if stop.load(Ordering::SeqCst) {
                    self.summary.stopped = true;
                    return;
                }
                let what = format!("{} {}@{}", img.uuid, img.name, img.version);
                let dependents = match self.app.meta.dependents(img.uuid, None).await {
                    Ok(d) => d,
                    Err(e) => {
                        given_up.insert(img.uuid);
                        self.fail(Some(img.uuid), &what, SyncError::Dependents(e));
                        continue;
                    }
                };
                if dependents.iter().any(|d| !deleted.contains(d)) {
                    continue;
                }
                if !self.opts.dry_run {
                    let result = match self.load(img.uuid).await {
                        Ok(Some(stored)) => {
                            delete_image(self.app, stored, None, None, mirror_removal())
                                .await
                                .map_err(SyncError::Step)
                        }
                        Ok(None) => Ok(()),
                        Err(e) => Err(e),
                    };
                    if let Err(SyncError::Step(ServiceError::ImageProtected(_))) = result {
                        // The operator's choice, not a failure; its origins stay too.
                        given_up.insert(img.uuid);
                        self.say(
                            &what,
                            &format!(
                                "kept although not upstream: protected (PUT /images/{}/lifecycle \
                                 with {{\"protected\": false}} lets --delete remove it)",
                                img.uuid
                            ),
                        );
                        continue;
                    }
                    if let Err(message) = result {
                        given_up.insert(img.uuid);
                        self.fail(Some(img.uuid), &what, SyncError::Delete(Box::new(message)));
                        continue;
                    }
                }
                deleted.insert(img.uuid);
                progress = true;
                self.summary.deleted += 1;
                let verb = if self.opts.dry_run {
                    "would delete"
                } else {
                    "deleted"
                };
                self.say(
                    &what,
                    &format!("{verb} (not in the upstream listing: gone, or outside the filters)"),
                );
            }
            if !progress {
                break;
            }
        }
        for img in &candidates {
            if deleted.contains(&img.uuid) || given_up.contains(&img.uuid) {
                continue;
            }
            let what = format!("{} {}@{}", img.uuid, img.name, img.version);
            let dependents = self
                .app
                .meta
                .dependents(img.uuid, None)
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|d| !deleted.contains(d))
                .map(|d| d.to_string())
                .collect::<Vec<_>>();
            self.say(
                &what,
                &format!(
                    "kept although not upstream: origin of {}",
                    dependents.join(", ")
                ),
            );
        }
    }
}
