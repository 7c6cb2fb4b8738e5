//! The image state machine (manifest.md §6).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageState {
    Active,
    Unactivated,
    Disabled,
    Creating,
    Failed,
}

impl ImageState {
    pub const ALL: [ImageState; 5] = [
        ImageState::Active,
        ImageState::Unactivated,
        ImageState::Disabled,
        ImageState::Creating,
        ImageState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ImageState::Active => "active",
            ImageState::Unactivated => "unactivated",
            ImageState::Disabled => "disabled",
            ImageState::Creating => "creating",
            ImageState::Failed => "failed",
        }
    }

    /// The state derived from the two flags (manifest.md §6 table).
    pub fn derive(activated: bool, disabled: bool) -> ImageState {
        match (activated, disabled) {
            (false, _) => ImageState::Unactivated,
            (true, true) => ImageState::Disabled,
            (true, false) => ImageState::Active,
        }
    }
}

impl fmt::Display for ImageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImageState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_states() {
        assert_eq!(ImageState::derive(false, true), ImageState::Unactivated);
        assert_eq!(ImageState::derive(true, true), ImageState::Disabled);
        assert_eq!(ImageState::derive(true, false), ImageState::Active);
    }

    #[test]
    fn parse_round_trip() {
        for st in ImageState::ALL {
            assert_eq!(st.as_str().parse::<ImageState>(), Ok(st));
        }
        assert!("bogus".parse::<ImageState>().is_err());
    }
}
