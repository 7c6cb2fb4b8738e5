use super::{print_json, Ctx, Failure};
use crate::stdout::outln;

pub async fn run(ctx: &Ctx) -> Result<(), Failure> {
    let pong = ctx.client.ping().await?;
    if ctx.json {
        print_json(&pong)
    } else {
        outln!("ok: {} is up", ctx.client.base_url())?;
        Ok(())
    }
}
