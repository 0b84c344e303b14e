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
