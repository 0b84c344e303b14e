//! Event: something that happened to an object (a task started, a retry,
//! a lost agent), kept for a while ([`crate::events::EVENT_TTL`]) so that
//! `slothctl describe` can show it. Repeats of the same event are counted on
//! one object rather than stored again.

use serde::{Deserialize, Serialize};

use crate::meta::Time;
use crate::resource::{Object, Spec};

/// An Event object: something that happened to another object.
pub type Event = Object<EventSpec>;

/// An event's content; set by the component that reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSpec {
    /// The object this event is about.
    pub involved_object: ObjectReference,
    /// Why, in CamelCase (`Started`, `Retrying`, `AgentLost`).
    pub reason: String,
    /// What happened, for humans.
    pub message: String,
    /// Normal or Warning.
    #[serde(rename = "type", default)]
    pub type_: EventType,
    /// How many times this event happened.
    #[serde(default = "one")]
    pub count: u32,
    /// When the event happened first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_timestamp: Option<Time>,
    /// When the event happened last (the latest of `count` times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<Time>,
    /// The component that reported it (`workflow-controller`, `scheduler`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

fn one() -> u32 {
    1
}

/// Points at an object by kind, namespace, name and (optionally) uid.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectReference {
    /// The object's kind (`Workflow`, `TaskRun`).
    pub kind: String,
    /// Its namespace; empty for a cluster-scoped kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its `metadata.uid` when known: tells a recreated object from the old one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

impl ObjectReference {
    /// A reference to `object` (its kind is `S::KIND`).
    pub fn from_obj<S: Spec>(object: &Object<S>) -> Self {
        Self {
            kind: S::KIND.to_string(),
            namespace: object.metadata.namespace.clone(),
            name: object.metadata.name.clone(),
            uid: object.metadata.uid.clone(),
        }
    }
}

/// Normal events are routine; Warning events deserve a look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum EventType {
    /// Routine (`TaskStarted`, `WorkflowSucceeded`).
    #[default]
    Normal,
    /// Something went wrong or needs attention (`TaskFailed`, `TaskRetrying`,
    /// `MissedSchedule`).
    Warning,
}

impl EventType {
    /// The wire name (`Normal`, `Warning`), as `slothctl describe` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// Events keep all their state in spec; the status is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EventStatus {}

impl Spec for EventSpec {
    type Status = EventStatus;
    const KIND: &'static str = "Event";
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_and_wire_names() {
        let event: Event = serde_json::from_value(json!({
            "apiVersion": "sloth.dev/v1", "kind": "Event",
            "metadata": {"name": "wf.0123456789abcdef", "namespace": "default"},
            "spec": {"involvedObject": {"kind": "Workflow", "name": "wf"},
                     "reason": "Started", "message": "started"}
        }))
        .expect("decode");
        assert_eq!(event.spec.type_, EventType::Normal);
        assert_eq!(event.spec.count, 1);
        assert_eq!(event.spec.involved_object.namespace, "");
        let value = serde_json::to_value(&event.spec).expect("encode");
        assert_eq!(value["type"], "Normal");
        assert_eq!(
            value["involvedObject"],
            json!({"kind": "Workflow", "name": "wf"})
        );
        let bad = serde_json::from_value::<EventSpec>(json!({
            "involvedObject": {"kind": "Workflow", "name": "wf"},
            "reason": "Started", "message": "m", "type": "Fatal"
        }));
        assert!(bad.is_err());
    }
}
