//! Schema helpers for fields whose structure the API server should keep but not prescribe.

use schemars::{Schema, SchemaGenerator, json_schema};

/// A removed object field: declared (kept as given) only so that a validation rule can see it
/// and refuse it with a way forward, instead of the API server pruning it silently.
pub fn removed_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
