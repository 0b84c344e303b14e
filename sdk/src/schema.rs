//! JSON Schemas of every kind's objects, generated from the Rust types
//! (schemars, feature `schema`): the one source of truth for the shape of
//! an object stays the serde types in [`crate::objects`]. The apiserver
//! serves them as the `components.schemas` of `/openapi/v3`.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::kinds::KINDS;
use crate::meta::API_VERSION;
use crate::objects::{
    AgentSpec, CronWorkflowSpec, EventSpec, LockSpec, SecretSpec, StackSpec, StateEntrySpec,
    TaskRunSpec, WorkflowSpec,
};
use crate::resource::{Object, Spec};

/// Where OpenAPI 3 keeps its schemas; references point there.
pub const OPENAPI_DEFINITIONS: &str = "/components/schemas";

/// The schema of every kind (named by its kind, `TaskRun`) and of every type
/// they refer to (named by the type, `TaskRunSpec`), with references of the
/// form `#{definitions_path}/NAME`. JSON Schema 2020-12, as OpenAPI 3.1 uses.
pub fn kind_schemas(definitions_path: &str) -> Map<String, Value> {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = definitions_path.to_string().into();
            s.meta_schema = None;
        })
        .into_generator();
    let kinds: Vec<(&str, Schema)> = KINDS
        .iter()
        .filter_map(|k| Some((k.kind, object_schema(k.kind, &mut generator)?)))
        .collect();
    let mut schemas = generator.take_definitions(true);
    for (kind, schema) in kinds {
        schemas.insert(kind.to_string(), schema.to_value());
    }
    schemas
}

/// The schema of an object of `kind`; None for a kind this module does not
/// know yet (a unit test keeps that from happening).
fn object_schema(kind: &str, generator: &mut SchemaGenerator) -> Option<Schema> {
    let schema = match kind {
        "Agent" => object::<AgentSpec>(generator),
        "Workflow" => object::<WorkflowSpec>(generator),
        "TaskRun" => object::<TaskRunSpec>(generator),
        "Lock" => object::<LockSpec>(generator),
        "Event" => object::<EventSpec>(generator),
        "StateEntry" => object::<StateEntrySpec>(generator),
        "CronWorkflow" => object::<CronWorkflowSpec>(generator),
        "Stack" => object::<StackSpec>(generator),
        "Secret" => object::<SecretSpec>(generator),
        _ => return None,
    };
    Some(schema)
}

/// The envelope `Object<S>` as derived, with `kind` and `apiVersion` pinned
/// to their only values and the Kubernetes group-version-kind extension.
fn object<S>(generator: &mut SchemaGenerator) -> Schema
where
    S: Spec + JsonSchema,
    S::Status: JsonSchema,
{
    let mut schema = Object::<S>::json_schema(generator);
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert("kind".into(), json!({"type": "string", "const": S::KIND}));
        properties.insert(
            "apiVersion".into(),
            json!({"type": "string", "const": API_VERSION}),
        );
    }
    schema.insert(
        "x-kubernetes-group-version-kind".into(),
        json!([{"group": "sloth.dev", "version": "v1", "kind": S::KIND}]),
    );
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_schema_named_by_its_kind() {
        let schemas = kind_schemas(OPENAPI_DEFINITIONS);
        for kind in KINDS {
            let schema = schemas
                .get(kind.kind)
                .unwrap_or_else(|| panic!("no schema for {}", kind.kind));
            assert_eq!(schema["properties"]["kind"]["const"], kind.kind);
            assert_eq!(schema["additionalProperties"], false, "{}", kind.kind);
            let required = schema["required"].as_array().expect("required");
            assert!(required.contains(&json!("spec")), "{schema}");
        }
    }

    #[test]
    fn references_resolve_and_custom_serde_types_match_their_text_form() {
        let schemas = kind_schemas(OPENAPI_DEFINITIONS);
        let text = Value::Object(schemas.clone()).to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().expect("a reference");
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("reference elsewhere: {target}"));
            assert!(schemas.contains_key(name), "dangling reference {target}");
        }
        assert_eq!(schemas["Duration"]["type"], "string");
        assert_eq!(schemas["Env"]["oneOf"][0]["type"], "object");
        assert_eq!(schemas["Env"]["oneOf"][1]["type"], "array");
        let time = &schemas["ObjectMeta"]["properties"]["creationTimestamp"];
        assert!(time.to_string().contains("date-time"), "{time}");
    }
}
