//! Kubernetes-shaped object metadata shared by every kind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A point in time, serialized as RFC 3339.
pub type Time = chrono::DateTime<chrono::Utc>;

/// The API group and version every Sloth object carries.
pub const API_VERSION: &str = "sloth.dev/v1";

/// The namespace used when an object of a namespaced kind names none.
pub const DEFAULT_NAMESPACE: &str = "default";

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Metadata common to all objects, as in Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// The object's name, unique per kind and namespace; fixed at creation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A prefix from which the server makes a unique name when `name` is empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generate_name: String,
    /// The namespace of a namespaced kind ([`DEFAULT_NAMESPACE`] when empty);
    /// empty for cluster-scoped kinds (Agent).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Unique id the server assigns at creation; an object recreated under the
    /// same name gets a new one (owner references compare it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The store's modification revision of this object; a precondition on update.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Bumped by the server whenever `spec` changes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
    /// Labels for selection (`-l key=value`, agent selectors); keys and values
    /// follow the Kubernetes syntax.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form notes for tools and humans (`sloth.dev/applied-by`, ...);
    /// never used for selection.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// When the server stored the object first; set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<Time>,
    /// When a delete was asked for while finalizers remained: the object
    /// is deleting and goes once `finalizers` is empty. Set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<Time>,
    /// Names of the parties that must finish their clean-up before a deleted
    /// object goes; each removes its own entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// The objects that own this one: when they are gone, the garbage
    /// collector deletes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
}

/// Points at the object that owns this one; the garbage collector deletes
/// dependents whose owners are gone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerReference {
    /// The owner's `apiVersion` (`sloth.dev/v1`).
    pub api_version: String,
    /// The owner's kind (`Workflow`, `CronWorkflow`).
    pub kind: String,
    /// The owner's name, in this object's namespace.
    pub name: String,
    /// The owner's `metadata.uid`: an owner recreated under the same name does
    /// not own this object.
    pub uid: String,
    /// True for the one owner that manages this object (the controller that
    /// created it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
}

/// An observation about an object, as in Kubernetes (`type`, `status`, `reason`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// What is observed, in CamelCase (`Ready`, `Scheduled`).
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// Why the status is what it is, in CamelCase (`HeartbeatExpired`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Details for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When `status` last changed (not when the condition was last written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}
