//! Admission of status writes (the status subresource).
//!
//! A status write keeps the stored spec and metadata: the server merges the
//! requested status over the stored object. For kinds whose rules about the
//! status are all in its schema, only the status is new and only it needs
//! checking; the spec and metadata were checked when they were written, as
//! Kubernetes validates only the status on `/status` (and ratcheting
//! validation skips unchanged fields). A Workflow's spec can be most of a
//! megabyte (1,000 tasks, 47,500 dependency names), and its controller
//! writes the status once per finished layer.

use serde_json::Value;

use super::KindInfo;
use crate::objects::WorkflowSpec;
use crate::resource::Spec;
use crate::validation::{FieldError, FieldErrors};

/// What admission of a status write produced.
#[derive(Debug, PartialEq)]
pub enum StatusAdmission {
    /// Only the status differs from the stored object, and it was checked
    /// completely: the update check has nothing left to judge.
    StatusOnly(Value),
    /// The whole object was admitted ([`KindInfo::admit`]); the update
    /// check ([`KindInfo::check_update`]) is still to run.
    Whole(Value),
}

/// Admits `merged`, the stored object `stored` with the status a status
/// write asked for. Only the status is decoded and checked when the kind
/// allows it and nothing but the status differs from `stored`; otherwise
/// the whole object goes through [`KindInfo::admit`].
pub fn admit_status(
    kind: &KindInfo,
    stored: &Value,
    merged: Value,
) -> Result<StatusAdmission, FieldErrors> {
    if let Some(admit) = status_only_admission(kind)
        && same_but_status(stored, &merged)
    {
        return admit(merged).map(StatusAdmission::StatusOnly);
    }
    (kind.admit)(merged).map(StatusAdmission::Whole)
}

/// The status-only admission of kinds whose validation says nothing about
/// the status beyond its schema, and whose update check judges only spec
/// changes (a Workflow: a finished one cannot become Cancelled). A TaskRun
/// has none: its status has size limits and terminal phases.
fn status_only_admission(kind: &KindInfo) -> Option<fn(Value) -> Result<Value, FieldErrors>> {
    match kind.kind {
        WorkflowSpec::KIND => Some(canonical_status::<WorkflowSpec>),
        _ => None,
    }
}

/// True when `a` and `b` differ at most in `status`. The server merges a
/// status write over a copy of the stored object, so everything else,
/// metadata.resourceVersion included, is the stored object's.
fn same_but_status(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return false;
    };
    let outside = |m: &serde_json::Map<String, Value>| m.keys().filter(|k| *k != "status").count();
    outside(a) == outside(b)
        && a.iter()
            .filter(|(key, _)| *key != "status")
            .all(|(key, value)| b.get(key) == Some(value))
}

/// Decodes `object`'s status as the kind's status type (unknown fields
/// and wrong types are errors naming the field, as in a whole decode) and
/// puts its canonical encoding back.
fn canonical_status<S: Spec>(mut object: Value) -> Result<Value, FieldErrors> {
    let Some(fields) = object.as_object_mut() else {
        return Err(FieldError::new("", "must be an object").into());
    };
    match fields.remove("status") {
        None | Some(Value::Null) => {}
        Some(status) => {
            let typed: S::Status =
                serde_path_to_error::deserialize(status).map_err(status_field_error)?;
            let canonical = serde_json::to_value(&typed)
                .map_err(|e| FieldError::new("status", format!("cannot encode: {e}")))?;
            fields.insert("status".into(), canonical);
        }
    }
    Ok(object)
}

/// A decode error of the status alone, at its path in the whole object
/// (`status.tasks.build.phase`), as a whole decode names it.
fn status_field_error(e: serde_path_to_error::Error<serde_json::Error>) -> FieldErrors {
    let path = e.path().to_string();
    let field = if path == "." {
        "status".to_string()
    } else {
        format!("status.{path}")
    };
    FieldError::new(field, e.into_inner().to_string()).into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kinds::by_kind;

    /// As the server stores it: admitted, so in canonical form.
    fn stored_workflow() -> Value {
        let sent = json!({
            "apiVersion": "sloth.dev/v1", "kind": "Workflow",
            "metadata": {"name": "wf", "namespace": "default", "resourceVersion": "7", "generation": 1},
            "spec": {"tasks": [{"name": "a", "run": {"shell": "true"}}]},
        });
        (workflow().admit)(sent).expect("a valid Workflow")
    }

    fn with_status(mut object: Value, status: Value) -> Value {
        object["status"] = status;
        object
    }

    fn workflow() -> &'static KindInfo {
        by_kind("Workflow").expect("Workflow is a kind")
    }

    #[test]
    fn a_workflow_status_write_checks_only_the_status() {
        let stored = stored_workflow();
        let merged = with_status(stored.clone(), json!({"phase": "Running"}));
        let StatusAdmission::StatusOnly(admitted) =
            admit_status(workflow(), &stored, merged).expect("admitted")
        else {
            panic!("a status-only write of a Workflow is admitted by its status");
        };
        assert_eq!(admitted["spec"], stored["spec"]);
        assert_eq!(admitted["status"]["phase"], "Running");
    }

    #[test]
    fn an_invalid_workflow_status_is_refused_naming_the_field() {
        let stored = stored_workflow();
        for (status, field) in [
            (json!({"phase": "Bogus"}), "status.phase"),
            (json!({"surprise": 1}), "status.surprise"),
            (
                json!({"tasks": {"a": {"phase": "Nope"}}}),
                "status.tasks.a.phase",
            ),
        ] {
            let merged = with_status(stored.clone(), status.clone());
            let errors = admit_status(workflow(), &stored, merged).expect_err("refused");
            assert_eq!(errors.0[0].field, field, "{status}: {errors}");
        }
    }

    #[test]
    fn the_status_is_stored_in_its_canonical_form() {
        let stored = stored_workflow();
        let merged = with_status(stored.clone(), json!({"phase": "Running", "tasks": {}}));
        let whole = (workflow().admit)(merged.clone()).expect("admitted whole");
        let Ok(StatusAdmission::StatusOnly(alone)) = admit_status(workflow(), &stored, merged)
        else {
            panic!("status-only");
        };
        assert_eq!(alone, whole);
    }

    #[test]
    fn a_changed_spec_or_metadata_goes_through_whole_admission() {
        let stored = stored_workflow();
        // An invalid spec that the stored object does not have.
        let mut merged = with_status(stored.clone(), json!({"phase": "Running"}));
        merged["spec"]["tasks"][0]["name"] = json!("Not A Name");
        let errors = admit_status(workflow(), &stored, merged).expect_err("refused");
        assert!(errors.0[0].field.starts_with("spec.tasks[0]"), "{errors}");
        let mut merged = with_status(stored.clone(), json!({"phase": "Running"}));
        merged["metadata"]["labels"] = json!({"a": "b"});
        assert!(matches!(
            admit_status(workflow(), &stored, merged),
            Ok(StatusAdmission::Whole(_))
        ));
    }

    #[test]
    fn other_kinds_are_admitted_whole() {
        let stored = json!({
            "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "t", "namespace": "default"},
            "spec": {"run": {"shell": "true"}},
        });
        let merged = with_status(stored.clone(), json!({"phase": "Running"}));
        let taskrun = by_kind("TaskRun").expect("TaskRun is a kind");
        assert!(matches!(
            admit_status(taskrun, &stored, merged),
            Ok(StatusAdmission::Whole(_))
        ));
    }
}
