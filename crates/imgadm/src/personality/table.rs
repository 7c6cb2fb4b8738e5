//! Tables and sorting as the node tools print them (the `tabula` library):
//! upper-cased field names as headers, columns two spaces apart, every
//! column but the last padded to its widest cell, `-` for a missing value,
//! a value that is not a string or number printed as JSON; ordering on
//! several fields, numerically when both values read as numbers, `-FIELD`
//! for descending, missing values first.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// Why a table cannot be printed.
#[derive(Debug, PartialEq)]
pub struct InvalidField(pub String);

/// The table of `rows` with `columns`, each line ending in `\n`. A column
/// not in `valid` (when given) is refused as tabula does.
pub fn format(
    rows: &[Map<String, Value>],
    columns: &[String],
    skip_header: bool,
    valid: Option<&[&str]>,
) -> Result<String, InvalidField> {
    if let Some(valid) = valid {
        if let Some(bad) = columns.iter().find(|c| !valid.contains(&c.as_str())) {
            return Err(InvalidField(format!("invalid output field: \"{bad}\"")));
        }
    }
    let cells: Vec<Vec<Option<String>>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(row.get(c))).collect())
        .collect();
    let headers: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            if let Some(c) = c {
                *w = (*w).max(width(c));
            }
        }
    }
    let render = |row: Vec<String>| -> String {
        let last = row.len().saturating_sub(1);
        let bits: Vec<String> = row
            .into_iter()
            .enumerate()
            .map(|(i, text)| {
                if i == last {
                    text
                } else {
                    let pad = widths[i].saturating_sub(width(&text));
                    format!("{text}{}", " ".repeat(pad))
                }
            })
            .collect();
        bits.join("  ")
    };
    let mut lines = Vec::new();
    if !skip_header {
        lines.push(render(headers));
    }
    for row in cells {
        lines.push(render(
            row.into_iter()
                .map(|c| c.unwrap_or_else(|| "-".to_string()))
                .collect(),
        ));
    }
    Ok(lines.join("\n") + "\n")
}

/// The text of a cell; `None` when missing (printed `-`, not counted in the
/// column's width).
fn cell(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Width as JavaScript counts it (UTF-16 code units).
fn width(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The order of two rows on `fields` (`-FIELD`: descending).
pub fn order(a: &Map<String, Value>, b: &Map<String, Value>, fields: &[String]) -> Ordering {
    for field in fields {
        let (name, descending) = match field.strip_prefix('-') {
            Some(n) => (n, true),
            None => (field.as_str(), false),
        };
        let order = compare(a.get(name), b.get(name));
        let order = if descending { order.reverse() } else { order };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// Compare two values as tabula does: as numbers when both read as numbers
/// (`Number(x)` in JavaScript), else as they are (strings by UTF-16 code
/// units); a missing value sorts first; values of different kinds are equal.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    if let (Some(x), Some(y)) = (a.and_then(js_number), b.and_then(js_number)) {
        return x.partial_cmp(&y).unwrap_or(Ordering::Equal);
    }
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(Value::String(x)), Some(Value::String(y))) => x.encode_utf16().cmp(y.encode_utf16()),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        _ => Ordering::Equal,
    }
}

/// JavaScript's `Number(value)`, `None` for NaN.
fn js_number(value: &Value) -> Option<f64> {
    match value {
        Value::Null => Some(0.0),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Some(0.0);
            }
            if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                return u64::from_str_radix(hex, 16).ok().map(|n| n as f64);
            }
            // Rust also reads "inf", "nan" and "1e5" forms; JavaScript only
            // "Infinity" among the words.
            if t.chars()
                .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
            {
                return (t == "Infinity" || t == "+Infinity")
                    .then_some(f64::INFINITY)
                    .or((t == "-Infinity").then_some(f64::NEG_INFINITY));
            }
            t.parse::<f64>().ok().filter(|n| !n.is_nan())
        }
        Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: Value) -> Vec<Map<String, Value>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_object().unwrap().clone())
            .collect()
    }

    #[test]
    fn pads_all_but_the_last_column_and_dashes_missing() {
        let r = rows(json!([
            {"uuid": "a1", "name": "base", "flags": "P", "public": true},
            {"uuid": "b22222", "name": "x", "flags": null}
        ]));
        let cols: Vec<String> = ["uuid", "flags", "public", "name"].map(String::from).into();
        assert_eq!(
            format(&r, &cols, false, None).unwrap(),
            "UUID    FLAGS  PUBLIC  NAME\na1      P      true    base\nb22222  -      -       x\n"
        );
        assert_eq!(format(&[], &cols, true, None).unwrap(), "\n");
        assert_eq!(
            format(&r, &["bogus".to_string()], false, Some(&["uuid"])).unwrap_err(),
            InvalidField("invalid output field: \"bogus\"".into())
        );
    }

    #[test]
    fn sorts_numbers_as_numbers_then_strings_missing_first() {
        let mut r = rows(json!([
            {"n": "10", "s": "b"}, {"n": "9", "s": "a"}, {"s": "c"}, {"n": "9", "s": "0"}
        ]));
        let fields = ["n".to_string(), "-s".to_string()];
        r.sort_by(|a, b| order(a, b, &fields));
        let order: Vec<&str> = r.iter().map(|x| x["s"].as_str().unwrap()).collect();
        assert_eq!(order, ["c", "a", "0", "b"]);
    }
}
