//! Workflow: one run of a DAG of tasks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::artifact::{ArtifactsSpec, BlobRef};
use super::common::{LabelSelector, Payload, Placement};
use super::env::{Env, EnvFromSource, SecretFile, SecretUse};
use crate::duration::Duration;
use crate::meta::{Condition, Time};
use crate::resource::{Object, Spec};

/// A Workflow object: one run of a DAG of tasks.
pub type Workflow = Object<WorkflowSpec>;

impl Workflow {
    /// The phase, Pending before the first status write (without copying
    /// the status, as `status_or_default().phase` would).
    pub fn phase(&self) -> WorkflowPhase {
        self.status.as_ref().map(|s| s.phase).unwrap_or_default()
    }
}

/// The tasks of a workflow and how to run them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Parameters and their default values, substituted as `$(params.NAME)`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// The DAG: at least one task, each with a name unique across `tasks` and
    /// `finally`.
    pub tasks: Vec<WorkflowTask>,
    /// Tasks run after the DAG, whatever its outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finally: Vec<WorkflowTask>,
    /// For the whole workflow, from its start; when it runs out, unfinished
    /// TaskRuns are stopped and the workflow fails with reason `TimedOut`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Maximum TaskRuns of this workflow unfinished at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Delete the workflow (and its TaskRuns) this long after it finished;
    /// kept until deleted when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_after_finished: Option<Duration>,
    /// True: when a task fails for good, unfinished TaskRuns are stopped
    /// (reason `FailFast`) and the rest is Skipped; `finally` still runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_fast: bool,
    /// Running, or Cancelled to stop the workflow (`slothctl cancel workflow`).
    #[serde(default)]
    pub state: WorkflowState,
    /// The Stack this run belongs to: one Workflow of a stack runs at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// Values recorded as the stack's outputs when the run succeeds, with
    /// `$(tasks.TASK.results.KEY)` and `$(params.NAME)` substituted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// Secrets every task may read from Lua (`workflow.define("x", {
    /// secrets = {"db"} })`): added to each TaskRun's `spec.secrets`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Check mode for every TaskRun of the workflow (see TaskRunSpec).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check_mode: bool,
    /// The workspace every task starts with (`slothctl apply --workspace`,
    /// Lua `workflow.define("x", { workspace = "." })`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<BlobRef>,
    /// Workflow hooks (sloth-runner's `on_start`, `on_task_start`,
    /// `on_task_complete`, `on_complete`), each run as a hook TaskRun
    /// that is not a task of the workflow (see docs/lua.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<WorkflowHook>,
}

/// One workflow hook: what to run and where.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowHook {
    /// One of [`WORKFLOW_HOOKS`].
    pub name: String,
    /// What the hook runs.
    pub run: Payload,
    /// The agents the hook may run on; any Ready agent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_selector: Option<LabelSelector>,
}

/// The workflow hooks, in the order they run.
pub const WORKFLOW_HOOKS: [&str; 4] = [
    "on_start",
    "on_task_start",
    "on_task_complete",
    "on_complete",
];

/// What the user wants of a workflow (`spec.state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum WorkflowState {
    /// Run it (the default).
    #[default]
    Running,
    /// Stop it: running TaskRuns are stopped, tasks not started are Skipped,
    /// and the workflow ends Cancelled.
    Cancelled,
}

/// One task of a workflow; each attempt of it is a TaskRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowTask {
    /// A DNS label, unique across `tasks` and `finally`; part of the TaskRun
    /// names (`WORKFLOW-TASK-ATTEMPT`).
    pub name: String,
    /// What each attempt runs.
    pub run: Payload,
    /// Tasks that must succeed first (a `$(tasks.T.results.K)` reference adds
    /// `T` implicitly).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// A condition (`A == B`, `A != B`, `true`, `false`, after substitution);
    /// when false the task and its dependents are Skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// The agents the task may run on (by label); any Ready agent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_selector: Option<LabelSelector>,
    /// How the scheduler picks among those agents (LeastLoaded when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// How often and how soon a failed attempt is retried; never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetryPolicy>,
    /// Per attempt; a TaskRun running longer fails with reason `TimedOut`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Environment variables: plain values and Secret references.
    #[serde(default, skip_serializing_if = "Env::is_empty")]
    pub env: Env,
    /// The working directory, relative to the run directory (the run directory
    /// when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Locks (by name, in the workflow's namespace) held while the task runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<String>,
    /// Every key of these Secrets as environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    /// Secrets written as files into the run directory for the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_files: Vec<SecretFile>,
    /// Secrets a Lua payload reads (`secret.get`, the `secrets` global).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Outputs uploaded after success; dependents start with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<ArtifactsSpec>,
}

impl WorkflowTask {
    /// The Secrets this task uses (the workflow's own `spec.secrets` come on top).
    pub fn secret_use(&self) -> SecretUse<'_> {
        SecretUse {
            env: &self.env,
            env_from: &self.env_from,
            secret_files: &self.secret_files,
            secrets: &self.secrets,
        }
    }
}

/// When a failed task gets another attempt.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt: `limit: 2` means at most 3 TaskRuns.
    pub limit: u32,
    /// The wait before each retry; at once when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Which failures are retried (any, by default).
    #[serde(default)]
    pub retry_on: RetryOn,
}

/// The wait before retry N: `duration * factor^(N-1)`, at most `max`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backoff {
    /// The wait before the first retry.
    pub duration: Duration,
    /// The growth per retry, from 1 to 10 (2 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// The longest wait; no cap when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Duration>,
}

/// Which failures of a task are retried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum RetryOn {
    /// Any failure.
    #[default]
    OnFailure,
    /// Only when the agent running the task was lost.
    OnAgentLost,
}

/// Where a workflow is; written by the workflow controller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum WorkflowPhase {
    /// Not started yet (or waiting for its Stack).
    #[default]
    Pending,
    /// Tasks are being run.
    Running,
    /// Every task succeeded or was skipped (final).
    Succeeded,
    /// A task failed for good, or the workflow timed out (final).
    Failed,
    /// Stopped through `spec.state: Cancelled` (final).
    Cancelled,
}

/// Where one task of a workflow is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum TaskPhase {
    /// Not running yet: waiting for its dependencies or a lock, or its
    /// TaskRun is not bound or started yet.
    #[default]
    Pending,
    /// Its TaskRun runs, or an attempt failed and the next one is due
    /// (reason `Backoff` while waiting, then `Retrying`).
    Running,
    /// An attempt succeeded.
    Succeeded,
    /// The last attempt failed and no retry is left.
    Failed,
    /// Not run: `when` was false, an upstream task failed, or the workflow was
    /// cancelled, failed fast or timed out (`reason` says which).
    Skipped,
}

/// How a workflow's run is going; written by the workflow controller,
/// recomputed from the Workflow and its TaskRuns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowStatus {
    /// Where the workflow is.
    #[serde(default)]
    pub phase: WorkflowPhase,
    /// The `Succeeded` condition: its reason says how the run ended or where
    /// it is (`TaskFailed`, `TimedOut`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the workflow controller first took the workflow up; `spec.timeout`
    /// counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the workflow reached a final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Each task's phase, TaskRun and attempt, by task name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tasks: BTreeMap<String, TaskStatus>,
    /// The `metadata.generation` of the spec this status was computed from.
    #[serde(default)]
    pub observed_generation: i64,
}

/// What the workflow knows of one task; the TaskRun holds the rest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskStatus {
    /// Where the task is.
    #[serde(default)]
    pub phase: TaskPhase,
    /// The name of the TaskRun of the latest attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_run: Option<String>,
    /// The latest attempt (1 for the first); 0 before any.
    #[serde(default)]
    pub attempt: u32,
    /// Why the task is where it is, in CamelCase (`WhenFalse`,
    /// `UpstreamFailed`, `WaitingForLock`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl Spec for WorkflowSpec {
    type Status = WorkflowStatus;
    const KIND: &'static str = "Workflow";
}

/// A `$(tasks.TASK.results.KEY)` reference in a task's text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResultRef {
    /// The upstream task's name.
    pub task: String,
    /// The result's key.
    pub key: String,
}

const TASKS_OPEN: &str = "$(tasks.";

/// Every well-formed `$(tasks.TASK.results.KEY)` in `text`, in order.
pub fn result_refs(text: &str) -> Vec<ResultRef> {
    let mut refs = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(TASKS_OPEN) {
        let after = &rest[start + TASKS_OPEN.len()..];
        if let Some(r) = after
            .find(')')
            .and_then(|end| parse_result_ref(&after[..end]))
        {
            refs.push(r);
        }
        rest = after;
    }
    refs
}

/// `TASK.results.KEY` -> its parts.
pub fn parse_result_ref(inner: &str) -> Option<ResultRef> {
    let (task, key) = inner.split_once(".results.")?;
    (!task.is_empty() && !key.is_empty() && !task.contains(' ') && !key.contains(' ')).then(|| {
        ResultRef {
            task: task.to_string(),
            key: key.to_string(),
        }
    })
}

/// Evaluates a `when` condition (after substitution): `A == B` or
/// `A != B` with both sides trimmed, or `true` / `false`. The error says
/// how to write one.
pub fn evaluate_when(condition: &str) -> Result<bool, String> {
    let condition = condition.trim();
    match condition {
        "true" => return Ok(true),
        "false" => return Ok(false),
        _ => {}
    }
    if let Some((left, right)) = condition.split_once("!=") {
        return Ok(left.trim() != right.trim());
    }
    if let Some((left, right)) = condition.split_once("==") {
        return Ok(left.trim() == right.trim());
    }
    Err(format!(
        "cannot read the condition {condition:?}: write `A == B`, `A != B`, `true` or `false`"
    ))
}

/// Every `$(params.NAME)` name in `text`.
pub fn param_refs(text: &str) -> Vec<&str> {
    const OPEN: &str = "$(params.";
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        if let Some(end) = after.find(')') {
            names.push(&after[..end]);
        }
        rest = after;
    }
    names
}

impl WorkflowTask {
    /// The texts in which `$(params.*)` and `$(tasks.*.results.*)` are
    /// substituted, with their field paths: the payload, env values,
    /// workdir and `when`. The script of a Lua workflow file is not among
    /// them: the agent evaluates the file as written.
    pub fn substituted_fields(&self) -> Vec<(String, &str)> {
        let mut texts = Vec::new();
        if let Some(shell) = &self.run.shell {
            texts.push(("run.shell".to_string(), shell.as_str()));
        }
        if let Some(lua) = self.run.lua.as_ref().filter(|l| !l.is_workflow_file()) {
            texts.push(("run.lua.script".to_string(), lua.script.as_str()));
        }
        for (i, arg) in self.run.command.iter().flatten().enumerate() {
            texts.push((format!("run.command[{i}]"), arg.as_str()));
        }
        for (key, value) in self.env.iter() {
            texts.push((format!("env.{key}"), value.as_str()));
        }
        if let Some(workdir) = &self.workdir {
            texts.push(("workdir".to_string(), workdir.as_str()));
        }
        if let Some(when) = &self.when {
            texts.push(("when".to_string(), when.as_str()));
        }
        texts
    }

    /// The texts of [`substituted_fields`](Self::substituted_fields).
    pub fn substituted_texts(&self) -> impl Iterator<Item = &str> {
        self.substituted_fields().into_iter().map(|(_, text)| text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_result_references_and_ignores_shell_substitutions() {
        let refs = result_refs(
            "echo $(date) $(tasks.build.results.version) $(tasks.x) $(tasks.a.results.k)",
        );
        assert_eq!(
            refs,
            [
                ResultRef {
                    task: "build".into(),
                    key: "version".into()
                },
                ResultRef {
                    task: "a".into(),
                    key: "k".into()
                },
            ]
        );
    }

    #[test]
    fn when_compares_trimmed_sides() {
        assert_eq!(evaluate_when("prod == prod"), Ok(true));
        assert_eq!(evaluate_when(" prod==staging "), Ok(false));
        assert_eq!(evaluate_when("a != b"), Ok(true));
        assert_eq!(evaluate_when("a!=a"), Ok(false));
        assert_eq!(evaluate_when("true"), Ok(true));
        assert_eq!(evaluate_when("false"), Ok(false));
        assert!(
            evaluate_when("prod")
                .expect_err("an error")
                .contains("prod")
        );
    }

    #[test]
    fn a_lua_workflow_file_script_is_not_substituted_or_scanned() {
        let task = WorkflowTask {
            name: "build".into(),
            run: Payload {
                shell: None,
                lua: Some(super::super::common::LuaPayload {
                    script: "task('deploy'):command('echo $(tasks.build.results.v)')".into(),
                    entry: Some("ci/build".into()),
                    ..Default::default()
                }),
                command: None,
            },
            ..Default::default()
        };
        assert!(task.substituted_fields().is_empty());
    }

    #[test]
    fn finds_param_references() {
        assert_eq!(
            param_refs("$(params.a) $(date) $(params.b-c)"),
            ["a", "b-c"]
        );
    }
}
