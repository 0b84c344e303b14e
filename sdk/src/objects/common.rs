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
    pub script: String,
    /// The function to call; the script's own return value when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
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
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum SelectorOperator {
    #[default]
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// How the scheduler picks among feasible agents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    #[serde(default)]
    pub policy: PlacementPolicy,
}

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
