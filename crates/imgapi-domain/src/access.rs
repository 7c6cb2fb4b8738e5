//! Who may see or change an image (api.md §1.6).

use uuid::Uuid;

use crate::error::DomainError;
use crate::image::ImageRecord;

/// Rule 2: the image is visible to `account` iff it owns it, or the image
/// is activated and public, or activated and shared through the ACL.
pub fn visible_to(img: &ImageRecord, account: Uuid) -> bool {
    img.owner == account || (img.activated && (img.public || img.acl.contains(&account)))
}

/// Rule 3: a modifying request on behalf of `account` needs ownership.
pub fn ensure_owner(img: &ImageRecord, account: Option<Uuid>) -> Result<(), DomainError> {
    match account {
        Some(acc) if acc != img.owner => Err(DomainError::NotImageOwner {
            account: acc,
            uuid: img.uuid,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::fixtures::sample;

    #[test]
    fn visibility_rules() {
        let other = Uuid::from_u128(7);
        let mut img = sample();
        img.public = true;
        assert!(visible_to(&img, img.owner));
        assert!(
            !visible_to(&img, other),
            "unactivated public image is hidden"
        );
        img.activated = true;
        assert!(visible_to(&img, other));
        img.public = false;
        assert!(!visible_to(&img, other));
        img.acl.push(other);
        assert!(visible_to(&img, other));
    }

    #[test]
    fn ownership() {
        let img = sample();
        assert!(ensure_owner(&img, None).is_ok());
        assert!(ensure_owner(&img, Some(img.owner)).is_ok());
        assert!(matches!(
            ensure_owner(&img, Some(Uuid::from_u128(9))),
            Err(DomainError::NotImageOwner { .. })
        ));
    }
}
