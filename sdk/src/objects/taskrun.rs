//! TaskRun: one attempt of one task, or an ad-hoc command.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::artifact::{ArtifactInput, ArtifactStatus, ArtifactsSpec, BlobRef};
use super::common::{LabelSelector, Payload, Placement};
use super::env::{Env, EnvFromSource, SecretFile, SecretUse};
use crate::duration::Duration;
use crate::meta::{Condition, Time};
use crate::resource::{Object, Spec};

/// A TaskRun object: one run of one payload on one agent.
pub type TaskRun = Object<TaskRunSpec>;

impl TaskRun {
    /// The phase, Pending before the first status write (without copying
    /// the status, as `status_or_default().phase` would).
    pub fn phase(&self) -> TaskRunPhase {
        self.status.as_ref().map(|s| s.phase).unwrap_or_default()
    }
}

/// What to run, where, and with what.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskRunSpec {
    /// What the agent runs.
    pub run: Payload,
    /// The agents the run may be bound to (by label); any Ready agent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_selector: Option<LabelSelector>,
    /// How the scheduler picks among those agents (LeastLoaded when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// The binding: set by the scheduler (or by the user to skip scheduling);
    /// immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    /// How long the run may take; the agent then kills its process group and
    /// the run fails with reason `TimedOut`. No limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Environment variables: plain values and Secret references.
    #[serde(default, skip_serializing_if = "Env::is_empty")]
    pub env: Env,
    /// The working directory, relative to the run directory (the run directory
    /// when absent); absolute only on agents started with `--allow-workdir-root`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// 1 for the first attempt of a workflow task; 0 for ad-hoc runs.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
    /// How long after it finished an ad-hoc TaskRun (one no Workflow owns)
    /// is deleted; overrides `sloth-controllers --taskrun-ttl`. A
    /// Workflow's TaskRuns live as long as their Workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_after_finished: Option<Duration>,
    /// Check mode (dry run): modules that change the machine report what
    /// they would change and change nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check_mode: bool,
    /// Every key of these Secrets as environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    /// Secrets written as files into the run directory for the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_files: Vec<SecretFile>,
    /// Secrets a Lua payload reads (`secret.get`, the `secrets` global).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// The workspace unpacked into the run directory before the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<BlobRef>,
    /// Outputs packed and uploaded after success (`status.artifacts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<ArtifactsSpec>,
    /// Upstream tasks' artifacts unpacked into the run directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<ArtifactInput>,
}

impl TaskRunSpec {
    /// Every blob this run reads: its workspace and its inputs.
    pub fn blobs_read(&self) -> impl Iterator<Item = &str> {
        self.workspace
            .iter()
            .map(|w| w.digest.as_str())
            .chain(self.inputs.iter().map(|i| i.digest.as_str()))
    }

    /// The Secrets this run uses.
    pub fn secret_use(&self) -> SecretUse<'_> {
        SecretUse {
            env: &self.env,
            env_from: &self.env_from,
            secret_files: &self.secret_files,
            secrets: &self.secrets,
        }
    }

    /// A spec that runs `script` with `bash -c`, everything else default
    /// (unbound, no timeout): the fixture tests and benchmarks start from,
    /// e.g. `TaskRunSpec { agent_name: Some(..), ..TaskRunSpec::shell("true") }`.
    pub fn shell(script: impl Into<String>) -> Self {
        Self {
            run: Payload::shell(script),
            ..Self::default()
        }
    }
}

impl Payload {
    /// A payload that runs `script` with `bash -c`.
    pub fn shell(script: impl Into<String>) -> Self {
        Self {
            shell: Some(script.into()),
            ..Self::default()
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Where a TaskRun is in its life: Pending, Scheduled, Running, then
/// Succeeded or Failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum TaskRunPhase {
    /// Not bound to an agent yet.
    #[default]
    Pending,
    /// Bound to an agent (`spec.agentName`), which has not started it yet.
    Scheduled,
    /// The agent has started the payload.
    Running,
    /// The payload exited 0 (final).
    Succeeded,
    /// The payload failed, timed out, was stopped, or its agent was lost
    /// (final; `status.reason` says which).
    Failed,
}

impl TaskRunPhase {
    /// Succeeded and Failed are final: the server refuses any change out of them.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// The wire name (`Pending`, ...), as tables show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Scheduled => "Scheduled",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

/// How the run went; written by the scheduler (binding), the agent (start,
/// end, results) and the controllers (stopping, `AgentLost`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskRunStatus {
    /// Where the run is; Pending before the first status write.
    #[serde(default)]
    pub phase: TaskRunPhase,
    /// Conditions such as `Scheduled`, with the reason of the latest change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The agent the run was bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// When the agent started the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the run reached Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The payload's exit code, once it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// `key=value` results the payload wrote to `$SLOTH_RESULTS` (bounded in
    /// number and size), read downstream as `$(tasks.TASK.results.KEY)`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub results: BTreeMap<String, String>,
    /// The end of the output (at most 64 KiB), for `slothctl describe` after
    /// the agent is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<String>,
    /// Details of the outcome, for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Why the run failed, in CamelCase (`TimedOut`, `AgentLost`,
    /// `Cancelled`); empty on success.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Values a Lua task recorded with the `metrics` module (bounded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// The artifacts uploaded after success, one per declared path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactStatus>,
}

impl Spec for TaskRunSpec {
    type Status = TaskRunStatus;
    const KIND: &'static str = "TaskRun";
}
