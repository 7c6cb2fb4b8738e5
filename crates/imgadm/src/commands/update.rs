use std::path::Path;

use serde_json::{Map, Value};

use super::create::read_json_arg;
use super::{label, Ctx, Failure};
use crate::cli::UpdateArgs;

/// `FIELD=VALUE` pairs as a JSON object; VALUE is JSON if it parses, else a string.
pub fn parse_fields(pairs: &[String]) -> Result<Value, Failure> {
    let mut fields = Map::new();
    for pair in pairs {
        let (field, value) = pair
            .split_once('=')
            .filter(|(f, _)| !f.is_empty())
            .ok_or_else(|| Failure::usage(format!("expected FIELD=VALUE, got {pair:?}")))?;
        let value =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        fields.insert(field.to_string(), value);
    }
    Ok(Value::Object(fields))
}

/// The fields of `-f FILE` (a JSON object), with the FIELD=VALUE pairs
/// applied over them.
pub fn update_fields(file: Option<&Path>, pairs: &[String]) -> Result<Value, Failure> {
    let mut fields = match file {
        None => Map::new(),
        Some(path) => match read_json_arg(path, "fields file")? {
            Value::Object(map) => map,
            _ => {
                return Err(Failure::usage(format!(
                    "fields file {} is not a JSON object",
                    path.display()
                )))
            }
        },
    };
    if let Value::Object(pairs) = parse_fields(pairs)? {
        fields.extend(pairs);
    }
    Ok(Value::Object(fields))
}

pub async fn run(ctx: &Ctx, args: UpdateArgs) -> Result<(), Failure> {
    let fields = update_fields(args.file.as_deref(), &args.fields)?;
    let image = ctx.client.update_image(&args.uuid, &fields).await?;
    ctx.print_image(&format!("Updated image {}", label(&image)), &image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_json_or_strings() {
        let v = parse_fields(&["a=1".into(), "b=x y".into(), "c={\"k\":true}".into()])
            .map_err(|f| f.message)
            .unwrap();
        assert_eq!(v, json!({"a": 1, "b": "x y", "c": {"k": true}}));
        assert!(parse_fields(&["nope".into()]).is_err());
    }
}
