//! `imgadm bin`: the server's recycle bin (docs/lifecycle.md): list
//! entries, show one, restore or purge it.

use super::{label, print_json, Ctx, Failure};
use crate::cli::{BinAction, BinArgs};
use crate::output;
use crate::stdout::{out, outln};

/// The columns of `bin list`.
const COLUMNS: &[&str] = &[
    "uuid",
    "name",
    "version",
    "owner",
    "size",
    "deleted_at",
    "expires_at",
];

pub async fn run(ctx: &Ctx, args: BinArgs) -> Result<(), Failure> {
    match args.action.unwrap_or(BinAction::List) {
        BinAction::List => {
            let owner = args.owner.map(|o| o.to_string());
            let query: Vec<(&str, &str)> = owner.iter().map(|o| ("owner", o.as_str())).collect();
            let entries = ctx.client.list_recycle_bin(&query).await?;
            if ctx.json {
                return print_json(&entries);
            }
            let columns: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
            out!(
                "{}",
                output::table(&columns, &output::rows(&entries)?, !args.no_header)
            )?;
            Ok(())
        }
        BinAction::Get(a) => print_json(&ctx.client.get_recycled_image(&a.uuid).await?),
        BinAction::Restore(a) => {
            let image = ctx.client.restore_recycled_image(&a.uuid).await?;
            if ctx.json {
                return print_json(&image);
            }
            outln!("Restored image {}", label(&image))
        }
        BinAction::Purge(a) => {
            ctx.client.purge_recycled_image(&a.uuid).await?;
            if !ctx.json {
                outln!("Purged image {} from the recycle bin", a.uuid)?;
            }
            Ok(())
        }
    }
}
