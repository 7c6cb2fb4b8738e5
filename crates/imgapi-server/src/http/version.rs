//! `Accept-Version` handling (api.md §1.3): a node-semver range that must be
//! satisfied by 1.0.0 or 2.0.0; ≥ 2 shows `channels`.

use semver::{Version, VersionReq};

/// The negotiated API version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion {
    /// `channels` is serialised (range is `*` or admits 2.0.0).
    pub v2: bool,
}

impl ApiVersion {
    pub const V1: ApiVersion = ApiVersion { v2: false };
    pub const LATEST: ApiVersion = ApiVersion { v2: true };
}

/// Translate one node-semver comparator set (space separated) into the
/// comma-separated syntax of the `semver` crate. A bare version is exact.
fn node_set_to_req(set: &str) -> Option<VersionReq> {
    let parts: Vec<String> = set
        .split_whitespace()
        .map(|p| {
            let bare = p.trim_start_matches('v');
            if bare.starts_with(|c: char| c.is_ascii_digit()) && bare.split('.').count() == 3 {
                format!("={bare}")
            } else {
                p.to_string()
            }
        })
        .collect();
    if parts.is_empty() {
        return VersionReq::parse("*").ok();
    }
    VersionReq::parse(&parts.join(", ")).ok()
}

/// `None` when no supported version satisfies the range (→ 400 InvalidVersion).
pub fn negotiate(header: Option<&str>) -> Option<ApiVersion> {
    let Some(range) = header.map(str::trim) else {
        return Some(ApiVersion::V1);
    };
    if range == "*" || range.is_empty() {
        return Some(ApiVersion::LATEST);
    }
    let v1 = Version::new(1, 0, 0);
    let v2 = Version::new(2, 0, 0);
    let mut any = false;
    let mut has_v2 = false;
    for set in range.split("||") {
        let req = node_set_to_req(set)?;
        any |= req.matches(&v1) || req.matches(&v2);
        has_v2 |= req.matches(&v2);
    }
    any.then_some(ApiVersion { v2: has_v2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(h: &str) -> Option<bool> {
        negotiate(Some(h)).map(|v| v.v2)
    }

    #[test]
    fn ranges_from_the_spec() {
        assert_eq!(negotiate(None), Some(ApiVersion::V1));
        for h in ["~1", "1.0.0"] {
            assert_eq!(v2(h), Some(false), "{h}");
        }
        for h in ["*", "~2", "^2", "2.0.0", ">=1", ">1.5.0"] {
            assert_eq!(v2(h), Some(true), "{h}");
        }
        for h in ["~99", "1.5.0", "2.0.1", "garbage"] {
            assert_eq!(v2(h), None, "{h}");
        }
    }
}
