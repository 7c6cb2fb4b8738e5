//! One deletion of a retention job: the image is checked again just
//! before it goes (it may have changed since the plan was made), then
//! deleted through `service::images::delete_image`, so the recycle bin
//! and protection apply as they do to DeleteImage.

use imgapi_domain::filter::{ImageQuery, Predicate, SortOrder};
use imgapi_domain::retention::Planned;
use uuid::Uuid;

use super::{plan_image, protected_images};
use crate::app::AppState;
use crate::service::images::{delete_image, Removal};
use crate::service::ServiceError;

/// What became of one planned deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// Already gone (deleted by someone else, or by an earlier run of
    /// this job).
    Gone,
    /// Not deleted, and why.
    Kept(String),
    /// The deletion failed.
    Failed(String),
}

/// Whether `delete_image` refused because the image is protected (it was
/// protected after planning).
fn refused_as_protected(e: &ServiceError) -> bool {
    matches!(e, ServiceError::ImageProtected(_))
}

/// Check `planned` again and delete it.
pub async fn delete_planned(app: &AppState, planned: &Planned) -> Deletion {
    match check_and_delete(app, planned).await {
        Ok(outcome) => outcome,
        Err(e) => Deletion::Failed(e.to_string()),
    }
}

async fn check_and_delete(app: &AppState, planned: &Planned) -> Result<Deletion, ServiceError> {
    let uuid = planned.image.uuid;
    let Some(stored) = app
        .meta
        .get(uuid)
        .await
        .map_err(ServiceError::meta(format!("error loading image {uuid}")))?
    else {
        return Ok(Deletion::Gone);
    };
    if plan_image(&stored.image) != planned.image {
        return Ok(Deletion::Kept("changed since the plan was made".into()));
    }
    if protected_images(app, &[uuid]).await?.contains(&uuid) {
        return Ok(Deletion::Kept("protected".into()));
    }
    if newest_active_version(app, planned).await? == Some(uuid) {
        return Ok(Deletion::Kept("last active version".into()));
    }
    match delete_image(
        app,
        stored,
        None,
        None,
        Removal::Requested {
            by: Some("retention".into()),
        },
    )
    .await
    {
        Ok(()) => Ok(Deletion::Deleted),
        Err(ServiceError::NotFound(_)) => Ok(Deletion::Gone),
        Err(ServiceError::ImageHasDependentImages { dependents, .. }) => {
            let of = dependents.first().map(Uuid::to_string).unwrap_or_default();
            Ok(Deletion::Kept(format!("origin of {of}")))
        }
        Err(e) if refused_as_protected(&e) => Ok(Deletion::Kept("protected".into())),
        Err(e) => Err(e),
    }
}

/// The newest active image of the planned image's (owner, name), now.
async fn newest_active_version(
    app: &AppState,
    planned: &Planned,
) -> Result<Option<Uuid>, ServiceError> {
    let query = ImageQuery {
        any_of: vec![vec![
            Predicate::OwnerEq(planned.image.owner.to_string()),
            Predicate::NameEq(planned.image.name.clone()),
            Predicate::StateEq("active".into()),
        ]],
        order: SortOrder::Desc,
        limit: Some(1),
    };
    let newest = app
        .meta
        .list(&query)
        .await
        .map_err(ServiceError::meta("error listing the versions of an image"))?;
    Ok(newest.first().map(|i| i.uuid))
}
