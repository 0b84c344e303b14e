//! Per-kind update strategies: what a main-endpoint update of a kind may
//! carry beyond spec and metadata (like Kubernetes' registry strategies'
//! `PrepareForUpdate`). The apiserver's generic merge calls the kind's
//! [`KindInfo::prepare_update`](crate::kinds::KindInfo::prepare_update)
//! and so names no kind itself.

use serde_json::Value;

/// The strategy of most kinds: the merged object (the client's spec and
/// mutable metadata over the stored object) is stored as it is, and any
/// status in the update is ignored.
pub fn keep_merged(_current: &Value, _requested: &Value, _merged: &mut Value) {}

/// The TaskRun binding rule, the one case where the main endpoint takes
/// `status`: an update of a TaskRun that sets `spec.agentName` (empty
/// before) while the TaskRun is Pending (or has no status yet) may carry a
/// status of phase `Scheduled` whose `agent` is that same agent; it is
/// stored with the binding, in the same write (the scheduler's binding).
/// Any other status in an update is ignored, as always. The binding stays
/// a compare-and-swap on the TaskRun's resourceVersion, and
/// `spec.agentName` stays immutable once set.
pub fn bind_taskrun(current: &Value, requested: &Value, merged: &mut Value) {
    let agent_of = |v: &Value| {
        v.get("spec")
            .and_then(|s| s.get("agentName"))
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
    };
    if agent_of(current).is_some() {
        return;
    }
    let Some(agent) = agent_of(merged) else {
        return;
    };
    let str_at = |v: &Value, field: &str| {
        v.get("status")
            .and_then(|s| s.get(field))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_default()
    };
    let phase = str_at(current, "phase");
    if !(phase.is_empty() || phase == "Pending") {
        return;
    }
    if str_at(requested, "phase") != "Scheduled" || str_at(requested, "agent") != agent {
        return;
    }
    if let (Some(object), Some(status)) = (merged.as_object_mut(), requested.get("status")) {
        object.insert("status".into(), status.clone());
    }
}

/// The condition every TaskRun and Workflow carries (Tekton's convention),
/// so that `wait --for=condition=Succeeded` works for both.
pub const SUCCEEDED: &str = "Succeeded";

/// Derives the `Succeeded` condition of a TaskRun or Workflow from its
/// phase: True when Succeeded, False when Failed or Cancelled, Unknown
/// otherwise. Called by the apiserver on every status it stores, so every
/// writer (agents, scheduler, controllers) gets it without knowing. A
/// condition that already says the same (the workflow controller writes
/// its own, with its reason) is left alone; other kinds are untouched.
pub fn derive_succeeded(object: &mut Value) {
    if !matches!(
        object.get("kind").and_then(Value::as_str),
        Some("TaskRun" | "Workflow")
    ) {
        return;
    }
    let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) else {
        return;
    };
    let text = |field: &str| {
        status
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let phase = text("phase");
    let truth = match phase.as_str() {
        "Succeeded" => "True",
        "Failed" | "Cancelled" => "False",
        _ => "Unknown",
    };
    let reason = [text("reason"), phase]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "Pending".to_string());
    let message = text("message");
    let conditions = status
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !conditions.is_array() {
        *conditions = Value::Array(Vec::new());
    }
    let Some(conditions) = conditions.as_array_mut() else {
        return;
    };
    let is_ours = |c: &Value| c.get("type").and_then(Value::as_str) == Some(SUCCEEDED);
    if conditions
        .iter()
        .any(|c| is_ours(c) && c.get("status").and_then(Value::as_str) == Some(truth))
    {
        return;
    }
    conditions.retain(|c| !is_ours(c));
    let mut condition = serde_json::json!({
        "type": SUCCEEDED,
        "status": truth,
        "reason": reason,
        "lastTransitionTime": chrono::Utc::now(),
    });
    if !message.is_empty() {
        condition["message"] = Value::String(message);
    }
    conditions.push(condition);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn succeeded(object: &Value) -> Value {
        object["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == SUCCEEDED))
            .cloned()
            .unwrap_or(Value::Null)
    }

    #[test]
    fn the_succeeded_condition_follows_the_phase() {
        let mut tr = json!({"kind": "TaskRun", "status": {"phase": "Running"}});
        derive_succeeded(&mut tr);
        assert_eq!(succeeded(&tr)["status"], "Unknown");
        assert_eq!(succeeded(&tr)["reason"], "Running");
        tr["status"]["phase"] = json!("Failed");
        tr["status"]["reason"] = json!("Error");
        tr["status"]["message"] = json!("exit code 3");
        derive_succeeded(&mut tr);
        let c = succeeded(&tr);
        assert_eq!(
            (c["status"].clone(), c["reason"].clone()),
            (json!("False"), json!("Error"))
        );
        assert_eq!(c["message"], "exit code 3");
        assert_eq!(tr["status"]["conditions"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn a_condition_that_already_agrees_is_kept_and_other_kinds_untouched() {
        let own = json!({"type": "Succeeded", "status": "True", "reason": "AllDone"});
        let mut wf = json!({"kind": "Workflow", "status": {"phase": "Succeeded",
            "conditions": [{"type": "Ready", "status": "True"}, own.clone()]}});
        let before = wf.clone();
        derive_succeeded(&mut wf);
        assert_eq!(wf, before);
        let mut agent = json!({"kind": "Agent", "status": {"phase": "Ready"}});
        let before = agent.clone();
        derive_succeeded(&mut agent);
        assert_eq!(agent, before);
        let mut fresh = json!({"kind": "TaskRun", "spec": {}});
        derive_succeeded(&mut fresh);
        assert!(fresh.get("status").is_none());
    }
}
