//! Tag search form (manifest.md §7): each tag becomes `key=<normalised value>`.

use serde_json::{Map, Value};

/// Longest string tag value kept verbatim in the search form.
const MAX_SEARCHABLE_TAG_VALUE: usize = 100;

/// The normalised search value of one tag value.
pub fn normalised_value(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().count() <= MAX_SEARCHABLE_TAG_VALUE => s.clone(),
        Value::String(_) => String::new(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => String::new(),
    }
}

/// `(key, normalised value)` for every tag, in the object's order.
pub fn search_pairs(tags: &Map<String, Value>) -> Vec<(String, String)> {
    tags.iter()
        .map(|(k, v)| (k.clone(), normalised_value(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_matches_spec_example() {
        let tags: Map<String, Value> =
            serde_json::from_str(r#"{"role": "db", "n": 42, "ok": true, "cfg": {"a": 1}}"#)
                .unwrap_or_default();
        let pairs: Vec<String> = search_pairs(&tags)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(pairs, ["role=db", "n=42", "ok=true", "cfg="]);
        assert_eq!(normalised_value(&Value::String("x".repeat(101))), "");
    }
}
