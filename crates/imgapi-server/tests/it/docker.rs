//! AdminImportDockerImage and AdminPushDockerImage against real registries
//! (CNCF distribution, open / Basic / token auth) fed by skopeo from OCI
//! layouts written by the test. Skipped, with a visible line, when
//! docker-registry or skopeo is not installed.
//!
//! Expected uuids are computed here from the fixture digests (RFD 57), not
//! taken from the server.

mod expect;
mod setup;
mod stream;

mod faults;
mod import;
mod policy;
mod push;
mod validation;
