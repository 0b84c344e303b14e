//! Agent: one machine that runs TaskRuns (cluster-scoped).

use serde::{Deserialize, Serialize};

use crate::meta::{Condition, Time};
use crate::resource::{Object, Spec};

pub type Agent = Object<AgentSpec>;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentSpec {
    /// host:port the apiserver dials to reach the agent (logs);
    /// `https://host:port` when that port serves TLS.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Maximum concurrent TaskRuns.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// Cordoned: the scheduler binds nothing new here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

fn default_capacity() -> u32 {
    1
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub effect: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum AgentPhase {
    #[default]
    Unknown,
    Ready,
    NotReady,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentStatus {
    #[serde(default)]
    pub phase: AgentPhase,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub running: u32,
    #[serde(default)]
    pub allocatable: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<AgentResources>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<Time>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentResources {
    pub cpu: u32,
    #[serde(default)]
    pub load1: f64,
    #[serde(default)]
    pub memory_bytes: u64,
    #[serde(default)]
    pub memory_available_bytes: u64,
    #[serde(default)]
    pub disk_available_bytes: u64,
}

impl Spec for AgentSpec {
    type Status = AgentStatus;
    const KIND: &'static str = "Agent";
}
