//! The import pipeline: everything that brings images in from another
//! server.
//!
//! - The API operations: AddImageFileFromSource (api.md §5.6),
//!   AddImageFileFromUrl (§5.7), AdminImportImageFromSource (§5.19)
//!   ([`from_source`]), and the validation of AdminImportRemoteImage
//!   (§5.20) and ImportFromDatacenter (§5.21) ([`remote_image`]), whose
//!   work then runs as a job ([`jobs`]).
//! - `imgapi mirror` ([`mirror`]), which keeps this registry in sync with
//!   an upstream through the same steps.
//! - What they share: the outbound fetcher and its `[remote]` policy
//!   ([`fetch`], [`policy`]), a remote server's URLs ([`source`]), remote
//!   manifests ([`manifest`]), the walk down an origin chain ([`chain`]),
//!   the import steps ([`steps`], [`icon`], [`signatures`]: the source's
//!   signatures, re-verified against the copy) and their errors
//!   ([`error`]).
//!
//! Every outbound request goes through [`fetch::Fetcher`] and its
//! `[remote]` policy; a URL the policy refuses is a 422 InvalidParameter
//! naming the rule, found before any request is sent.

pub mod chain;
pub mod error;
pub mod fetch;
pub mod from_source;
pub mod icon;
pub mod jobs;
pub mod manifest;
pub mod mirror;
pub mod policy;
pub mod remote_image;
pub mod signatures;
pub mod source;
pub mod steps;

pub use error::ImportError;
pub use from_source::{add_file_from_source, add_file_from_url, import_from_source, FromUrlParams};
pub use remote_image::{import_from_datacenter, import_remote, RemoteImportParams};
