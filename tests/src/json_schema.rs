//! A small JSON Schema checker for the schemas the apiserver serves at
//! `/openapi/v3` (what schemars generates): `$ref` into
//! `#/components/schemas`, `type` (one or a list), `properties`,
//! `required`, `additionalProperties`, `items`, `enum`, `const`, `oneOf`,
//! `anyOf`, `allOf` and `minimum`. `format` and `pattern` are not checked.
//! Enough to catch an object that does not match its kind's schema, without
//! a validator crate (the `jsonschema` crate pulls in regex engines, and
//! HTTP and TLS clients with its default features).

use serde_json::{Map, Value};

/// The schemas of an OpenAPI document, by name.
#[derive(Debug, Clone)]
pub struct Schemas {
    components: Map<String, Value>,
}

/// Where a value does not match its schema: the JSON path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// How deep `$ref`s may nest before the checker gives up (a schema that
/// refers to itself without consuming the value).
const MAX_DEPTH: usize = 64;

impl Schemas {
    /// The `components.schemas` of an OpenAPI document.
    pub fn from_openapi(document: &Value) -> Option<Self> {
        let components = document
            .pointer("/components/schemas")?
            .as_object()?
            .clone();
        Some(Self { components })
    }

    /// Whether a schema of this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.components.contains_key(name)
    }

    /// Checks `value` against the schema `name`; the first mismatch.
    pub fn check(&self, name: &str, value: &Value) -> Result<(), Mismatch> {
        let schema = self.components.get(name).ok_or_else(|| Mismatch {
            path: "$".into(),
            reason: format!("no schema {name:?}"),
        })?;
        self.check_at(schema, value, "$", 0)
    }

    fn check_at(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), Mismatch> {
        let fail = |reason: String| Mismatch {
            path: path.to_string(),
            reason,
        };
        if depth > MAX_DEPTH {
            return Err(fail("schema references nest too deep".into()));
        }
        let schema = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return Err(fail("no value is allowed here".into())),
            Value::Object(schema) => schema,
            other => return Err(fail(format!("not a schema: {other}"))),
        };
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let target = reference
                .strip_prefix("#/components/schemas/")
                .and_then(|name| self.components.get(name))
                .ok_or_else(|| fail(format!("unresolved $ref {reference}")))?;
            self.check_at(target, value, path, depth + 1)?;
        }
        if let Some(types) = schema.get("type") {
            let allowed: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !allowed.iter().any(|t| has_type(value, t)) {
                return Err(fail(format!("{value} is not of type {allowed:?}")));
            }
        }
        if let Some(want) = schema.get("const")
            && want != value
        {
            return Err(fail(format!("{value} is not {want}")));
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            return Err(fail(format!("{value} is not one of {options:?}")));
        }
        if let (Some(minimum), Some(n)) = (
            schema.get("minimum").and_then(Value::as_f64),
            value.as_f64(),
        ) && n < minimum
        {
            return Err(fail(format!("{n} is below the minimum {minimum}")));
        }
        for sub in array(schema, "allOf") {
            self.check_at(sub, value, path, depth + 1)?;
        }
        let passing = |subs: &[Value]| {
            subs.iter()
                .filter(|s| self.check_at(s, value, path, depth + 1).is_ok())
                .count()
        };
        if let Some(subs) = schema.get("anyOf").and_then(Value::as_array)
            && passing(subs) == 0
        {
            return Err(fail(format!("{value} matches none of anyOf")));
        }
        if let Some(subs) = schema.get("oneOf").and_then(Value::as_array) {
            let n = passing(subs);
            if n != 1 {
                return Err(fail(format!(
                    "{value} matches {n} of oneOf, not exactly one"
                )));
            }
        }
        if let Value::Object(object) = value {
            self.check_object(schema, object, path, depth)?;
        }
        if let (Some(items), Value::Array(elements)) = (schema.get("items"), value) {
            for (i, element) in elements.iter().enumerate() {
                self.check_at(items, element, &format!("{path}[{i}]"), depth + 1)?;
            }
        }
        Ok(())
    }

    fn check_object(
        &self,
        schema: &Map<String, Value>,
        object: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<(), Mismatch> {
        for name in array(schema, "required").iter().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                return Err(Mismatch {
                    path: path.to_string(),
                    reason: format!("the required field {name:?} is missing"),
                });
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (name, field) in object {
            let at = format!("{path}.{name}");
            match (
                properties.and_then(|p| p.get(name)),
                schema.get("additionalProperties"),
            ) {
                (Some(sub), _) => self.check_at(sub, field, &at, depth + 1)?,
                (None, Some(extra)) => self.check_at(extra, field, &at, depth + 1)?,
                (None, None) => {}
            }
        }
        Ok(())
    }
}

fn array<'a>(schema: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    schema
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schemas() -> Schemas {
        Schemas::from_openapi(&json!({"components": {"schemas": {
            "Thing": {"type": "object", "additionalProperties": false,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "count": {"type": "integer", "minimum": 0},
                    "phase": {"$ref": "#/components/schemas/Phase"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "note": {"type": ["string", "null"]},
                    "env": {"oneOf": [
                        {"type": "object", "additionalProperties": {"type": "string"}},
                        {"type": "array"}]},
                    "any": true}},
            "Phase": {"type": "string", "enum": ["Running", "Done"]}}}}))
        .expect("schemas")
    }

    #[test]
    fn a_matching_value_passes() {
        let ok = json!({"name": "a", "count": 2, "phase": "Done", "tags": ["x"],
            "note": null, "env": {"A": "1"}, "any": {"deep": [1]}});
        assert_eq!(schemas().check("Thing", &ok), Ok(()));
    }

    #[test]
    fn each_kind_of_mismatch_is_named_with_its_path() {
        for (bad, path) in [
            (json!({"count": 1}), "$"),
            (json!({"name": 1}), "$.name"),
            (json!({"name": "a", "count": -1}), "$.count"),
            (json!({"name": "a", "count": 1.5}), "$.count"),
            (json!({"name": "a", "phase": "Lost"}), "$.phase"),
            (json!({"name": "a", "tags": ["x", 2]}), "$.tags[1]"),
            (json!({"name": "a", "extra": 1}), "$.extra"),
            (json!({"name": "a", "env": "A=1"}), "$.env"),
            (json!({"name": "a", "env": {"A": 1}}), "$.env"),
        ] {
            let e = schemas().check("Thing", &bad).expect_err(&bad.to_string());
            assert_eq!(e.path, path, "{bad}: {e}");
        }
        assert!(schemas().check("Nothing", &json!({})).is_err());
    }
}
