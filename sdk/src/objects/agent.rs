//! Agent: one machine that runs TaskRuns (cluster-scoped).

use serde::{Deserialize, Serialize};

use crate::meta::{Condition, Time};
use crate::resource::{Object, Spec};

/// An Agent object: a machine that registered to run TaskRuns.
pub type Agent = Object<AgentSpec>;

/// What an agent offers; the agent writes it when it registers, and users
/// change `unschedulable` (cordon) and `taints`.
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
    /// Taints of the agent, as in Kubernetes. Validated and stored; the
    /// scheduler does not act on them yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

fn default_capacity() -> u32 {
    1
}

/// A mark on an agent (`key=value:effect`), as a Kubernetes node taint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    /// The taint's key, with label key syntax.
    pub key: String,
    /// The taint's value, with label value syntax; may be empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// What the taint does (`NoSchedule`, ...); free-form.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub effect: String,
}

/// Whether an agent can take work, from its heartbeat Lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum AgentPhase {
    /// No status written yet.
    #[default]
    Unknown,
    /// Heartbeating: the scheduler may bind TaskRuns to it.
    Ready,
    /// No live heartbeat (the lease ran out, was released at shutdown, or
    /// was never taken): nothing new is bound to it, and its unfinished
    /// TaskRuns fail with `AgentLost` after a grace period.
    NotReady,
}

/// What the agent reports of itself (with every heartbeat) and what the
/// agent-lifecycle controller concludes from its lease.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentStatus {
    /// Ready or NotReady; written by the agent and the agent-lifecycle controller.
    #[serde(default)]
    pub phase: AgentPhase,
    /// The `Ready` condition, with the reason of the latest change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// TaskRuns running on the agent now.
    #[serde(default)]
    pub running: u32,
    /// Free slots: `spec.capacity` minus `running`.
    #[serde(default)]
    pub allocatable: u32,
    /// The machine's CPUs, load, memory and disk, as the agent last measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<AgentResources>,
    /// The `sloth-agent` version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The agent's latest heartbeat (`LAST HEARTBEAT` in `slothctl get agents`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<Time>,
}

/// The machine resources an agent reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentResources {
    /// Logical CPUs.
    pub cpu: u32,
    /// The one-minute load average (`/proc/loadavg`).
    #[serde(default)]
    pub load1: f64,
    /// Total memory, in bytes.
    #[serde(default)]
    pub memory_bytes: u64,
    /// Memory available to new processes, in bytes.
    #[serde(default)]
    pub memory_available_bytes: u64,
    /// Free space of the agent's work directory's filesystem, in bytes.
    #[serde(default)]
    pub disk_available_bytes: u64,
}

impl Spec for AgentSpec {
    type Status = AgentStatus;
    const KIND: &'static str = "Agent";
}
