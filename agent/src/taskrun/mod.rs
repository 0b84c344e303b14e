//! One TaskRun's life on this agent: the Running claim (compare-and-swap on
//! the resourceVersion seen), its directory, the run, and the terminal
//! status; and failing the runs an earlier incarnation of this agent left
//! Running (reason AgentRestarted). The parts live in the submodules:
//! status writes (`writes`), directories (`workdir`), preparation and what
//! every payload shares (`run`), process payloads (`process_payload`),
//! Lua payloads (`lua_payload`), and the wording of early stops (`stopped`).

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use sloth_sdk::objects::{LuaPayload, Payload, TaskRun, TaskRunPhase, TaskRunSpec, TaskRunStatus};
use sloth_sdk::{Api, Client};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::concurrency::{ActiveRuns, RunGuard, RunKey, Slots, StopReason};
use crate::fence::Fence;

mod lua_payload;
mod process_payload;
mod run;
mod stopped;
mod workdir;
mod writes;

pub(crate) use writes::fail_orphan;

/// Reasons written into TaskRun statuses.
pub(crate) mod reason {
    pub(crate) const COMPLETED: &str = "Completed";
    pub(crate) const ERROR: &str = "Error";
    pub(crate) const TIMED_OUT: &str = "TimedOut";
    pub(crate) const KILLED: &str = "Killed";
    pub(crate) const AGENT_RESTARTED: &str = "AgentRestarted";
    pub(crate) const UNSUPPORTED: &str = "Unsupported";
    pub(crate) const INVALID_RESULTS: &str = "InvalidResults";
    pub(crate) const LUA_ERROR: &str = "LuaError";
    /// Stopped because the agent could not renew its heartbeat lease in
    /// time (fencing); workflows retry it like `AgentLost`.
    pub(crate) const LEASE_LOST: &str = "LeaseLost";
    /// Stopped because a Lock it held (Lua `lock`) was taken away; the
    /// workflow controller uses the same reason for a task's `locks`.
    pub(crate) const LOCK_LOST: &str = "LockLost";
}

/// Where a run's process group id is recorded, in its run directory.
pub(crate) const PGID_FILE: &str = ".sloth-pgid";

/// What every TaskRun task of this agent shares.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub client: Client,
    pub agent: String,
    pub work_dir: PathBuf,
    /// Removes run directories and caps the output kept.
    pub retention: crate::retention::Retention,
    /// Roots an absolute `spec.workdir` may be under (--allow-workdir-root).
    pub workdir_roots: Vec<PathBuf>,
    pub runs: ActiveRuns,
    pub slots: Arc<Slots>,
    /// Cancelled at shutdown: nothing new is claimed.
    pub draining: CancellationToken,
    /// The deadlines the heartbeat lease grants the payloads.
    pub fence: Fence,
    /// The executable of the runs' supervisors (`sloth-supervise`, or
    /// this agent's own).
    pub supervisor: crate::supervisor::Executable,
    /// Workspaces and artifacts by digest.
    pub blobs: crate::blob_cache::BlobCache,
}

impl Ctx {
    fn api(&self, namespace: &str) -> Api<TaskRunSpec> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

pub(crate) fn key_of(taskrun: &TaskRun) -> RunKey {
    RunKey::new(taskrun.namespace(), taskrun.name())
}

pub(crate) fn phase_of(taskrun: &TaskRun) -> TaskRunPhase {
    taskrun.phase()
}

/// Pending or Scheduled, bound to `agent`, and not being deleted.
pub(crate) fn claimable(taskrun: &TaskRun, agent: &str) -> bool {
    matches!(
        phase_of(taskrun),
        TaskRunPhase::Pending | TaskRunPhase::Scheduled
    ) && taskrun.spec.agent_name.as_deref() == Some(agent)
        && taskrun.metadata.deletion_timestamp.is_none()
}

/// Running here, as far as this copy tells.
pub(crate) fn running_on(taskrun: &TaskRun, agent: &str) -> bool {
    taskrun
        .status
        .as_ref()
        .is_some_and(|s| s.phase == TaskRunPhase::Running && s.agent.as_deref() == Some(agent))
}

/// A TaskRun's hold on this agent: its capacity slot and its registry
/// entry. Dropping it frees both, then tells the dispatcher.
#[derive(Debug)]
pub(crate) struct Held {
    permit: Option<OwnedSemaphorePermit>,
    guard: Option<RunGuard>,
    freed: mpsc::UnboundedSender<()>,
}

impl Held {
    pub(crate) fn new(
        permit: OwnedSemaphorePermit,
        guard: RunGuard,
        freed: mpsc::UnboundedSender<()>,
    ) -> Self {
        Self {
            permit: Some(permit),
            guard: Some(guard),
            freed,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.guard.take();
        self.permit.take();
        let _ = self.freed.send(());
    }
}

/// What a TaskRun runs, as the agent starts it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PayloadKind<'a> {
    Lua(&'a LuaPayload),
    /// A process: `bash -c SCRIPT` for `shell`, the argv itself for
    /// `command`.
    Process(ProcessArgv<'a>),
}

/// The argv source of a process payload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ProcessArgv<'a> {
    Shell(&'a str),
    Command(&'a [String]),
}

impl ProcessArgv<'_> {
    fn argv(self) -> Vec<String> {
        match self {
            Self::Shell(script) => crate::supervised::shell_argv(script),
            Self::Command(argv) => argv.to_vec(),
        }
    }
}

/// The payload to start, or None when the spec has none this agent can
/// run (admission refuses those; the agent is the last line).
pub(crate) fn payload_of(run: &Payload) -> Option<PayloadKind<'_>> {
    match (&run.shell, &run.lua, &run.command) {
        (Some(script), None, None) => Some(PayloadKind::Process(ProcessArgv::Shell(script))),
        (None, Some(lua), None) => Some(PayloadKind::Lua(lua)),
        (None, None, Some(argv)) if !argv.is_empty() => {
            Some(PayloadKind::Process(ProcessArgv::Command(argv)))
        }
        _ => None,
    }
}

/// Runs one TaskRun from its claim to its terminal status.
pub(crate) async fn execute(
    ctx: Arc<Ctx>,
    taskrun: TaskRun,
    held: Held,
    stop: watch::Receiver<Option<StopReason>>,
) {
    let key = key_of(&taskrun);
    let now = Utc::now();
    let first = match payload_of(&taskrun.spec.run) {
        Some(_) => TaskRunStatus {
            phase: TaskRunPhase::Running,
            agent: Some(ctx.agent.clone()),
            start_time: Some(now),
            ..TaskRunStatus::default()
        },
        None => TaskRunStatus {
            phase: TaskRunPhase::Failed,
            agent: Some(ctx.agent.clone()),
            completion_time: Some(now),
            reason: reason::UNSUPPORTED.into(),
            message: UNSUPPORTED_MESSAGE.into(),
            ..TaskRunStatus::default()
        },
    };
    let Some(claimed) = writes::claim(&ctx, taskrun, &first).await else {
        return;
    };
    let Some(payload) = payload_of(&claimed.spec.run) else {
        crate::metrics::global().failed_unstarted();
        tracing::info!(
            "taskrun {key} Failed ({}): {UNSUPPORTED_MESSAGE}",
            reason::UNSUPPORTED
        );
        return;
    };
    tracing::debug!("taskrun {key} claimed");
    let metrics = crate::metrics::global();
    let running = metrics.started();
    let started = std::time::Instant::now();
    let status = run::run_claimed(&ctx, &key, &claimed, payload, stop, now).await;
    metrics.finished(status.phase, started.elapsed());
    drop(running);
    writes::finish(&ctx, &key, claimed, status).await;
    drop(held);
}

/// The status message of a TaskRun without a payload this agent can run.
const UNSUPPORTED_MESSAGE: &str =
    "the TaskRun has no payload (spec.run.shell, spec.run.lua or a non-empty spec.run.command)";

#[cfg(test)]
mod tests {
    use super::*;
    use sloth_sdk::objects::Payload;

    fn taskrun(agent: Option<&str>, phase: TaskRunPhase) -> TaskRun {
        let mut tr = TaskRun::new(
            "t1",
            TaskRunSpec {
                run: Payload {
                    shell: Some("true".into()),
                    lua: None,
                    command: None,
                },
                agent_name: agent.map(str::to_string),
                ..TaskRunSpec::default()
            },
        );
        tr.metadata.namespace = "default".into();
        tr.status = Some(TaskRunStatus {
            phase,
            agent: (phase == TaskRunPhase::Running).then(|| "a1".to_string()),
            ..TaskRunStatus::default()
        });
        tr
    }

    #[test]
    fn only_pending_or_scheduled_runs_bound_here_are_claimable() {
        assert!(claimable(&taskrun(Some("a1"), TaskRunPhase::Pending), "a1"));
        assert!(claimable(
            &taskrun(Some("a1"), TaskRunPhase::Scheduled),
            "a1"
        ));
        assert!(!claimable(
            &taskrun(Some("a2"), TaskRunPhase::Pending),
            "a1"
        ));
        assert!(!claimable(&taskrun(None, TaskRunPhase::Pending), "a1"));
        for phase in [
            TaskRunPhase::Running,
            TaskRunPhase::Succeeded,
            TaskRunPhase::Failed,
        ] {
            assert!(!claimable(&taskrun(Some("a1"), phase), "a1"), "{phase:?}");
        }
        let mut deleting = taskrun(Some("a1"), TaskRunPhase::Pending);
        deleting.metadata.deletion_timestamp = Some(Utc::now());
        assert!(!claimable(&deleting, "a1"));
        assert!(running_on(
            &taskrun(Some("a1"), TaskRunPhase::Running),
            "a1"
        ));
        assert!(!running_on(
            &taskrun(Some("a1"), TaskRunPhase::Running),
            "a2"
        ));
    }
}
