//! The generic object envelope: typed (`Object<S>`) and untyped (`DynamicObject`).

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::meta::{API_VERSION, ObjectMeta};

/// The spec type of a kind names the kind and its status type.
pub trait Spec:
    Clone + Debug + Default + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The kind's status type (an empty struct for kinds without status).
    type Status: Clone
        + Debug
        + Default
        + PartialEq
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// The kind's name, as in `kind:` (`Workflow`).
    const KIND: &'static str;
}

/// A typed object: `apiVersion`, `kind`, `metadata`, `spec`, `status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields, bound = "S: Spec")]
#[cfg_attr(
    feature = "schema",
    schemars(bound = "S: schemars::JsonSchema, S::Status: schemars::JsonSchema")
)]
pub struct Object<S: Spec> {
    /// `sloth.dev/v1`.
    pub api_version: String,
    /// The kind, [`Spec::KIND`].
    pub kind: String,
    /// Name, namespace, labels and the fields the server keeps.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the user wants.
    pub spec: S,
    /// What the system observed; absent until a controller or agent writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<S::Status>,
}

impl<S: Spec> Object<S> {
    /// A new object of this kind with the given name and spec.
    pub fn new(name: impl Into<String>, spec: S) -> Self {
        Self {
            api_version: API_VERSION.to_string(),
            kind: S::KIND.to_string(),
            metadata: ObjectMeta {
                name: name.into(),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// `metadata.namespace` (empty for cluster-scoped kinds).
    pub fn namespace(&self) -> &str {
        &self.metadata.namespace
    }

    /// The status, or its default when the server has not written one yet.
    pub fn status_or_default(&self) -> S::Status {
        self.status.clone().unwrap_or_default()
    }
}

/// An object of any kind, with spec and status kept as JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DynamicObject {
    /// `sloth.dev/v1`.
    #[serde(default)]
    pub api_version: String,
    /// The kind (`Workflow`); says how to read `spec` and `status`.
    #[serde(default)]
    pub kind: String,
    /// Name, namespace, labels and the fields the server keeps.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The spec as JSON; null when absent.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub spec: serde_json::Value,
    /// The status as JSON; null when absent.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub status: serde_json::Value,
}

impl DynamicObject {
    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn key(&self) -> String {
        if self.metadata.namespace.is_empty() {
            self.metadata.name.clone()
        } else {
            format!("{}/{}", self.metadata.namespace, self.metadata.name)
        }
    }
}
