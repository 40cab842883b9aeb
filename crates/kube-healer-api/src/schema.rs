//! Schema helpers for fields whose structure the API server should keep but not prescribe.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose fields are kept as given (validated later by the API that consumes it).
pub fn preserved_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
