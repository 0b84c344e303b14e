//! The registry of kinds: names users type, scope, and admission per kind.

use serde_json::Value;

use crate::objects::{
    AgentSpec, CronWorkflowSpec, EventSpec, LockSpec, SecretSpec, StackSpec, StateEntrySpec,
    TaskRunSpec, WorkflowSpec,
};
use crate::resource::{Object, Spec};
use crate::validation::{FieldError, FieldErrors, Validate};

mod status;
pub use status::{StatusAdmission, admit_status};

/// What the server and clients know about one kind.
pub struct KindInfo {
    /// The kind, as in `kind:` (`Workflow`).
    pub kind: &'static str,
    /// The lowercase plural users type (`slothctl get workflows`) and REST paths use.
    pub plural: &'static str,
    /// The lowercase singular (`slothctl get workflow x`).
    pub singular: &'static str,
    /// Short names (`wf`).
    pub short: &'static [&'static str],
    /// True when objects live in a namespace; false for cluster-scoped kinds (Agent).
    pub namespaced: bool,
    /// Decodes an object of this kind (unknown fields are errors), validates
    /// it, and returns its canonical JSON.
    pub admit: fn(Value) -> Result<Value, FieldErrors>,
    /// Checks a change from the stored object to a new one (both canonical):
    /// immutable fields, terminal phases.
    pub check_update: fn(&Value, &Value) -> Result<(), FieldErrors>,
    /// Given the stored object, the update as sent and the merged object
    /// (the update's spec and mutable metadata over the stored object),
    /// adds what else a main-endpoint update of this kind may change (see
    /// [`crate::strategy`]).
    pub prepare_update: fn(&Value, &Value, &mut Value),
}

impl std::fmt::Debug for KindInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindInfo")
            .field("kind", &self.kind)
            .finish()
    }
}

/// Every kind Sloth serves.
pub static KINDS: &[KindInfo] = &[
    KindInfo {
        kind: "Agent",
        plural: "agents",
        singular: "agent",
        short: &["ag"],
        namespaced: false,
        admit: admit::<AgentSpec>,
        check_update: check_update::<AgentSpec>,
        prepare_update: crate::strategy::keep_merged,
    },
    KindInfo {
        kind: "Workflow",
        plural: "workflows",
        singular: "workflow",
        short: &["wf"],
        namespaced: true,
        admit: admit::<WorkflowSpec>,
        check_update: check_update::<WorkflowSpec>,
        prepare_update: crate::strategy::keep_merged,
    },
    KindInfo {
        kind: "TaskRun",
        plural: "taskruns",
        singular: "taskrun",
        short: &["tr"],
        namespaced: true,
        admit: admit::<TaskRunSpec>,
        check_update: check_update::<TaskRunSpec>,
        prepare_update: crate::strategy::bind_taskrun,
    },
    KindInfo {
        kind: "Lock",
        plural: "locks",
        singular: "lock",
        short: &[],
        namespaced: true,
        admit: admit::<LockSpec>,
        check_update: check_update::<LockSpec>,
        prepare_update: crate::strategy::keep_merged,
    },
    KindInfo {
        kind: "Event",
        plural: "events",
        singular: "event",
        short: &["ev"],
        namespaced: true,
        admit: admit::<EventSpec>,
        check_update: check_update::<EventSpec>,
        prepare_update: crate::strategy::keep_merged,
    },
    KindInfo {
        kind: "StateEntry",
        plural: "stateentries",
        singular: "stateentry",
        short: &["state"],
        namespaced: true,
        admit: admit::<StateEntrySpec>,
        check_update: check_update::<StateEntrySpec>,
        prepare_update: crate::strategy::keep_merged,
    },
    KindInfo {
        kind: "CronWorkflow",
        plural: "cronworkflows",
        singular: "cronworkflow",
        short: &["cwf"],
        namespaced: true,
        admit: admit::<CronWorkflowSpec>,
        check_update: check_update::<CronWorkflowSpec>,
        prepare_update: crate::strategy::keep_merged,
    },
    KindInfo {
        kind: "Stack",
        plural: "stacks",
        singular: "stack",
        short: &[],
        namespaced: true,
        admit: admit::<StackSpec>,
        check_update: check_update::<StackSpec>,
        prepare_update: crate::strategy::keep_merged,
    },
    KindInfo {
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        short: &[],
        namespaced: true,
        admit: crate::validation::admit_secret,
        check_update: check_update::<SecretSpec>,
        prepare_update: crate::strategy::keep_merged,
    },
];

/// Finds a kind by its name, plural, singular or short form, ignoring case.
pub fn lookup(name: &str) -> Option<&'static KindInfo> {
    // Requests name the kind exactly (`Lock`) nearly always: no lowercase
    // copy for them (several lookups per request).
    if let Some(kind) = by_kind(name) {
        return Some(kind);
    }
    let name = name.to_ascii_lowercase();
    KINDS.iter().find(|k| {
        k.kind.eq_ignore_ascii_case(&name)
            || k.plural == name
            || k.singular == name
            || k.short.contains(&name.as_str())
    })
}

/// Finds a kind by its exact name (`TaskRun`), as stored objects carry it.
pub fn by_kind(kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.kind == kind)
}

/// The names of every kind, for error messages.
pub fn known_kinds() -> String {
    KINDS.iter().map(|k| k.kind).collect::<Vec<_>>().join(", ")
}

/// Decodes JSON into a typed object, naming the path of the first field that
/// does not fit (`spec.tasks[2].dependsOn`).
pub fn decode<S: Spec>(value: Value) -> Result<Object<S>, FieldErrors> {
    serde_path_to_error::deserialize::<_, Object<S>>(value).map_err(field_error)
}

/// [`decode`] without taking (or copying) the value.
fn decode_borrowed<S: Spec>(value: &Value) -> Result<Object<S>, FieldErrors> {
    serde_path_to_error::deserialize::<_, Object<S>>(value).map_err(field_error)
}

fn field_error(e: serde_path_to_error::Error<serde_json::Error>) -> FieldErrors {
    let path = e.path().to_string();
    let field = if path == "." { String::new() } else { path };
    FieldErrors::from(FieldError::new(field, e.into_inner().to_string()))
}

fn admit<S: Spec + Validate>(value: Value) -> Result<Value, FieldErrors> {
    let object = decode::<S>(value)?;
    S::validate(&object)?;
    serde_json::to_value(&object)
        .map_err(|e| FieldErrors::from(FieldError::new("", format!("cannot encode: {e}"))))
}

fn check_update<S: Spec + Validate>(old: &Value, new: &Value) -> Result<(), FieldErrors> {
    if !S::CHECKS_UPDATES {
        return Ok(());
    }
    let old = decode_borrowed::<S>(old)?;
    let new = decode_borrowed::<S>(new)?;
    S::validate_update(&old, &new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_every_form_of_a_name() {
        for name in ["Lock", "lock", "LOCK", "locks"] {
            assert_eq!(lookup(name).map(|k| k.kind), Some("Lock"), "{name}");
        }
        assert_eq!(lookup("wf").map(|k| k.kind), Some("Workflow"));
        assert_eq!(lookup("TaskRun").map(|k| k.kind), Some("TaskRun"));
        assert!(lookup("Locke").is_none());
    }

    #[test]
    fn kinds_without_update_rules_skip_the_check_and_others_keep_it() {
        // A Lock may change in any way; a bound TaskRun may not move.
        let lock = |holder: &str| {
            serde_json::json!({"apiVersion": "sloth.dev/v1", "kind": "Lock",
                "metadata": {"name": "l", "namespace": "default"},
                "spec": {"holderIdentity": holder}})
        };
        let check = by_kind("Lock").expect("Lock").check_update;
        assert!(check(&lock("a"), &lock("b")).is_ok());
        let taskrun = |agent: &str| {
            serde_json::json!({"apiVersion": "sloth.dev/v1", "kind": "TaskRun",
                "metadata": {"name": "t", "namespace": "default"},
                "spec": {"run": {"shell": "true"}, "agentName": agent}})
        };
        let check = by_kind("TaskRun").expect("TaskRun").check_update;
        assert!(check(&taskrun("a1"), &taskrun("a2")).is_err());
    }
}
