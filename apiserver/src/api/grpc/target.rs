//! The object a write names, as admission reads it.

use serde_json::Value;
use sloth_proto::v1 as pb;

use crate::access::agent_writes;
use crate::access::auth::policy::{Attributes, Verb};

/// Kind, namespace and name of the object a write carries, read from its
/// JSON the way admission reads them (the envelope's kind when the JSON
/// has none; the default namespace for namespaced kinds).
#[derive(Debug, Default)]
pub(super) struct Target {
    pub(super) kind: String,
    pub(super) namespace: String,
    pub(super) name: String,
}

impl Target {
    pub(super) fn of(object: &pb::Object) -> Self {
        // The same parse the write makes (duplicate keys resolve the same
        // way), so authorization judges exactly the object that would be
        // stored.
        let Ok(value) = crate::registry::objects::parse_request(&object.json) else {
            // Undecodable: the write fails before it stores anything.
            return Self::named(&object.kind, &object.namespace, &object.name);
        };
        let body_kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = if body_kind.is_empty() {
            object.kind.as_str()
        } else {
            body_kind
        };
        Self::named(
            kind,
            crate::registry::objects::meta_str(&value, "namespace"),
            crate::registry::objects::meta_str(&value, "name"),
        )
    }

    pub(super) fn named(kind: &str, namespace: &str, name: &str) -> Self {
        match sloth_sdk::kinds::lookup(kind) {
            Some(info) => Self {
                kind: info.kind.to_string(),
                namespace: crate::registry::objects::effective_namespace(info, namespace),
                name: name.to_string(),
            },
            None => Self {
                kind: kind.to_string(),
                namespace: namespace.to_string(),
                name: name.to_string(),
            },
        }
    }

    pub(super) fn write<'a>(
        &'a self,
        verb: Verb,
        requested: Option<&'a Value>,
    ) -> agent_writes::Write<'a> {
        agent_writes::Write {
            verb,
            kind: &self.kind,
            namespace: &self.namespace,
            name: &self.name,
            requested,
        }
    }

    pub(super) fn attributes<'a>(&'a self, verb: Verb, field_selector: &'a str) -> Attributes<'a> {
        Attributes {
            verb,
            kind: &self.kind,
            namespace: &self.namespace,
            name: &self.name,
            field_selector,
        }
    }
}
