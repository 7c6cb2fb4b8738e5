//! The configuration directory and the optional `<config dir>/profile.json`.
//!
//! A profile gives defaults for `--url`, `--user`, `--key` and `--channel`:
//!
//! ```json
//! {"url": "https://images.example.org", "user": "alice",
//!  "key": "~/.ssh/id_ed25519", "channel": "staging"}
//! ```
//!
//! Precedence, for each setting on its own: flag > environment variable >
//! profile. Every key is optional; unknown keys are an error (a typo would
//! otherwise be silently ignored). `key` may start with `~/`; a relative
//! `key` is relative to the config directory.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::Cli;
use crate::commands::Failure;

pub const PROFILE_FILE: &str = "profile.json";

/// `--config-dir` / `IMGADM_CONFIG_DIR`, else `~/.imgadm`; `None` when
/// neither is given and `$HOME` is not set.
pub fn config_dir(given: Option<&Path>) -> Option<PathBuf> {
    match given {
        Some(d) => Some(d.to_path_buf()),
        None => std::env::var_os("HOME").map(|home| Path::new(&home).join(".imgadm")),
    }
}

/// Settings read from a profile file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Profile {
    pub url: Option<String>,
    pub user: Option<String>,
    pub key: Option<PathBuf>,
    pub channel: Option<String>,
}

impl Profile {
    /// Read `<dir>/profile.json`; a missing file is an empty profile, an
    /// unreadable or invalid one a usage error naming it.
    pub fn load(dir: &Path) -> Result<Profile, Failure> {
        let path = dir.join(PROFILE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Profile::default()),
            Err(e) => {
                return Err(Failure::usage(format!(
                    "cannot read profile {}: {e}",
                    path.display()
                )))
            }
        };
        Profile::parse(&text, dir)
            .map_err(|e| Failure::usage(format!("invalid profile {}: {e}", path.display())))
    }

    fn parse(text: &str, dir: &Path) -> Result<Profile, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let Value::Object(map) = v else {
            return Err("not a JSON object".into());
        };
        let mut p = Profile::default();
        for (k, v) in map {
            let s = match v {
                Value::String(s) => s,
                Value::Null => continue,
                other => return Err(format!("\"{k}\" must be a string, not {other}")),
            };
            match k.as_str() {
                "url" => p.url = Some(s),
                "user" => p.user = Some(s),
                "key" => p.key = Some(key_path(&s, dir)),
                "channel" => p.channel = Some(s),
                _ => {
                    return Err(format!(
                        "unknown key \"{k}\" (known: url, user, key, channel)"
                    ))
                }
            }
        }
        Ok(p)
    }
}

fn key_path(s: &str, dir: &Path) -> PathBuf {
    if let Some(rest) = s.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return Path::new(&home).join(rest);
        }
    }
    let p = PathBuf::from(s);
    if p.is_relative() {
        dir.join(p)
    } else {
        p
    }
}

/// Fill the settings the flags and environment left unset from the profile.
pub fn apply(cli: &mut Cli) -> Result<(), Failure> {
    let Some(dir) = config_dir(cli.config_dir.as_deref()) else {
        return Ok(());
    };
    let p = Profile::load(&dir)?;
    fill(&mut cli.url, p.url);
    fill(&mut cli.user, p.user);
    fill(&mut cli.key, p.key);
    fill(&mut cli.channel, p.channel);
    Ok(())
}

fn fill<T>(slot: &mut Option<T>, from_profile: Option<T>) {
    if slot.is_none() {
        *slot = from_profile;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_keys() {
        let dir = Path::new("/cfg");
        let p = Profile::parse(
            r#"{"url":"http://x","user":"u","key":"k/id","channel":"dev"}"#,
            dir,
        )
        .unwrap();
        assert_eq!(p.url.as_deref(), Some("http://x"));
        assert_eq!(p.user.as_deref(), Some("u"));
        assert_eq!(p.key, Some(PathBuf::from("/cfg/k/id")));
        assert_eq!(p.channel.as_deref(), Some("dev"));
        assert_eq!(
            Profile::parse(r#"{"key":"/abs"}"#, dir).unwrap().key,
            Some(PathBuf::from("/abs"))
        );
    }

    #[test]
    fn rejects_unknown_keys_and_non_strings() {
        let dir = Path::new("/cfg");
        assert!(Profile::parse(r#"{"uri":"http://x"}"#, dir)
            .unwrap_err()
            .contains("unknown key \"uri\""));
        assert!(Profile::parse(r#"{"url":1}"#, dir).is_err());
        assert!(Profile::parse("[]", dir).is_err());
        assert_eq!(
            Profile::parse(r#"{"url":null}"#, dir).unwrap(),
            Profile::default()
        );
    }
}
