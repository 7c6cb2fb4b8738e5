//! LXD images from simplestreams servers (docs/lxd.md): AdminImportLxdImage
//! and `imgapi mirror --upstream-simplestreams`.
//!
//! - [`streams`]: the index and products documents; which product,
//!   version and items an import takes.
//! - [`remote`]: reading a server under the `[remote]` policy.
//! - [`manifest`]: the IMGAPI manifest of an LXD image.
//! - [`import`]: the operation: verified download, one record.
//! - [`mirror`]: `imgapi mirror --upstream-simplestreams`.

pub mod import;
pub mod manifest;
pub mod mirror;
pub mod remote;
pub mod streams;
