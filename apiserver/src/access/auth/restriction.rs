//! What an agent may write into the objects [`policy`](super::policy)
//! lets it touch, judged on the objects' content, as Kubernetes'
//! NodeRestriction admission plugin does for kubelets:
//!
//! - labels: `sloth.dev/agent` only with the agent's own name; labels
//!   under `restricted.sloth.dev/` never added, changed or removed (admins
//!   and operators set them, so they can place sensitive work);
//! - Locks (outside `sloth-system`, whose heartbeat Locks the policy
//!   already limits by name): created, renewed, taken or deleted only for
//!   a holder that is the agent itself or a TaskRun bound to it, and never
//!   taken from another holder whose lease still runs.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sloth_sdk::lease;
use sloth_sdk::objects::Lock;
use sloth_sdk::well_known::{AGENT_LABEL, RESTRICTED_LABEL_PREFIX};

use super::policy::Verb;

/// A TaskRun named as a Lock holder: the write goes ahead only if it is
/// bound to the agent (the caller looks it up).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HolderTaskRun {
    pub namespace: String,
    pub name: String,
}

fn labels(object: Option<&Value>) -> Option<&Map<String, Value>> {
    object?.get("metadata")?.get("labels")?.as_object()
}

/// Refuses label changes an agent may not make on an object it creates
/// (`stored` None) or updates.
pub fn check_labels(agent: &str, stored: Option<&Value>, requested: &Value) -> Result<(), String> {
    let (before, after) = (labels(stored), labels(Some(requested)));
    let restricted: BTreeSet<&String> = before
        .into_iter()
        .chain(after)
        .flat_map(Map::keys)
        .filter(|k| k.starts_with(RESTRICTED_LABEL_PREFIX))
        .collect();
    for key in restricted {
        let (old, new) = (
            before.and_then(|l| l.get(key)),
            after.and_then(|l| l.get(key)),
        );
        let change = match (old, new) {
            (None, Some(_)) => "add",
            (Some(_), None) => "remove",
            (old, new) if old != new => "change",
            _ => continue,
        };
        return Err(format!(
            "an agent may not {change} label {key:?}: labels under {RESTRICTED_LABEL_PREFIX} \
             are set by admins and operators (slothctl label agent NAME KEY=VALUE)"
        ));
    }
    match after.and_then(|l| l.get(AGENT_LABEL)) {
        Some(value) if value.as_str() != Some(agent) => Err(format!(
            "an agent may set label {AGENT_LABEL:?} only to its own name {agent:?}, not {value}"
        )),
        _ => Ok(()),
    }
}

/// Whose a Lock holder identity is, from agent `agent`'s point of view.
enum Holder {
    /// The agent itself (`NAME`, as its heartbeat writes it, or `agent:NAME`).
    Agent,
    /// `TaskRun/<namespace>/<name>`, as task locks and Lua locks write it.
    TaskRun(HolderTaskRun),
    Other,
}

fn holder_of(agent: &str, identity: &str) -> Holder {
    if identity == agent || identity.strip_prefix("agent:") == Some(agent) {
        return Holder::Agent;
    }
    let mut parts = identity.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("TaskRun"), Some(namespace), Some(name))
            if !namespace.is_empty() && !name.is_empty() =>
        {
            Holder::TaskRun(HolderTaskRun {
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
        }
        _ => Holder::Other,
    }
}

/// Requires `identity` to be the agent or a TaskRun (collected into
/// `taskruns`, to be checked by the caller).
fn require_own(
    agent: &str,
    lock: &str,
    identity: &str,
    what: &str,
    taskruns: &mut Vec<HolderTaskRun>,
) -> Result<(), String> {
    match holder_of(agent, identity) {
        Holder::Agent => Ok(()),
        Holder::TaskRun(taskrun) => {
            taskruns.push(taskrun);
            Ok(())
        }
        Holder::Other => Err(format!(
            "lock {lock:?} {what} {identity:?}: an agent may only hold locks for itself \
             ({agent:?}) or for a TaskRun bound to it (TaskRun/NAMESPACE/NAME)"
        )),
    }
}

/// Judges an agent's `verb` on a Lock (`stored` as it is, `requested` as
/// the write would store it). On success, the TaskRuns named as holders,
/// which must all be bound to the agent.
pub fn check_lock(
    agent: &str,
    verb: Verb,
    stored: Option<&Lock>,
    requested: Option<&Lock>,
    now: DateTime<Utc>,
) -> Result<Vec<HolderTaskRun>, String> {
    let mut taskruns = Vec::new();
    // Someone's lease still runs: only that holder may renew, release or
    // delete it.
    if let Some(lock) = stored
        && !lease::is_free(lock, now)
        && let Some(current) = lease::holder(lock)
    {
        require_own(agent, lock.name(), current, "is held by", &mut taskruns)?;
    }
    if matches!(verb, Verb::Create | Verb::Update)
        && let Some(lock) = requested
    {
        match lease::holder(lock) {
            Some(next) => require_own(agent, lock.name(), next, "would be held by", &mut taskruns)?,
            None if verb == Verb::Create => {
                return Err(format!(
                    "lock {:?} would have no holder: an agent creates a lock only to hold it",
                    lock.name()
                ));
            }
            // A release (or a clear of an expired lease).
            None => {}
        }
    }
    taskruns.sort();
    taskruns.dedup();
    Ok(taskruns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sloth_sdk::objects::LockSpec;

    fn with_labels(labels: Value) -> Value {
        json!({"kind": "Agent", "metadata": {"name": "a1", "labels": labels}, "spec": {}})
    }

    #[test]
    fn the_agent_label_names_only_the_agent_itself() {
        let ok = with_labels(json!({"sloth.dev/agent": "a1", "role": "gpu"}));
        assert_eq!(check_labels("a1", None, &ok), Ok(()));
        let stolen = with_labels(json!({"sloth.dev/agent": "s2"}));
        let e = check_labels("a1", Some(&ok), &stolen).expect_err("other name");
        assert!(e.contains("sloth.dev/agent") && e.contains("\"a1\""), "{e}");
        assert_eq!(
            check_labels("a1", Some(&ok), &with_labels(json!({}))),
            Ok(())
        );
    }

    #[test]
    fn restricted_labels_are_never_added_changed_or_removed() {
        let plain = with_labels(json!({"sloth.dev/agent": "a1"}));
        let secure = with_labels(json!({"sloth.dev/agent": "a1",
            "restricted.sloth.dev/tier": "secure"}));
        let other = with_labels(json!({"sloth.dev/agent": "a1",
            "restricted.sloth.dev/tier": "other"}));
        for (stored, requested, change) in [
            (None, &secure, "add"),
            (Some(&plain), &secure, "add"),
            (Some(&secure), &other, "change"),
            (Some(&secure), &plain, "remove"),
        ] {
            let e = check_labels("a1", stored, requested).expect_err(change);
            assert!(e.contains(change), "{e}");
            assert!(e.contains("restricted.sloth.dev/tier"), "{e}");
        }
        // Kept as the admin set it: fine.
        assert_eq!(check_labels("a1", Some(&secure), &secure), Ok(()));
    }

    fn lock(holder: Option<&str>, renewed_ago_secs: i64) -> Lock {
        let now = Utc::now();
        let mut lock = Lock::new(
            "production",
            LockSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(60),
                acquire_time: Some(now),
                renew_time: Some(now - chrono::Duration::seconds(renewed_ago_secs)),
                lease_transitions: 0,
            },
        );
        lock.metadata.namespace = "default".into();
        lock
    }

    #[test]
    fn an_agent_holds_locks_only_for_itself_or_its_taskruns() {
        let now = Utc::now();
        let task = lock(Some("TaskRun/default/deploy-1"), 0);
        let own = lock(Some("a1"), 0);
        // Create for itself or a TaskRun (to be checked), never for others.
        assert_eq!(
            check_lock("a1", Verb::Create, None, Some(&own), now),
            Ok(vec![])
        );
        assert_eq!(
            check_lock("a1", Verb::Create, None, Some(&task), now),
            Ok(vec![HolderTaskRun {
                namespace: "default".into(),
                name: "deploy-1".into()
            }])
        );
        let e = check_lock("a1", Verb::Create, None, Some(&lock(Some("a2"), 0)), now)
            .expect_err("for a2");
        assert!(e.contains("\"production\"") && e.contains("\"a2\""), "{e}");
        assert!(check_lock("a1", Verb::Create, None, Some(&lock(None, 0)), now).is_err());
        // A held lock: delete and take-over need the holder to be its own.
        let e = check_lock("a1", Verb::Delete, Some(&lock(Some("ctl"), 0)), None, now)
            .expect_err("delete another's");
        assert!(e.contains("is held by \"ctl\""), "{e}");
        assert!(
            check_lock(
                "a1",
                Verb::Update,
                Some(&lock(Some("ctl"), 0)),
                Some(&own),
                now
            )
            .is_err()
        );
        assert_eq!(
            check_lock("a1", Verb::Delete, Some(&task), None, now).map(|t| t.len()),
            Ok(1)
        );
        // Expired or free: anyone's to take, or delete.
        let expired = lock(Some("ctl"), 120);
        assert_eq!(
            check_lock("a1", Verb::Update, Some(&expired), Some(&own), now),
            Ok(vec![])
        );
        assert_eq!(
            check_lock("a1", Verb::Delete, Some(&expired), None, now),
            Ok(vec![])
        );
        // Release of its own lock.
        assert_eq!(
            check_lock("a1", Verb::Update, Some(&own), Some(&lock(None, 0)), now),
            Ok(vec![])
        );
    }
}
