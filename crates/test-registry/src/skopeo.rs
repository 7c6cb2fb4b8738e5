//! `skopeo` over plain http (`--*-tls-verify=false`): pushes fixture
//! layouts to a registry and reads back what a registry holds.

use std::path::Path;

use tokio::process::Command;

use crate::fixture::OciLayout;
use crate::Error;

/// How to push a layout.
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// `--format v2s2`: store Docker schema 2 (a Docker manifest list with `all`).
    pub docker_v2s2: bool,
    /// `--all`: push a whole index, every platform.
    pub all: bool,
    /// `--dest-creds user:password`.
    pub creds: Option<(String, String)>,
}

impl PushOptions {
    pub fn oci() -> PushOptions {
        PushOptions::default()
    }

    pub fn docker_v2s2() -> PushOptions {
        PushOptions {
            docker_v2s2: true,
            ..PushOptions::default()
        }
    }

    pub fn all(mut self) -> PushOptions {
        self.all = true;
        self
    }

    pub fn creds(mut self, user: &str, password: &str) -> PushOptions {
        self.creds = Some((user.to_string(), password.to_string()));
        self
    }
}

/// `skopeo copy oci:LAYOUT:TAG docker://DEST`, `DEST` = `host:port/name:tag`.
pub async fn push(
    layout: &OciLayout,
    tag: &str,
    dest: &str,
    options: &PushOptions,
) -> Result<(), Error> {
    let mut args = vec!["copy".to_string(), "--dest-tls-verify=false".to_string()];
    if options.docker_v2s2 {
        args.extend(["--format".to_string(), "v2s2".to_string()]);
    }
    if options.all {
        args.push("--all".to_string());
    }
    if let Some((user, password)) = &options.creds {
        args.extend(["--dest-creds".to_string(), format!("{user}:{password}")]);
    }
    args.extend([layout.reference(tag), format!("docker://{dest}")]);
    run(&args).await.map(drop)
}

/// `skopeo inspect --raw docker://SOURCE`: the manifest text as stored.
pub async fn inspect_raw(source: &str, creds: Option<(&str, &str)>) -> Result<String, Error> {
    let mut args = vec![
        "inspect".to_string(),
        "--raw".to_string(),
        "--tls-verify=false".to_string(),
    ];
    if let Some((user, password)) = creds {
        args.extend(["--creds".to_string(), format!("{user}:{password}")]);
    }
    args.push(format!("docker://{source}"));
    run(&args).await
}

/// `skopeo copy docker://SOURCE dir:OUT` (fetches and verifies every blob).
pub async fn copy_to_dir(
    source: &str,
    out: &Path,
    creds: Option<(&str, &str)>,
) -> Result<(), Error> {
    let mut args = vec!["copy".to_string(), "--src-tls-verify=false".to_string()];
    if let Some((user, password)) = creds {
        args.extend(["--src-creds".to_string(), format!("{user}:{password}")]);
    }
    args.extend([
        format!("docker://{source}"),
        format!("dir:{}", out.display()),
    ]);
    run(&args).await.map(drop)
}

/// Runs skopeo; its stdout, or an error carrying its stderr.
async fn run(args: &[String]) -> Result<String, Error> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .await
        .map_err(Error::io("run skopeo"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(Error::Command {
        command: format!("skopeo {}", redact(args).join(" ")),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn redact(args: &[String]) -> Vec<String> {
    args.iter()
        .map(|a| match a.split_once(':') {
            Some((user, _)) if !a.contains('/') && !a.starts_with('-') => format!("{user}:***"),
            _ => a.clone(),
        })
        .collect()
}
