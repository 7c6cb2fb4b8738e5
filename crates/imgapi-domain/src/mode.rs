//! Server mode (api.md §1.4) and the context validation depends on.

use std::fmt;
use std::str::FromStr;

/// The three server modes of api.md §1.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Public,
    Private,
    Dc,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Public => "public",
            Mode::Private => "private",
            Mode::Dc => "dc",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "public" => Ok(Mode::Public),
            "private" => Ok(Mode::Private),
            "dc" => Ok(Mode::Dc),
            other => Err(format!(
                "unknown mode `{other}` (options: public, private, dc)"
            )),
        }
    }
}

/// What validation needs to know about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleContext {
    pub mode: Mode,
    /// True when the server has `[[channels]]` configured.
    pub channels_enabled: bool,
}
