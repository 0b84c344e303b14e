//! Pieces of spec shared by Workflow tasks and TaskRuns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a task runs: exactly one of `shell`, `lua` or `command`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Payload {
    /// A script run with `bash -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// A Lua payload: a script, or a task of a Lua workflow file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lua: Option<LuaPayload>,
    /// A program and its arguments, executed directly: no shell parses
    /// them, so nothing is expanded or split (and no shell is started,
    /// which is the cheapest payload to launch). The program is looked up
    /// in the agent's `PATH` unless it contains a `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

/// Lua code run on the agent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LuaPayload {
    /// The Lua source.
    pub script: String,
    /// The function to call; the script's own return value when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// Values passed to the entry function as its `params` argument.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
    /// The results of the upstream tasks, by task name: the function's
    /// `input` argument. Filled in by the workflow controller.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub input: BTreeMap<String, BTreeMap<String, String>>,
    /// Lua files beside the workflow file that it `require`s or `import`s,
    /// by path relative to it (`helpers.lua`, `lib/init.lua`): bundled by
    /// slothctl so the agent evaluates the same code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub modules: BTreeMap<String, String>,
}

impl LuaPayload {
    /// A task of a Lua workflow file: `entry` is `WORKFLOW/TASK` and the
    /// script is the whole file, evaluated again on the agent.
    pub fn is_workflow_file(&self) -> bool {
        self.entry.as_deref().is_some_and(|e| e.contains('/'))
    }
}

/// Selects agents by their labels, as a Kubernetes label selector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels an agent must have, with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Further requirements, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One requirement of a [`LabelSelector`]: `key` `operator` `values`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// The label key the requirement is about.
    pub key: String,
    /// How the label's value is compared with `values`.
    pub operator: SelectorOperator,
    /// The values for `In` and `NotIn`; empty for `Exists` and `DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// The comparison of a [`LabelSelectorRequirement`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum SelectorOperator {
    /// The label is set to one of `values`.
    #[default]
    In,
    /// The label is absent, or set to none of `values`.
    NotIn,
    /// The label is set, to any value.
    Exists,
    /// The label is not set.
    DoesNotExist,
}

/// How the scheduler picks among feasible agents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// The policy; LeastLoaded when absent.
    #[serde(default)]
    pub policy: PlacementPolicy,
}

/// The scheduler's choice among the agents a task may run on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum PlacementPolicy {
    /// The agent with the lowest running/capacity ratio.
    #[default]
    LeastLoaded,
    /// Agents in turn, per selector.
    RoundRobin,
    /// Away from agents already running this workflow's tasks.
    Spread,
}
