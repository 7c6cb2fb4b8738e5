use crate::stdout::out;
use std::cmp::Ordering;

use serde_json::Value;

use super::{print_json, Ctx, Failure};
use crate::cli::ListArgs;
use crate::output::{self, DEFAULT_COLUMNS};

fn compare(a: &Value, b: &Value, field: &str) -> Ordering {
    let field = if field == "published" {
        "published_at"
    } else {
        field
    };
    match (a.get(field), b.get(field)) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        _ => output::cell(a, field).cmp(&output::cell(b, field)),
    }
}

pub async fn run(ctx: &Ctx, args: ListArgs) -> Result<(), Failure> {
    let mut query: Vec<(String, String)> = [
        ("name", &args.name),
        ("version", &args.version),
        ("os", &args.os),
        ("type", &args.type_),
        ("state", &args.state),
        ("owner", &args.owner),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.clone())))
    .collect();
    for f in &args.filters {
        let (k, v) = f
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| Failure::usage(format!("expected FIELD=VALUE filter, got {f:?}")))?;
        query.push((k.to_string(), v.to_string()));
    }
    let query: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut images = output::rows(&ctx.client.list_images(&query).await?)?;
    if let Some(field) = &args.sort {
        images.sort_by(|a, b| compare(a, b, field));
    }
    if ctx.json {
        return print_json(&Value::Array(images));
    }
    let columns: Vec<String> = if args.columns.is_empty() {
        DEFAULT_COLUMNS.iter().map(|c| c.to_string()).collect()
    } else {
        args.columns
    };
    out!("{}", output::table(&columns, &images, !args.no_header))?;
    Ok(())
}
