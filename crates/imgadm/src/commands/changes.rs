//! `changes`: the server's change feed (an IMGAPI extension,
//! docs/events.md), as a table or one JSON event per line; with
//! `--follow`, long-polled until Ctrl-C.

use std::time::Duration;

use clap::Args;
use imgapi_client::{ChangeEvent, ChangeKind, ClientError, FeedError};

use super::{Ctx, Failure};
use crate::stdout::outln;

/// Long-poll wait of `--follow` (the server's maximum is 60).
const FOLLOW_WAIT: u32 = 30;
/// Page size of a one-shot listing (the server's maximum).
const PAGE: u32 = 1000;
/// First retry delay after a transient error while following; doubled up
/// to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Exit status when the server no longer has the events after the cursor
/// (410 ChangesExpired): the caller must resynchronize.
pub const EXPIRED_EXIT: u8 = 4;

#[derive(Debug, Args)]
pub struct ChangesArgs {
    /// Show the events after this sequence number (0: every event the
    /// server still keeps).
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    pub since: i64,
    /// Keep watching: long-poll the server and print events as they come,
    /// until Ctrl-C (exit 0). Connection errors and 5xx answers are retried
    /// with backoff (a line on stderr each time).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only events of these types (`image.created` or `created`; repeat or
    /// separate with commas).
    #[arg(long = "type", value_name = "KIND", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Omit the header row.
    #[arg(short = 'H')]
    pub no_header: bool,
}

/// The kinds `--type` names (`None`: every kind).
fn kinds(names: &[String]) -> Result<Option<Vec<ChangeKind>>, Failure> {
    if names.is_empty() {
        return Ok(None);
    }
    names
        .iter()
        .map(|name| {
            let full = if name.starts_with("image.") {
                name.clone()
            } else {
                format!("image.{name}")
            };
            ChangeKind::parse(&full).ok_or_else(|| {
                let known: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
                Failure::usage(format!(
                    "unknown event type {name:?} (known: {})",
                    known.join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Column widths of the table: fixed, so that rows printed as they come
/// line up (a kind name is at most 23 characters, a time 24).
const SEQ_WIDTH: usize = 8;
const TIME_WIDTH: usize = 24;
const TYPE_WIDTH: usize = 23;
const UUID_WIDTH: usize = 36;
const LABEL_WIDTH: usize = 24;

fn row(seq: &str, time: &str, kind: &str, uuid: &str, label: &str, fields: &str) -> String {
    format!(
        "{seq:<SEQ_WIDTH$}  {time:<TIME_WIDTH$}  {kind:<TYPE_WIDTH$}  {uuid:<UUID_WIDTH$}  {label:<LABEL_WIDTH$}  {fields}"
    )
    .trim_end()
    .to_string()
}

fn header() -> String {
    row("SEQ", "TIME", "TYPE", "UUID", "NAME@VERSION", "FIELDS")
}

fn event_row(e: &ChangeEvent) -> String {
    let fields = if e.fields.is_empty() {
        "-".to_string()
    } else {
        e.fields.join(",")
    };
    row(
        &e.seq.to_string(),
        &e.time,
        e.kind.as_str(),
        &e.uuid,
        &format!("{}@{}", e.name, e.version),
        &fields,
    )
}

/// Prints events as they come: a header before the first row (unless
/// `-H` or `-j`), one JSON object per line with `-j`; every line is
/// flushed, so `| jq` sees it at once.
struct Printer {
    json: bool,
    header: bool,
    only: Option<Vec<ChangeKind>>,
}

impl Printer {
    fn print(&mut self, events: &[ChangeEvent]) -> Result<(), Failure> {
        for e in events {
            if self.only.as_ref().is_some_and(|k| !k.contains(&e.kind)) {
                continue;
            }
            if self.json {
                let line = serde_json::to_string(e)
                    .map_err(|err| Failure::other(format!("cannot encode JSON: {err}")))?;
                outln!("{line}")?;
                continue;
            }
            if self.header {
                outln!("{}", header())?;
                self.header = false;
            }
            outln!("{}", event_row(e))?;
        }
        Ok(())
    }
}

/// A feed error as the command ends with it.
fn failure(e: ClientError, since: i64) -> Failure {
    match e.feed_error() {
        Some(FeedError::Expired) => Failure {
            code: Some("ChangesExpired".into()),
            message: format!("the registry no longer has events after {since}; resync"),
            exit: EXPIRED_EXIT,
            details: Vec::new(),
        },
        Some(FeedError::NoFeed) => Failure {
            code: None,
            message: "this IMGAPI has no change feed (an original IMGAPI?)".into(),
            exit: 3,
            details: Vec::new(),
        },
        None => e.into(),
    }
}

pub async fn run(ctx: &Ctx, args: ChangesArgs) -> Result<(), Failure> {
    if args.since < 0 {
        return Err(Failure::usage("--since must be 0 or more"));
    }
    let mut printer = Printer {
        json: ctx.json,
        header: !args.no_header && !ctx.json,
        only: kinds(&args.types)?,
    };
    if !args.follow {
        return list(ctx, args.since, &mut printer).await;
    }
    // Ctrl-C is how a follow ends: quietly, exit 0.
    let follow = follow(ctx, args.since, &mut printer);
    tokio::pin!(follow);
    tokio::select! {
        result = &mut follow => result,
        signal = tokio::signal::ctrl_c() => match signal {
            Ok(()) => Ok(()),
            Err(_) => follow.await,
        },
    }
}

/// Every retained event after `since`, page by page, then stop.
async fn list(ctx: &Ctx, since: i64, printer: &mut Printer) -> Result<(), Failure> {
    let mut cursor = since;
    loop {
        let page = ctx
            .client
            .changes(cursor, Some(PAGE), None)
            .await
            .map_err(|e| failure(e, cursor))?;
        printer.print(&page.events)?;
        // No event and no progress past hidden ones: the end of the feed.
        if page.events.is_empty() && page.next <= cursor {
            return Ok(());
        }
        if page.next <= cursor {
            return Err(Failure::other(format!(
                "the server's change feed does not advance past {cursor}"
            )));
        }
        cursor = page.next;
    }
}

/// Long-poll forever, printing as events come.
async fn follow(ctx: &Ctx, since: i64, printer: &mut Printer) -> Result<(), Failure> {
    let mut cursor = since;
    let mut backoff = FIRST_BACKOFF;
    loop {
        match ctx.client.changes(cursor, None, Some(FOLLOW_WAIT)).await {
            Ok(page) => {
                backoff = FIRST_BACKOFF;
                printer.print(&page.events)?;
                cursor = cursor.max(page.next);
            }
            Err(e) if e.feed_error().is_none() && e.is_transient() => {
                eprintln!(
                    "imgadm: {e}; retrying in {}s (following after {cursor})",
                    backoff.as_secs()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(failure(e, cursor)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        assert_eq!(kinds(&[]).unwrap(), None);
        assert_eq!(
            kinds(&["created".into(), "image.deleted".into()]).unwrap(),
            Some(vec![ChangeKind::Created, ChangeKind::Deleted])
        );
        let e = kinds(&["nope".into()]).unwrap_err();
        assert_eq!(e.exit, 2);
        assert!(
            e.message.contains("image.lifecycle_changed"),
            "{}",
            e.message
        );
    }

    #[test]
    fn rows_line_up() {
        let e = ChangeEvent {
            seq: 12,
            time: "2026-01-02T03:04:05.678Z".into(),
            kind: ChangeKind::Updated,
            uuid: "ada83a76-c9fb-4b39-9e72-ada8ee49c9ed".into(),
            owner: "930896af-bf8c-48d4-885c-6573a94b1853".into(),
            name: "base".into(),
            version: "1.0.0".into(),
            fields: vec!["description".into(), "tags".into()],
        };
        let (h, r) = (header(), event_row(&e));
        assert_eq!(h.find("TYPE"), r.find("image.updated"));
        assert_eq!(h.find("FIELDS"), r.find("description,tags"));
        assert!(r.starts_with("12        2026-01-02T03:04:05.678Z  image.updated  "));
    }
}
