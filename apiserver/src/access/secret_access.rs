//! Who reads Secret values: admins and operators read them; viewers get
//! metadata and key names only (values stripped here, on every get, list
//! and watch); an agent may get a Secret only while an unfinished TaskRun
//! bound to it references it (as the Kubernetes node authorizer lets a
//! kubelet read only its pods' Secrets).

use serde_json::Value;
use sloth_sdk::objects::TaskRunSpec;
use sloth_sdk::objects::secret::SECRET_KIND;

use crate::access::auth::{Role, User};
use crate::cache::WatchCache;
use crate::error::ApiError;
use crate::registry::resources::{Resources, Selectors};

pub use sloth_sdk::well_known::VALUES_HIDDEN;

/// True when `user` may see only the key names of Secrets of `kind`
/// (viewers; an agent gets values only of the Secrets it may read at all).
pub fn redacts(user: &User, kind: &str) -> bool {
    kind == SECRET_KIND && user.role == Role::Viewer
}

/// Empties every value of a Secret's `spec.data` (the keys stay, so a
/// viewer sees what a Secret holds but not the values) and marks the
/// object with the annotation [`VALUES_HIDDEN`].
pub fn redact(value: &mut Value) {
    if let Some(data) = value
        .pointer_mut("/spec/data")
        .and_then(Value::as_object_mut)
    {
        for v in data.values_mut() {
            *v = Value::String(String::new());
        }
    }
    if let Some(meta) = crate::registry::objects::metadata_mut(value) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(VALUES_HIDDEN.into(), Value::String("true".into()));
        }
    }
}

/// Why agent `agent` may read Secret `namespace/name`: Ok(Some(TaskRun
/// name)) when an unfinished TaskRun bound to it references the Secret.
/// Read from the watch cache when there is one (the agent learnt of the
/// TaskRun through it), else, or when the cache has not seen it yet, from
/// the store.
pub async fn referencing_run(
    resources: &Resources,
    cache: Option<&WatchCache>,
    agent: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, ApiError> {
    let selectors = Selectors::parse("", &format!("spec.agentName={agent}"))?;
    if let Some(cache) = cache
        && let Ok(Some(listed)) = cache
            .list("TaskRun", namespace, &selectors, 0, usize::MAX)
            .await
    {
        // The cache holds objects encoded: decode this agent's TaskRuns
        // (one that fails to decode is looked for in the store below).
        let taskruns: Vec<Value> = listed
            .items
            .iter()
            .filter_map(|entry| entry.object.decode().ok())
            .collect();
        if let Some(found) = find(taskruns.iter(), name) {
            return Ok(Some(found));
        }
    }
    let mut token = String::new();
    loop {
        let page = resources
            .list("TaskRun", namespace, &selectors, 0, &token)
            .await?;
        if let Some(found) = find(page.items.iter().map(|s| &s.value), name) {
            return Ok(Some(found));
        }
        if page.continue_token.is_empty() {
            return Ok(None);
        }
        token = page.continue_token;
    }
}

/// The first unfinished TaskRun among `taskruns` referencing Secret `name`.
fn find<'a>(taskruns: impl Iterator<Item = &'a Value>, name: &str) -> Option<String> {
    taskruns.into_iter().find_map(|tr| {
        let phase = tr.pointer("/status/phase").and_then(Value::as_str);
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return None;
        }
        let spec: TaskRunSpec = serde_json::from_value(tr.get("spec")?.clone()).ok()?;
        spec.secret_use()
            .names()
            .contains(name)
            .then(|| crate::registry::objects::meta_str(tr, "name").to_string())
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn viewers_never_see_values() {
        let user = |role| User {
            name: "u".into(),
            role,
        };
        assert!(!redacts(&user(Role::Admin), "Secret"));
        assert!(!redacts(&user(Role::Operator), "Secret"));
        assert!(redacts(&user(Role::Viewer), "Secret"));
        assert!(!redacts(&user(Role::Agent), "Secret"));
        assert!(!redacts(&user(Role::Viewer), "TaskRun"));
        let mut secret = json!({"kind": "Secret", "spec": {"type": "t",
            "data": {"password": "aHVudGVyMg=="}}});
        redact(&mut secret);
        assert_eq!(
            secret["spec"],
            json!({"type": "t", "data": {"password": ""}})
        );
    }

    #[test]
    fn a_finished_or_unrelated_run_grants_nothing() {
        let run = |name: &str, phase: &str, secrets: Value| {
            json!({"metadata": {"name": name}, "status": {"phase": phase},
                   "spec": {"run": {"shell": "true"}, "secrets": secrets}})
        };
        let runs = [
            run("done", "Succeeded", json!(["db"])),
            run("other", "Running", json!(["api"])),
        ];
        assert_eq!(find(runs.iter(), "db"), None);
        let runs = [run("live", "Running", json!(["db"]))];
        assert_eq!(find(runs.iter(), "db").as_deref(), Some("live"));
        let env = json!({"metadata": {"name": "env"}, "spec": {"run": {"shell": "true"},
            "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]}});
        assert_eq!(find([env].iter(), "db").as_deref(), Some("env"));
    }
}
