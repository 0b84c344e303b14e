//! Request bodies: JSON or YAML, checked against the path they were sent
//! to, and JSON merge patches (RFC 7386).

use axum::http::{HeaderMap, header};
use serde_json::{Map, Value};

use super::paths::ObjectPath;
use super::status::Failure;
use crate::api::version::API_VERSION;

/// Largest body accepted, as the gRPC port's largest message.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
}

/// Decodes a body as JSON, or as YAML when its Content-Type says so.
pub(super) fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Value, Failure> {
    let media = content_type(headers);
    let value: Value = if media.contains("yaml") {
        serde_norway::from_slice(body)
            .map_err(|e| Failure::bad_request(format!("the body is not valid YAML: {e}")))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| Failure::bad_request(format!("the body is not valid JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(Failure::bad_request("the body must be an object"));
    }
    Ok(value)
}

/// Whether a PATCH body is a JSON merge patch (the only kind served).
pub(super) fn is_merge_patch(headers: &HeaderMap) -> bool {
    content_type(headers).starts_with("application/merge-patch+json")
}

/// Fills in what the path says and the body leaves out (kind, apiVersion,
/// namespace, and name for a named path), and refuses a body that says
/// otherwise than its path.
pub(super) fn fit_to_path(
    value: &mut Value,
    kind: &str,
    namespace: &str,
    name: Option<&str>,
) -> Result<(), Failure> {
    let Some(object) = value.as_object_mut() else {
        return Err(Failure::bad_request("the body must be an object"));
    };
    fill(object, "kind", kind, "kind")?;
    fill(object, "apiVersion", API_VERSION, "apiVersion")?;
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return Err(Failure::bad_request("metadata must be an object"));
    };
    if !namespace.is_empty() {
        fill(metadata, "namespace", namespace, "metadata.namespace")?;
    }
    if let Some(name) = name {
        fill(metadata, "name", name, "metadata.name")?;
    }
    Ok(())
}

fn fill(
    object: &mut Map<String, Value>,
    key: &str,
    want: &str,
    field: &str,
) -> Result<(), Failure> {
    match object.get(key) {
        None | Some(Value::Null) => {
            object.insert(key.to_string(), Value::String(want.to_string()));
            Ok(())
        }
        Some(Value::String(given)) if given == want => Ok(()),
        Some(given) => Err(Failure::bad_request(format!(
            "{field} {given} of the body does not match the request path ({want:?})"
        ))),
    }
}

/// The object a named path's body carries, as the JSON the gRPC handlers take.
pub(super) fn object_body(
    headers: &HeaderMap,
    body: &[u8],
    path: &ObjectPath,
) -> Result<Vec<u8>, Failure> {
    let mut value = decode(headers, body)?;
    fit_to_path(
        &mut value,
        path.kind.kind,
        &path.namespace,
        Some(&path.name),
    )?;
    encode(&value)
}

/// Kubernetes' `DeleteOptions` as far as Sloth acts on it. Its other
/// fields (`propagationPolicy`, `gracePeriodSeconds`, ...) are accepted and
/// ignored; an unknown precondition is refused rather than ignored.
#[derive(Debug, Default, serde::Deserialize)]
struct DeleteOptions {
    #[serde(default)]
    preconditions: Preconditions,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Preconditions {
    #[serde(default)]
    resource_version: String,
}

/// The resourceVersion a DELETE body's `preconditions` require; empty
/// without a body or precondition.
pub(super) fn delete_precondition(headers: &HeaderMap, body: &[u8]) -> Result<String, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    let options: DeleteOptions = serde_json::from_value(decode(headers, body)?)
        .map_err(|e| Failure::bad_request(format!("the DeleteOptions body: {e}")))?;
    Ok(options.preconditions.resource_version)
}

pub(super) fn encode(value: &Value) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(value).map_err(|e| Failure::bad_request(format!("cannot encode: {e}")))
}

/// Applies a JSON merge patch (RFC 7386): objects merge key by key, `null`
/// removes a key, anything else replaces.
pub(super) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // The RFC's own example.
        let mut target = json!({"title": "Goodbye!", "author": {"givenName": "John",
            "familyName": "Doe"}, "tags": ["example", "sample"], "content": "text"});
        merge_patch(
            &mut target,
            &json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890",
                "author": {"familyName": null}, "tags": ["example"]}),
        );
        assert_eq!(
            target,
            json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
                "content": "text", "phoneNumber": "+01-123-456-7890"})
        );
        let mut scalar = json!({"a": "b"});
        merge_patch(&mut scalar, &json!({"a": {"c": null, "d": 1}}));
        assert_eq!(scalar, json!({"a": {"d": 1}}));
    }

    #[test]
    fn the_path_fills_the_body_and_a_mismatch_is_refused() {
        let mut value = json!({"spec": {}});
        fit_to_path(&mut value, "TaskRun", "ci", Some("t")).expect("fits");
        assert_eq!(value["kind"], "TaskRun");
        assert_eq!(value["apiVersion"], API_VERSION);
        assert_eq!(value["metadata"], json!({"namespace": "ci", "name": "t"}));
        let mut other = json!({"metadata": {"namespace": "prod"}});
        let e = fit_to_path(&mut other, "TaskRun", "ci", None).expect_err("mismatch");
        assert!(e.message.contains("metadata.namespace"), "{}", e.message);
        let mut wrong = json!({"kind": "Workflow"});
        assert!(fit_to_path(&mut wrong, "TaskRun", "ci", None).is_err());
    }

    #[test]
    fn a_delete_body_carries_a_resource_version_precondition() {
        let none = HeaderMap::new();
        assert_eq!(delete_precondition(&none, b"").expect("empty"), "");
        let body = br#"{"kind": "DeleteOptions", "apiVersion": "v1",
            "propagationPolicy": "Background", "preconditions": {"resourceVersion": "42"}}"#;
        assert_eq!(delete_precondition(&none, body).expect("options"), "42");
        assert_eq!(
            delete_precondition(&none, b"{}").expect("no precondition"),
            ""
        );
        let e = delete_precondition(&none, br#"{"preconditions": {"uid": "u"}}"#)
            .expect_err("uid is not supported");
        assert!(e.message.contains("uid"), "{}", e.message);
        let e = delete_precondition(&none, br#"{"preconditions": {"resourceVersion": 42}}"#)
            .expect_err("a number");
        assert!(e.message.contains("DeleteOptions"), "{}", e.message);
    }

    #[test]
    fn yaml_bodies_decode_by_content_type() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/yaml".parse().expect("header"),
        );
        let value = decode(&headers, b"kind: TaskRun\nmetadata:\n  name: t\n").expect("yaml");
        assert_eq!(value["metadata"]["name"], "t");
        assert!(
            decode(&HeaderMap::new(), b"kind: TaskRun").is_err(),
            "not JSON"
        );
        assert!(decode(&HeaderMap::new(), b"[1]").is_err(), "not an object");
    }
}
