use super::{print_json, Ctx, Failure};
use crate::cli::ChannelsArgs;
use crate::output;
use crate::stdout::out;

pub async fn run(ctx: &Ctx, args: ChannelsArgs) -> Result<(), Failure> {
    let channels = ctx.client.list_channels().await.map_err(|e| {
        let not_found = e.is_not_found();
        let f = Failure::from(e);
        if not_found {
            f.context(format!(
                "{} has no channels configured",
                ctx.client.base_url()
            ))
        } else {
            f
        }
    })?;
    if ctx.json {
        return print_json(&channels);
    }
    let columns: Vec<String> = ["name", "default", "description"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    out!(
        "{}",
        output::table(&columns, &output::rows(&channels)?, !args.no_header)
    )?;
    Ok(())
}
