//! Human-readable table printing.

use serde::Serialize;
use serde_json::Value;

use crate::commands::Failure;

/// Default `list` columns.
pub const DEFAULT_COLUMNS: &[&str] = &[
    "uuid",
    "name",
    "version",
    "os",
    "type",
    "state",
    "published",
];

/// The cell text of `column` for `image` (`published` is `published_at`).
pub fn cell(image: &Value, column: &str) -> String {
    let field = if column == "published" {
        "published_at"
    } else {
        column
    };
    match image.get(field) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// Wire objects (images, channels) as JSON objects, for [`cell`] to read
/// any column by name.
pub fn rows<T: Serialize>(items: &[T]) -> Result<Vec<Value>, Failure> {
    items
        .iter()
        .map(|item| {
            serde_json::to_value(item)
                .map_err(|e| Failure::other(format!("cannot encode JSON: {e}")))
        })
        .collect()
}

/// Render rows as left-aligned columns separated by two spaces.
pub fn table(columns: &[String], images: &[Value], header: bool) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    if header {
        rows.push(columns.iter().map(|c| c.to_uppercase()).collect());
    }
    rows.extend(
        images
            .iter()
            .map(|img| columns.iter().map(|c| cell(img, c)).collect()),
    );
    let mut widths = vec![0; columns.len()];
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let last = row.len().saturating_sub(1);
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aligns_columns() {
        let cols = vec!["uuid".to_string(), "name".to_string()];
        let t = table(&cols, &[json!({"uuid": "a", "name": "long-name"})], true);
        assert_eq!(t, "UUID  NAME\na     long-name\n");
    }
}
