//! Validation of Events: reason, message and the object they are about.

use super::common::too_large;
use super::metadata::validate_envelope;
use super::names::shown;
use super::{FieldErrors, Validate};
use crate::objects::EventSpec;
use crate::resource::Object;

/// Largest `spec.message` of an Event.
const MAX_EVENT_MESSAGE_BYTES: usize = 4 * 1024;
/// Longest `spec.reason` of an Event.
const MAX_EVENT_REASON_LEN: usize = 128;

impl Validate for EventSpec {
    fn validate(object: &Object<Self>) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        validate_envelope(object, &mut errs);
        let spec = &object.spec;
        let involved = &spec.involved_object;
        if involved.kind.is_empty() {
            errs.push("spec.involvedObject.kind", "must not be empty");
        }
        if involved.name.is_empty() {
            errs.push("spec.involvedObject.name", "must not be empty");
        }
        if spec.reason.is_empty() {
            errs.push("spec.reason", "must not be empty");
        } else if !spec.reason.starts_with(|c: char| c.is_ascii_uppercase())
            || !spec.reason.chars().all(|c| c.is_ascii_alphanumeric())
            || spec.reason.len() > MAX_EVENT_REASON_LEN
        {
            errs.push(
                "spec.reason",
                format!(
                    "invalid value {}: must be CamelCase: an uppercase letter, then letters \
                     and digits only, at most {MAX_EVENT_REASON_LEN} characters (e.g. TaskStarted)",
                    shown(&spec.reason)
                ),
            );
        }
        if spec.message.len() > MAX_EVENT_MESSAGE_BYTES {
            errs.push(
                "spec.message",
                too_large(spec.message.len(), MAX_EVENT_MESSAGE_BYTES),
            );
        }
        if spec.count == 0 {
            errs.push("spec.count", "must be at least 1");
        }
        errs.into_result()
    }
}

#[cfg(test)]
mod tests {

    use crate::objects::EventSpec;
    use crate::resource::Object;
    use crate::validation::Validate;
    use crate::validation::testing::*;

    // ---- Event ----

    fn event(reason: &str, message: &str) -> Object<EventSpec> {
        let mut o = Object::new(
            "wf1.0123456789abcdef",
            EventSpec {
                involved_object: crate::objects::ObjectReference {
                    kind: "Workflow".into(),
                    namespace: "default".into(),
                    name: "wf1".into(),
                    uid: String::new(),
                },
                reason: reason.into(),
                message: message.into(),
                count: 1,
                ..EventSpec::default()
            },
        );
        o.metadata.namespace = "default".into();
        o
    }

    #[test]
    fn event_valid_is_accepted() {
        assert_eq!(
            fields(EventSpec::validate(&event("TaskStarted", "task a started"))),
            Vec::<String>::new()
        );
        assert_eq!(
            fields(EventSpec::validate(&event("Retry2", &"x".repeat(4096)))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn event_reason_must_be_camel_case() {
        for bad in ["", "started", "Task Started", "Task-Started", "Été"] {
            assert_eq!(
                fields(EventSpec::validate(&event(bad, "m"))),
                ["spec.reason"],
                "{bad:?}"
            );
        }
        assert!(only_error(&event("task_started", "m")).contains("CamelCase"));
    }

    #[test]
    fn event_message_is_capped_and_involved_object_named() {
        let e = only_error(&event("Big", &"x".repeat(4097)));
        assert!(
            e.starts_with("spec.message: is too large: 4097 bytes, the limit is 4096"),
            "{e}"
        );
        let mut o = event("Started", "m");
        o.spec.involved_object.kind.clear();
        o.spec.involved_object.name.clear();
        o.spec.count = 0;
        assert_eq!(
            fields(EventSpec::validate(&o)),
            [
                "spec.involvedObject.kind",
                "spec.involvedObject.name",
                "spec.count"
            ]
        );
    }
}
