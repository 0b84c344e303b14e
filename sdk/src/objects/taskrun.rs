//! TaskRun: one attempt of one task, or an ad-hoc command.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::artifact::{ArtifactInput, ArtifactStatus, ArtifactsSpec, BlobRef};
use super::common::{LabelSelector, Payload, Placement};
use super::env::{Env, EnvFromSource, SecretFile, SecretUse};
use crate::duration::Duration;
use crate::meta::{Condition, Time};
use crate::resource::{Object, Spec};

pub type TaskRun = Object<TaskRunSpec>;

impl TaskRun {
    /// The phase, Pending before the first status write (without copying
    /// the status, as `status_or_default().phase` would).
    pub fn phase(&self) -> TaskRunPhase {
        self.status.as_ref().map(|s| s.phase).unwrap_or_default()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskRunSpec {
    pub run: Payload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// The binding: set by the scheduler (or by the user to skip scheduling);
    /// immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Env::is_empty")]
    pub env: Env,
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

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskRunPhase {
    #[default]
    Pending,
    Scheduled,
    Running,
    Succeeded,
    Failed,
}

impl TaskRunPhase {
    /// Succeeded and Failed are final: the server refuses any change out of them.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

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

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskRunStatus {
    #[serde(default)]
    pub phase: TaskRunPhase,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub results: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
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
