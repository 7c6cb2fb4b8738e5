//! An image's `requirements` (manifest.md §3 "requirements").
//!
//! Kept as the JSON object it was given, in its key order: the validator
//! checks a sub-field only when it is truthy, so a falsy value of any type
//! (`0`, `""`, `false`, `null`) passes and is returned as stored. The
//! accessors read the documented shapes.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a VM needs to run an image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Requirements(pub Map<String, Value>);

impl Requirements {
    /// The required zone brand (`joyent`, `lx`, `bhyve`, `kvm`…).
    pub fn brand(&self) -> Option<&str> {
        self.0.get("brand").and_then(Value::as_str)
    }

    /// Minimum RAM in MiB.
    pub fn min_ram(&self) -> Option<i64> {
        self.0.get("min_ram").and_then(Value::as_i64)
    }

    /// Maximum RAM in MiB.
    pub fn max_ram(&self) -> Option<i64> {
        self.0.get("max_ram").and_then(Value::as_i64)
    }

    /// Whether the VM must be given an SSH key.
    pub fn ssh_key(&self) -> Option<bool> {
        self.0.get("ssh_key").and_then(Value::as_bool)
    }

    /// Boot ROM of a bhyve VM (`bios` or `uefi`).
    pub fn bootrom(&self) -> Option<&str> {
        self.0.get("bootrom").and_then(Value::as_str)
    }
}

/// `schema`, or a falsy JSON value (which the validator does not check).
fn or_falsy(schema: Value) -> Value {
    serde_json::json!({"anyOf": [schema, {"enum": [null, false, 0, ""]}]})
}

fn platform_map(which: &str) -> Value {
    or_falsy(serde_json::json!({
        "description": format!("{which} platform per SDC version, e.g. {{\"7.0\": \"20130308T102805Z\"}} (an array of stamps also passes)."),
        "type": ["object", "array"],
        "additionalProperties": {"type": "string"},
        "items": {"type": "string"}
    }))
}

impl JsonSchema for Requirements {
    fn schema_name() -> Cow<'static, str> {
        "Requirements".into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        let network = serde_json::json!({
            "type": "object",
            "properties": {"name": {}, "description": {}},
            "required": ["name", "description"]
        });
        json_schema!({
            "description": "What a VM needs to run the image. A sub-field is only checked when truthy, so falsy values (0, \"\", false, null) of any type may appear.",
            "type": "object",
            "properties": {
                "networks": or_falsy(serde_json::json!({
                    "description": "Networks the VM needs: `{name, description}` each.",
                    "type": "array",
                    "items": network
                })),
                "brand": or_falsy(serde_json::json!({"description": "Required zone brand.", "type": "string"})),
                "ssh_key": or_falsy(serde_json::json!({"description": "Whether the VM needs an SSH key.", "type": "boolean"})),
                "min_ram": or_falsy(serde_json::json!({"description": "Minimum RAM in MiB.", "type": "integer"})),
                "max_ram": or_falsy(serde_json::json!({"description": "Maximum RAM in MiB.", "type": "integer"})),
                "min_platform": platform_map("Minimum"),
                "max_platform": platform_map("Maximum"),
                "bootrom": or_falsy(serde_json::json!({"description": "bhyve boot ROM.", "enum": ["bios", "uefi"]}))
            }
        })
    }
}
