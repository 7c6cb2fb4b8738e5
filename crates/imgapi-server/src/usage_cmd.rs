//! `imgapi usage`: storage per owner and billing tag, straight from the
//! metadata store (the same numbers as `GET /usage`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use imgapi_meta::Usage;

use crate::config::Config;

/// `imgapi usage` arguments.
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Config file of the registry (else the top-level --config / IMGAPI_CONFIG).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Only this owner (a UUID).
    #[arg(long)]
    pub owner: Option<uuid::Uuid>,
    /// Print the answer of `GET /usage` (one JSON object) instead of tables.
    #[arg(long, short = 'j')]
    pub json: bool,
}

/// The tables: one line per owner, then one per billing tag (summed over
/// the owners shown), then the totals. Byte counts are exact.
pub fn write_text(
    usage: &Usage,
    bin: &[imgapi_meta::BinUsage],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<36}  {:>8}  {:>8}  {:>8}  {:>6}  {:>16}",
        "OWNER", "IMAGES", "ACTIVE", "FILES", "ICONS", "BYTES"
    )?;
    for o in &usage.owners {
        writeln!(
            out,
            "{:<36}  {:>8}  {:>8}  {:>8}  {:>6}  {:>16}",
            o.owner.to_string(),
            o.images,
            o.active,
            o.files,
            o.icons,
            o.bytes()
        )?;
    }
    let json = crate::service::usage::to_json(usage, bin);
    if let Some(tags) = json["billingTags"].as_object().filter(|t| !t.is_empty()) {
        writeln!(out)?;
        writeln!(
            out,
            "{:<36}  {:>8}  {:>16}",
            "BILLING TAG", "IMAGES", "BYTES"
        )?;
        for (tag, t) in tags {
            writeln!(
                out,
                "{:<36}  {:>8}  {:>16}",
                tag,
                t["images"].as_u64().unwrap_or(0),
                t["bytes"].as_u64().unwrap_or(0)
            )?;
        }
    }
    if !bin.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<36}  {:>8}  {:>16}",
            "RECYCLE BIN OWNER", "IMAGES", "BYTES"
        )?;
        for b in bin {
            writeln!(
                out,
                "{:<36}  {:>8}  {:>16}",
                b.owner.to_string(),
                b.images,
                b.bytes
            )?;
        }
    }
    let totals = &json["totals"];
    writeln!(
        out,
        "\ntotal: {} owner(s), {} image(s), {} bytes",
        totals["owners"].as_u64().unwrap_or(0),
        totals["images"].as_u64().unwrap_or(0),
        totals["bytes"].as_u64().unwrap_or(0)
    )
}

/// The owners with a quota, one line each (nothing when none has one).
fn write_quotas(answer: &imgapi_types::Usage, out: &mut dyn Write) -> std::io::Result<()> {
    let with_quota: Vec<_> = answer
        .owners
        .iter()
        .filter_map(|o| o.quota.map(|q| (o.owner, q)))
        .collect();
    if with_quota.is_empty() {
        return Ok(());
    }
    let limit = |l: u64| match l {
        0 => "-".to_string(),
        l => l.to_string(),
    };
    writeln!(out)?;
    writeln!(
        out,
        "{:<36}  {:>8}  {:>8}  {:>16}  {:>16}  {:>16}",
        "QUOTA OWNER", "IMAGES", "LIMIT", "BYTES", "LIMIT", "RESERVED"
    )?;
    for (owner, q) in with_quota {
        writeln!(
            out,
            "{:<36}  {:>8}  {:>8}  {:>16}  {:>16}  {:>16}",
            owner.to_string(),
            q.images.used,
            limit(q.images.limit),
            q.bytes.used,
            limit(q.bytes.limit),
            q.bytes.reserved
        )?;
    }
    Ok(())
}

/// `imgapi usage`: exit 0, or 2 when the database cannot be read.
pub async fn cli(top_config: Option<PathBuf>, args: UsageArgs) -> ExitCode {
    let path = args.config.clone().or(top_config);
    let config = match Config::load(path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imgapi usage: {e}");
            return ExitCode::from(2);
        }
    };
    crate::check::tool_logging();
    let stores = match crate::check::Stores::open(&config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("imgapi usage: {e}");
            return ExitCode::from(2);
        }
    };
    let usage = match crate::service::usage::usage(stores.meta.as_ref(), args.owner).await {
        Ok(u) => u,
        Err(e) => {
            eprintln!("imgapi usage: {e}");
            return ExitCode::from(2);
        }
    };
    let bin = match crate::service::usage::bin_usage(stores.meta.as_ref(), args.owner).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("imgapi usage: {e}");
            return ExitCode::from(2);
        }
    };
    let answer = match crate::service::quotas::usage_with_quotas(
        &config.quotas,
        stores.meta.as_ref(),
        &usage,
        &bin,
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("imgapi usage: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        writeln!(out, "{}", serde_json::to_value(&answer).unwrap_or_default())
    } else {
        write_text(&usage, &bin, &mut out).and_then(|()| write_quotas(&answer, &mut out))
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(2),
    }
}
