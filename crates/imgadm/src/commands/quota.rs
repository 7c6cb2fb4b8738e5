//! `imgadm quota [OWNER]`, `quota set OWNER --images N --bytes SIZE`,
//! `quota clear OWNER`: per-owner quotas (docs/lifecycle.md "Quotas").

use imgapi_client::{Quota, QuotaOverrideBody};
use imgapi_domain::units::human_size;

use super::{print_json, Ctx, Failure};
use crate::cli::{QuotaAction, QuotaArgs};
use crate::stdout::outln;

pub async fn run(ctx: &Ctx, args: QuotaArgs) -> Result<(), Failure> {
    match (args.action, args.owner) {
        (Some(QuotaAction::Set(set)), _) => {
            if set.images.is_none() && set.bytes.is_none() {
                return Err(Failure::usage(
                    "quota set needs --images and/or --bytes (0 = no limit)",
                ));
            }
            let limits = QuotaOverrideBody {
                images: set.images,
                bytes: set.bytes,
            };
            let quota = ctx.client.put_quota(&set.owner, &limits).await?;
            show(ctx, &[quota])
        }
        (Some(QuotaAction::Clear(clear)), _) => {
            ctx.client.delete_quota(&clear.owner).await?;
            if !ctx.json {
                outln!("cleared the stored quota of {}", clear.owner)?;
            }
            Ok(())
        }
        (None, Some(owner)) => {
            let quota = ctx.client.get_quota(&owner).await?;
            show(ctx, &[quota])
        }
        (None, None) => {
            let quotas = ctx.client.list_quotas().await?;
            if ctx.json {
                return print_json(&quotas);
            }
            show(ctx, &quotas)
        }
    }
}

fn show(ctx: &Ctx, quotas: &[Quota]) -> Result<(), Failure> {
    if ctx.json {
        if let [one] = quotas {
            return print_json(one);
        }
        return print_json(&quotas);
    }
    for q in quotas {
        let images = match q.images.limit {
            0 => format!("{} images (no limit)", q.images.used),
            limit => format!("{} of {limit} images", q.images.used),
        };
        let bytes = match q.bytes.limit {
            0 => format!("{} (no limit)", human_size(q.bytes.used)),
            limit => format!("{} of {}", human_size(q.bytes.used), human_size(limit)),
        };
        let reserved = match q.bytes.reserved {
            0 => String::new(),
            r => format!(", {} reserved by uploads in progress", human_size(r)),
        };
        outln!("{}: {images}, {bytes}{reserved}", q.owner)?;
    }
    Ok(())
}

/// A byte size: digits with an optional K, M, G, T, P suffix (powers of
/// 1024; `KiB`/`KB`/`k` spellings too).
pub fn parse_size(raw: &str) -> Result<u64, String> {
    let text = raw.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {raw:?} (e.g. 1000, 512M, 10G)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        "P" | "PB" | "PIB" => 50,
        _ => return Err(format!("invalid size unit in {raw:?} (K, M, G, T or P)")),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {raw:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1t"), Ok(1 << 40));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("99999999999P").is_err());
    }
}
