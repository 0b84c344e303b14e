//! Stack: a named deployment environment. The Workflows that name it in
//! `spec.stack` run one at a time; it records their history and the outputs
//! of the latest successful one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::workflow::WorkflowPhase;
use crate::meta::Time;
use crate::resource::{Object, Spec};

/// A Stack object: a deployment environment whose Workflows run one at a time.
pub type Stack = Object<StackSpec>;

/// The reason of a Workflow waiting for its stack's running one.
pub const STACK_BUSY: &str = "StackBusy";
/// The default of `spec.historyLimit`.
pub const DEFAULT_HISTORY_LIMIT: u32 = 20;

/// How much history the Stack keeps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackSpec {
    /// Runs kept in `status.history` (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_limit: Option<u32>,
}

impl StackSpec {
    /// `historyLimit` with its default ([`DEFAULT_HISTORY_LIMIT`]) applied.
    pub fn history_limit(&self) -> usize {
        self.history_limit.unwrap_or(DEFAULT_HISTORY_LIMIT) as usize
    }
}

/// The stack's runs and outputs; written by the workflow controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackStatus {
    /// Runs, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<StackRun>,
    /// The outputs of the latest successful run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// Runs recorded since the Stack was created (history is bounded).
    #[serde(default)]
    pub runs: u64,
    /// The Workflow that holds the stack (running, or about to start): the
    /// workflow controller takes and frees it by compare-and-swap, so two
    /// Workflows of a stack never run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
}

/// One Workflow of the stack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackRun {
    /// The Workflow's name.
    pub workflow: String,
    /// The Workflow's `metadata.uid`: tells a re-applied Workflow of the same
    /// name from the earlier one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The Workflow's phase, as last recorded.
    #[serde(default)]
    pub phase: WorkflowPhase,
    /// When the Workflow started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the Workflow finished; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Who applied the Workflow (its `sloth.dev/applied-by` annotation).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub applied_by: String,
}

impl Spec for StackSpec {
    type Status = StackStatus;
    const KIND: &'static str = "Stack";
}
