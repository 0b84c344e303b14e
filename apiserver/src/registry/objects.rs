//! Server-side handling of stored object JSON: decoding with the store's
//! revision, and the metadata rules of create and update.

use bytes::Bytes;
use serde_json::{Map, Value};
use sloth_sdk::kinds::{self, KindInfo};
use sloth_sdk::meta::DEFAULT_NAMESPACE;

use crate::error::ApiError;
use crate::store::KeyValue;

/// The largest object the server stores (JSON bytes), as etcd's request limit.
pub const MAX_OBJECT_BYTES: usize = 1024 * 1024;

/// Metadata fields only the server sets.
const SERVER_FIELDS: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
];

/// Metadata fields a client may change on update.
const CLIENT_MUTABLE: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// A stored object as JSON with `metadata.resourceVersion` set from the
/// store's mod revision (the stored bytes never carry it).
pub fn from_store(kv: &KeyValue) -> Result<Value, ApiError> {
    decode_stored(&kv.value, kv.mod_revision)
}

pub fn decode_stored(bytes: &[u8], revision: i64) -> Result<Value, ApiError> {
    let mut value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Internal(format!("stored object is not JSON: {e}")))?;
    set_resource_version(&mut value, revision);
    Ok(value)
}

/// Whether two objects are equal but for `metadata.resourceVersion`,
/// without copying either (a Workflow can be close to the 1 MiB limit).
pub fn same_but_resource_version(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    a.len() == b.len()
        && a.iter()
            .all(|(key, value)| match (key.as_str(), b.get(key)) {
                ("metadata", Some(other)) => same_metadata(value, other),
                (_, other) => other == Some(value),
            })
}

fn same_metadata(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let others = |m: &'_ serde_json::Map<String, Value>| {
        m.keys().filter(|k| *k != "resourceVersion").count()
    };
    others(a) == others(b)
        && a.iter()
            .filter(|(key, _)| *key != "resourceVersion")
            .all(|(key, value)| b.get(key) == Some(value))
}

pub fn set_resource_version(value: &mut Value, revision: i64) {
    if let Some(meta) = metadata_mut(value) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

/// The bytes to store: canonical JSON without a resourceVersion (removed
/// from `value` in place: objects can be large, and the caller sets the
/// new one anyway).
pub fn to_store(value: &mut Value) -> Result<Bytes, ApiError> {
    if let Some(meta) = metadata_mut(value) {
        meta.remove("resourceVersion");
    }
    let bytes = serde_json::to_vec(value)
        .map_err(|e| ApiError::Internal(format!("cannot encode object: {e}")))?;
    Ok(Bytes::from(bytes))
}

/// Parses a request body, refusing oversized or non-object JSON.
pub fn parse_request(json: &[u8]) -> Result<Value, ApiError> {
    check_size(json.len())?;
    let value: Value = serde_json::from_slice(json)
        .map_err(|e| ApiError::BadRequest(format!("object is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::BadRequest("object must be a JSON object".into()));
    }
    Ok(value)
}

pub fn check_size(len: usize) -> Result<(), ApiError> {
    if len > MAX_OBJECT_BYTES {
        return Err(ApiError::BadRequest(format!(
            "object is too large: {len} bytes, the limit is {MAX_OBJECT_BYTES} bytes"
        )));
    }
    Ok(())
}

pub fn metadata_mut(value: &mut Value) -> Option<&mut Map<String, Value>> {
    let object = value.as_object_mut()?;
    let meta = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    meta.as_object_mut()
}

/// A string at `metadata.<field>`, or "".
pub fn meta_str<'a>(value: &'a Value, field: &str) -> &'a str {
    value
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The namespace an object of `kind` is stored in.
pub fn effective_namespace(kind: &KindInfo, requested: &str) -> String {
    match (kind.namespaced, requested.is_empty()) {
        (false, _) => String::new(),
        (true, true) => DEFAULT_NAMESPACE.to_string(),
        (true, false) => requested.to_string(),
    }
}

/// Prepares a new object: server fields set, status dropped (status is
/// written only through UpdateStatus), namespace defaulted.
pub fn prepare_create(value: &mut Value, kind: &KindInfo, name: &str, namespace: &str) {
    if let Some(object) = value.as_object_mut() {
        object.remove("status");
    }
    let Some(meta) = metadata_mut(value) else {
        return;
    };
    for field in SERVER_FIELDS {
        meta.remove(*field);
    }
    meta.insert("name".into(), Value::String(name.to_string()));
    if kind.namespaced {
        meta.insert("namespace".into(), Value::String(namespace.to_string()));
    }
    meta.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    meta.insert("generation".into(), Value::from(1));
    meta.insert(
        "creationTimestamp".into(),
        serde_json::to_value(chrono::Utc::now()).unwrap_or(Value::Null),
    );
}

/// The object a main-endpoint update stores: the client's spec and mutable
/// metadata, everything else from `current`; generation bumps on spec change.
/// The kind's strategy ([`KindInfo::prepare_update`]) may take more from the
/// update (a TaskRun's binding may also move it to Scheduled).
pub fn merge_update(current: &Value, requested: &Value) -> Value {
    let mut merged = merge_spec_and_metadata(current, requested);
    let kind = current
        .get("kind")
        .and_then(Value::as_str)
        .and_then(kinds::by_kind);
    if let Some(kind) = kind {
        (kind.prepare_update)(current, requested, &mut merged);
    }
    if merged.get("status") != current.get("status") {
        sloth_sdk::strategy::derive_succeeded(&mut merged);
    }
    merged
}

fn merge_spec_and_metadata(current: &Value, requested: &Value) -> Value {
    let mut merged = current.clone();
    let spec = requested.get("spec").cloned().unwrap_or(Value::Null);
    let spec_changed = current.get("spec") != Some(&spec);
    if let Some(object) = merged.as_object_mut() {
        object.insert("spec".into(), spec);
    }
    let requested_meta = requested.get("metadata").and_then(Value::as_object);
    if let Some(meta) = metadata_mut(&mut merged) {
        for field in CLIENT_MUTABLE {
            match requested_meta.and_then(|m| m.get(*field)) {
                Some(v) if !v.is_null() => {
                    meta.insert((*field).to_string(), v.clone());
                }
                _ => {
                    meta.remove(*field);
                }
            }
        }
        if spec_changed {
            let generation = meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
            meta.insert("generation".into(), Value::from(generation + 1));
        }
    }
    merged
}

/// The object an UpdateStatus stores: `current` with the requested status.
pub fn merge_status(current: &Value, requested: &Value) -> Value {
    let mut merged = current.clone();
    if let Some(object) = merged.as_object_mut() {
        match requested.get("status") {
            Some(status) if !status.is_null() => {
                object.insert("status".into(), status.clone());
            }
            _ => {
                object.remove("status");
            }
        }
    }
    sloth_sdk::strategy::derive_succeeded(&mut merged);
    merged
}

/// Marks an object as being deleted (it has finalizers left).
pub fn mark_deleting(value: &mut Value) {
    if let Some(meta) = metadata_mut(value)
        && !meta.contains_key("deletionTimestamp")
    {
        meta.insert(
            "deletionTimestamp".into(),
            serde_json::to_value(chrono::Utc::now()).unwrap_or(Value::Null),
        );
    }
}

/// True when the object waits for deletion and no finalizer holds it.
pub fn ready_to_delete(value: &Value) -> bool {
    let meta = value.get("metadata");
    let deleting = meta.and_then(|m| m.get("deletionTimestamp")).is_some();
    let finalizers = meta
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    deleting && !finalizers
}

/// A name made from `generateName`: the prefix plus five random characters.
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn equal_but_for_the_resource_version() {
        let base = json!({
            "kind": "TaskRun",
            "metadata": {"name": "a", "resourceVersion": "7", "labels": {"x": "1"}},
            "spec": {"agentName": "a1"},
        });
        let mut other = base.clone();
        other["metadata"]["resourceVersion"] = json!("9");
        assert!(same_but_resource_version(&base, &other));
        let mut without = base.clone();
        without["metadata"]
            .as_object_mut()
            .expect("map")
            .remove("resourceVersion");
        assert!(same_but_resource_version(&base, &without));
        assert!(same_but_resource_version(&without, &base));
        for change in [
            json!({"spec": {"agentName": "a2"}}),
            json!({"metadata": {"name": "a", "resourceVersion": "7", "labels": {"x": "2"}}}),
            json!({"metadata": {"name": "a", "resourceVersion": "7"}}),
            json!({"status": {}}),
        ] {
            let mut changed = base.clone();
            for (k, v) in change.as_object().expect("map") {
                changed[k] = v.clone();
            }
            assert!(!same_but_resource_version(&base, &changed), "{change}");
            assert!(!same_but_resource_version(&changed, &base), "{change}");
        }
        let mut no_metadata = base.clone();
        no_metadata.as_object_mut().expect("map").remove("metadata");
        assert!(!same_but_resource_version(&base, &no_metadata));
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn update_keeps_status_and_server_fields_and_bumps_generation_on_spec_change() {
        let current = json!({"kind": "TaskRun", "metadata": {"name": "a", "uid": "u1",
            "generation": 1, "labels": {"x": "1"}}, "spec": {"a": 1}, "status": {"phase": "Running"}});
        let requested = json!({"kind": "TaskRun", "metadata": {"name": "a", "uid": "evil",
            "generation": 9, "labels": {"y": "2"}}, "spec": {"a": 2}, "status": {"phase": "Failed"}});
        let merged = merge_update(&current, &requested);
        assert_eq!(merged["metadata"]["uid"], "u1");
        assert_eq!(merged["metadata"]["generation"], 2);
        assert_eq!(merged["metadata"]["labels"], json!({"y": "2"}));
        assert_eq!(merged["status"], json!({"phase": "Running"}));
        let same = merge_update(&merged, &merged);
        assert_eq!(same["metadata"]["generation"], 2, "no spec change, no bump");
    }

    #[test]
    fn a_binding_update_may_carry_the_scheduled_status() {
        let current = json!({"kind": "TaskRun", "metadata": {"name": "t"},
            "spec": {"run": {"shell": "true"}},
            "status": {"phase": "Pending", "conditions": [{"type": "Scheduled",
                "status": "False", "reason": "Unschedulable", "message": "1 full"}]}});
        let scheduled = json!({"phase": "Scheduled", "agent": "a1", "conditions": [
            {"type": "Scheduled", "status": "True", "reason": "Scheduled",
             "message": "bound to agent a1"}]});
        let mut requested = current.clone();
        requested["spec"]["agentName"] = json!("a1");
        requested["status"] = scheduled.clone();
        let merged = merge_update(&current, &requested);
        assert_eq!(merged["spec"]["agentName"], "a1");
        assert_eq!(without_succeeded(&merged["status"]), scheduled);
        assert_eq!(
            merged["status"]["conditions"][1]["type"], "Succeeded",
            "the binding's status gets the derived condition too"
        );

        // No status yet (as created).
        let fresh = json!({"kind": "TaskRun", "metadata": {"name": "t"},
            "spec": {"run": {"shell": "true"}}});
        let mut requested = fresh.clone();
        requested["spec"]["agentName"] = json!("a1");
        requested["status"] = scheduled.clone();
        assert_eq!(
            without_succeeded(&merge_update(&fresh, &requested)["status"]),
            scheduled
        );
    }

    /// A status without the `Succeeded` condition the apiserver derives.
    fn without_succeeded(status: &Value) -> Value {
        let mut status = status.clone();
        if let Some(conditions) = status["conditions"].as_array_mut() {
            conditions.retain(|c| c["type"] != "Succeeded");
        }
        status
    }

    #[test]
    fn other_statuses_in_updates_are_still_ignored() {
        let pending = json!({"kind": "TaskRun", "metadata": {"name": "t"},
            "spec": {"run": {"shell": "true"}}, "status": {"phase": "Pending"}});
        let bind = |status: Value| {
            let mut r = pending.clone();
            r["spec"]["agentName"] = json!("a1");
            r["status"] = status;
            merge_update(&pending, &r)["status"].clone()
        };
        // A binding without a status, or with another phase or agent.
        assert_eq!(bind(Value::Null), pending["status"]);
        assert_eq!(bind(json!({"phase": "Pending"})), pending["status"]);
        assert_eq!(
            bind(json!({"phase": "Succeeded", "agent": "a1"})),
            pending["status"]
        );
        assert_eq!(
            bind(json!({"phase": "Scheduled", "agent": "a2"})),
            pending["status"]
        );
        // Not a binding: already bound, or no agentName.
        let bound = json!({"kind": "TaskRun", "metadata": {"name": "t"},
            "spec": {"run": {"shell": "true"}, "agentName": "a1"},
            "status": {"phase": "Running", "agent": "a1"}});
        let mut requested = bound.clone();
        requested["status"] = json!({"phase": "Scheduled", "agent": "a1"});
        assert_eq!(merge_update(&bound, &requested)["status"], bound["status"]);
        let mut requested = pending.clone();
        requested["status"] = json!({"phase": "Scheduled", "agent": "a1"});
        assert_eq!(
            merge_update(&pending, &requested)["status"],
            pending["status"]
        );
        // Not Pending any more (failed before it was bound).
        let failed = json!({"kind": "TaskRun", "metadata": {"name": "t"},
            "spec": {"run": {"shell": "true"}}, "status": {"phase": "Failed"}});
        let mut requested = failed.clone();
        requested["spec"]["agentName"] = json!("a1");
        requested["status"] = json!({"phase": "Scheduled", "agent": "a1"});
        assert_eq!(
            merge_update(&failed, &requested)["status"],
            failed["status"]
        );
        // Other kinds.
        let other = json!({"kind": "Workflow", "metadata": {"name": "w"}, "spec": {}});
        let mut requested = other.clone();
        requested["spec"]["agentName"] = json!("a1");
        requested["status"] = json!({"phase": "Scheduled", "agent": "a1"});
        assert!(merge_update(&other, &requested).get("status").is_none());
    }

    #[test]
    fn status_update_ignores_spec() {
        let current = json!({"metadata": {"name": "a"}, "spec": {"a": 1}});
        let requested = json!({"metadata": {"name": "a"}, "spec": {"a": 2}, "status": {"p": 1}});
        let merged = merge_status(&current, &requested);
        assert_eq!(merged["spec"], json!({"a": 1}));
        assert_eq!(merged["status"], json!({"p": 1}));
    }
}
