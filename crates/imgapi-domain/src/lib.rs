//! Pure IMGAPI rules: the image record, manifest validation, the state
//! machine, access rules and the ListImages filter model.
//!
//! No I/O, no async, no HTTP. Depends only on `imgapi-types`; the stores and
//! the server depend on this crate, never the other way round.

pub mod access;
pub mod build;
pub mod dsapi;
pub mod error;
pub mod filter;
pub mod image;
pub mod mode;
pub mod redact;
pub mod retention;
pub mod serialize;
pub mod state;
pub mod tags;
pub mod units;
pub mod upgrade;
pub mod validate;

pub use error::DomainError;
pub use image::{IconRecord, ImageFile, ImageRecord};
pub use mode::{Mode, RuleContext};
pub use state::ImageState;
/// v1 (DSAPI) → v2 manifest upgrade (manifest.md §10), e.g. for imports
/// from a DSAPI source.
pub use upgrade::upgrade_legacy;
