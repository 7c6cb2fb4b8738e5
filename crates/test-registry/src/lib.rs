//! Real Docker/OCI registry components for tests (dev-only; see README.md).
//!
//! Everything runs as plain processes or in-process servers on free
//! 127.0.0.1 ports and is stopped by PID or by dropping its handle: never a
//! system service.

mod background;
mod error;
pub mod fixture;
mod proxy;
mod registry;
pub mod skopeo;
mod token;

pub use error::Error;
pub use proxy::{Fault, FaultAction, FaultProxy};
pub use registry::{Registry, RegistryKind};
pub use token::{Grant, TokenIssuer, TokenRequest, TokenUser};

/// The external programs this crate drives.
const TOOLS: [&str; 4] = ["docker-registry", "skopeo", "htpasswd", "openssl"];

/// True when every program this crate drives is installed. Otherwise prints
/// a visible `skipped:` line (the caller then returns, passing) and answers
/// false.
#[allow(clippy::print_stdout)] // the skip line is meant to be seen
pub fn tools_installed() -> bool {
    let missing: Vec<&str> = TOOLS.into_iter().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return true;
    }
    println!(
        "skipped: docker-registry/skopeo not installed (missing: {}; .ci/run installs docker-registry skopeo apache2-utils)",
        missing.join(", ")
    );
    false
}

fn on_path(program: &str) -> bool {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|dir| dir.join(program).is_file())
}

/// A free TCP port on 127.0.0.1 (bound then released: a process started
/// right after can take it).
pub(crate) fn free_port() -> Result<u16, Error> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(Error::io("bind a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(Error::io("read a free port"))?
        .port())
}
