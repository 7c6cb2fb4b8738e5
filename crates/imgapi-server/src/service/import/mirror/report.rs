//! What a run tells: a line per image action and a summary.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{label, Outcome, Run};

/// Where progress goes. Library code writes no terminal codes: the
/// binary decides how (and whether) to show [`Reporter::transfer`].
pub trait Reporter: Send {
    /// One line about one image action, or about the run.
    fn line(&mut self, line: &str);
    /// Bytes of a file received so far (about twice a second while one
    /// downloads).
    fn transfer(&mut self, _uuid: Uuid, _done: u64, _total: u64) {}
    /// What a full run, or one applied page of a followed change feed,
    /// did (`imgapi mirror --follow`; a single run returns its summary).
    fn summary(&mut self, _summary: &MirrorSummary) {}
}

/// A [`Reporter`] writing lines to any writer (and no transfer progress).
pub struct Lines<W>(pub W);

impl<W: std::io::Write + Send> Reporter for Lines<W> {
    fn line(&mut self, line: &str) {
        let _ = writeln!(self.0, "{line}");
    }
}

/// One image that failed, or a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub uuid: Option<Uuid>,
    pub message: String,
}

/// What one run did (or, dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MirrorSummary {
    pub upstream: String,
    pub dry_run: bool,
    /// Images imported (origins included), or interrupted imports finished.
    pub new: usize,
    /// Present images whose manifest fields or icon were brought up to date.
    pub updated: usize,
    /// Present images disabled (as upstream), and enabled.
    pub disabled: usize,
    pub enabled: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub conflicts: usize,
    pub failed: usize,
    /// Unactivated upstream images, left alone.
    pub skipped: usize,
    /// File and icon bytes received (dry run: that would be).
    pub bytes: u64,
    /// Upstream signatures stored here, each verified against the copy
    /// (dry run: that would be). Absent from the JSON, and from the line,
    /// while all three signature counts are 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub signatures_carried: usize,
    /// Upstream signatures that do not verify against the copy: not stored.
    #[serde(skip_serializing_if = "is_zero")]
    pub signatures_refused: usize,
    /// Signatures removed here because the upstream removed them.
    #[serde(skip_serializing_if = "is_zero")]
    pub signatures_removed: usize,
    #[serde(rename = "took_secs", serialize_with = "secs")]
    pub took: Duration,
    /// Ended early by a stop request (after the image in progress).
    pub stopped: bool,
    pub conflict_images: Vec<Problem>,
    pub failures: Vec<Problem>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

impl MirrorSummary {
    /// Nothing failed (conflicts are reported, not failures).
    pub fn ok(&self) -> bool {
        self.failed == 0
    }

    /// The summary as one JSON object.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl fmt::Display for MirrorSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}new {}, updated {}, disabled {}, enabled {}, deleted {}, unchanged {}, conflicts {}, failed {}, ",
            if self.dry_run { "dry run: " } else { "" },
            self.new,
            self.updated,
            self.disabled,
            self.enabled,
            self.deleted,
            self.unchanged,
            self.conflicts,
            self.failed,
        )?;
        if self.signatures_carried + self.signatures_refused + self.signatures_removed > 0 {
            write!(
                f,
                "signatures carried {}, signatures refused {}, signatures removed {}, ",
                self.signatures_carried, self.signatures_refused, self.signatures_removed
            )?;
        }
        write!(
            f,
            "bytes {}, took {:.1}s",
            self.bytes,
            self.took.as_secs_f64()
        )
    }
}

impl Run<'_> {
    /// Handle one listed image and report it.
    pub(super) async fn process(&mut self, uuid: Uuid) {
        if !self.handled.insert(uuid) {
            return; // imported earlier in this run, as an origin
        }
        let Some(m) = self.upstream.get(&uuid).cloned() else {
            return;
        };
        let what = label(uuid, &m);
        let dry = self.opts.dry_run;
        match self.sync_listed(uuid, &m).await {
            Ok(Outcome::New(detail)) => {
                self.summary.new += 1;
                let verb = if dry { "would import" } else { "new" };
                self.say(&what, &format!("{verb}{detail}"));
            }
            Ok(Outcome::Changed { disabled, fields }) => {
                let also = if fields.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", fields.join(", "))
                };
                let verb = match disabled {
                    Some(true) => {
                        self.summary.disabled += 1;
                        "disable"
                    }
                    Some(false) => {
                        self.summary.enabled += 1;
                        "enable"
                    }
                    None => {
                        self.summary.updated += 1;
                        "update"
                    }
                };
                let text = if dry {
                    format!("would {verb}{also}")
                } else {
                    format!("{}{also}", past(verb))
                };
                self.say(&what, &text);
            }
            Ok(Outcome::Unchanged) => self.summary.unchanged += 1,
            Ok(Outcome::Conflict(message)) => {
                self.say(&what, &format!("CONFLICT, left alone: {message}"));
                self.summary.conflicts += 1;
                self.summary.conflict_images.push(Problem {
                    uuid: Some(uuid),
                    message,
                });
            }
            Ok(Outcome::Skipped(why)) => {
                self.summary.skipped += 1;
                if !self.quiet_skips {
                    self.say(&what, &format!("skipped: {why}"));
                }
            }
            Err(message) => self.fail(Some(uuid), &what, message),
        }
    }
}

fn past(verb: &str) -> String {
    format!("{verb}d")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn summary_line() {
        let s = MirrorSummary {
            new: 2,
            conflicts: 1,
            bytes: 1234,
            took: Duration::from_millis(1500),
            ..MirrorSummary::default()
        };
        assert_eq!(
            s.to_string(),
            "new 2, updated 0, disabled 0, enabled 0, deleted 0, unchanged 0, conflicts 1, failed 0, bytes 1234, took 1.5s"
        );
        assert!(s.ok());
        assert_eq!(s.to_json()["took_secs"], json!(1.5));
        assert!(
            s.to_json().get("signatures_carried").is_none(),
            "no signature counts while there were none"
        );
        let signed = MirrorSummary {
            signatures_carried: 2,
            signatures_refused: 1,
            ..s
        };
        assert_eq!(
            signed.to_string(),
            "new 2, updated 0, disabled 0, enabled 0, deleted 0, unchanged 0, conflicts 1, failed 0, signatures carried 2, signatures refused 1, signatures removed 0, bytes 1234, took 1.5s"
        );
        assert_eq!(signed.to_json()["signatures_refused"], json!(1));
    }
}
