//! One TaskRun's life on this agent: the Running claim (compare-and-swap on
//! the resourceVersion seen), its directory, the run, and the terminal
//! status; and failing the runs an earlier incarnation of this agent left
//! Running (reason AgentRestarted).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sloth_sdk::backoff::Backoff;
use sloth_sdk::objects::{TaskRun, TaskRunPhase, TaskRunSpec, TaskRunStatus};
use sloth_sdk::validation::limits::MAX_LOG_TAIL_BYTES;
use sloth_sdk::{Api, Client, Error, Time};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::concurrency::{ActiveRuns, RunGuard, RunKey, Slots, StopReason};
use crate::executor::{self, Outcome, ShellJob};
use crate::fence::Fence;
use crate::logs;
use crate::lua::{self, LuaJob, LuaOutcome};
use crate::results::{self, RESULTS_ENV, RESULTS_FILE};
use crate::secrets;
use crate::supervisor::Supervision;

/// Reasons written into TaskRun statuses.
pub mod reason {
    pub const COMPLETED: &str = "Completed";
    pub const ERROR: &str = "Error";
    pub const TIMED_OUT: &str = "TimedOut";
    pub const KILLED: &str = "Killed";
    pub const AGENT_RESTARTED: &str = "AgentRestarted";
    pub const UNSUPPORTED: &str = "Unsupported";
    pub const INVALID_RESULTS: &str = "InvalidResults";
    pub const LUA_ERROR: &str = "LuaError";
    /// Stopped because the agent could not renew its heartbeat lease in
    /// time (fencing); workflows retry it like `AgentLost`.
    pub const LEASE_LOST: &str = "LeaseLost";
    /// Stopped because a Lock it held (Lua `lock`) was taken away; the
    /// workflow controller uses the same reason for a task's `locks`.
    pub const LOCK_LOST: &str = "LockLost";
}

/// Where a run's process group id is recorded, in its run directory.
pub const PGID_FILE: &str = ".sloth-pgid";

/// What every TaskRun task of this agent shares.
#[derive(Debug)]
pub struct Ctx {
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
    /// The executable of the runs' supervisors (this agent's own).
    pub supervisor: PathBuf,
    /// Workspaces and artifacts by digest.
    pub blobs: crate::blob_cache::BlobCache,
}

impl Ctx {
    fn api(&self, namespace: &str) -> Api<TaskRunSpec> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

pub fn key_of(taskrun: &TaskRun) -> RunKey {
    RunKey::new(taskrun.namespace(), taskrun.name())
}

pub fn phase_of(taskrun: &TaskRun) -> TaskRunPhase {
    taskrun.phase()
}

/// Pending or Scheduled, bound to `agent`, and not being deleted.
pub fn claimable(taskrun: &TaskRun, agent: &str) -> bool {
    matches!(
        phase_of(taskrun),
        TaskRunPhase::Pending | TaskRunPhase::Scheduled
    ) && taskrun.spec.agent_name.as_deref() == Some(agent)
        && taskrun.metadata.deletion_timestamp.is_none()
}

/// Running here, as far as this copy tells.
pub fn running_on(taskrun: &TaskRun, agent: &str) -> bool {
    taskrun
        .status
        .as_ref()
        .is_some_and(|s| s.phase == TaskRunPhase::Running && s.agent.as_deref() == Some(agent))
}

/// The pauses between retries of a failed call: 100ms doubling up to 5s.
const CALL_BACKOFF: Backoff = Backoff::fixed(Duration::from_millis(100), Duration::from_secs(5));

/// A TaskRun's hold on this agent: its capacity slot and its registry
/// entry. Dropping it frees both, then tells the dispatcher.
#[derive(Debug)]
pub struct Held {
    permit: Option<OwnedSemaphorePermit>,
    guard: Option<RunGuard>,
    freed: mpsc::UnboundedSender<()>,
}

impl Held {
    pub fn new(
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

/// Status with the conditions of `current` kept, and those the run itself
/// reports (a Lua hook's `HookFailed`) added or replaced.
fn with_conditions(current: &TaskRun, status: &TaskRunStatus) -> TaskRunStatus {
    let mut conditions: Vec<_> = current
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    for own in &status.conditions {
        conditions.retain(|c| c.type_ != own.type_);
        conditions.push(own.clone());
    }
    TaskRunStatus {
        conditions,
        ..status.clone()
    }
}

/// Runs one TaskRun from its claim to its terminal status.
pub async fn execute(
    ctx: Arc<Ctx>,
    taskrun: TaskRun,
    held: Held,
    stop: watch::Receiver<Option<StopReason>>,
) {
    let key = key_of(&taskrun);
    let now = Utc::now();
    let unsupported = match (&taskrun.spec.run.shell, &taskrun.spec.run.lua) {
        (Some(_), _) | (None, Some(_)) => None,
        (None, None) => {
            Some("the TaskRun has no payload (spec.run.shell or spec.run.lua)".to_string())
        }
    };
    let first = match &unsupported {
        None => TaskRunStatus {
            phase: TaskRunPhase::Running,
            agent: Some(ctx.agent.clone()),
            start_time: Some(now),
            ..TaskRunStatus::default()
        },
        Some(message) => TaskRunStatus {
            phase: TaskRunPhase::Failed,
            agent: Some(ctx.agent.clone()),
            completion_time: Some(now),
            reason: reason::UNSUPPORTED.into(),
            message: message.clone(),
            ..TaskRunStatus::default()
        },
    };
    let Some(claimed) = claim(&ctx, taskrun, &first).await else {
        return;
    };
    if let Some(message) = unsupported {
        crate::metrics::global().failed_unstarted();
        tracing::info!("taskrun {key} Failed ({}): {message}", reason::UNSUPPORTED);
        return;
    }
    tracing::debug!("taskrun {key} claimed");
    let metrics = crate::metrics::global();
    let running = metrics.started();
    let started = std::time::Instant::now();
    let status = run_claimed(&ctx, &key, &claimed, stop, now).await;
    metrics.finished(status.phase, started.elapsed());
    drop(running);
    finish(&ctx, &key, claimed, status).await;
    drop(held);
}

/// Writes `status` (Running, or an immediate failure) by compare-and-swap
/// from the copy seen; re-reads on a conflict. Returns the TaskRun as
/// written, or None when someone else has it (or it is gone).
async fn claim(ctx: &Ctx, taskrun: TaskRun, status: &TaskRunStatus) -> Option<TaskRun> {
    let key = key_of(&taskrun);
    let api = ctx.api(&key.namespace);
    let mut current = taskrun;
    let mut backoff = CALL_BACKOFF.retries();
    loop {
        if ctx.draining.is_cancelled() {
            return None;
        }
        if !claimable(&current, &ctx.agent) {
            // A write whose answer was lost may still have landed: the times
            // written are ours to the nanosecond.
            let ours = current.status.as_ref().is_some_and(|s| {
                s.phase == status.phase
                    && s.agent == status.agent
                    && s.start_time == status.start_time
                    && s.completion_time == status.completion_time
            });
            return ours.then_some(current);
        }
        let mut next = current.clone();
        next.status = Some(with_conditions(&current, status));
        match api.update_status(&next).await {
            Ok(won) => return Some(won),
            Err(Error::Conflict(_)) => match api.get(&key.name).await {
                // Deleted and created again under the same name: the new
                // TaskRun comes through the watch on its own.
                Ok(fresh) if fresh.metadata.uid != current.metadata.uid => return None,
                Ok(fresh) => current = fresh,
                Err(Error::NotFound(_)) => return None,
                Err(e) => {
                    tracing::warn!("cannot read taskrun {key} again: {e}");
                    backoff.wait().await;
                }
            },
            Err(Error::NotFound(_)) => return None,
            Err(e) if e.is_transient() => {
                tracing::warn!("cannot claim taskrun {key} (will retry): {e}");
                backoff.wait().await;
            }
            Err(e) => {
                tracing::error!("cannot claim taskrun {key}: {e}");
                return None;
            }
        }
    }
}

/// The directory the script runs in: the run directory, or `spec.workdir`
/// inside it; an absolute workdir only under a root the agent allows
/// (--allow-workdir-root). Admission refuses `..`; it is checked here
/// again, as the agent is the last line.
fn cwd_for(run_dir: &Path, workdir: Option<&str>, roots: &[PathBuf]) -> Result<PathBuf, String> {
    let Some(w) = workdir.filter(|w| !w.is_empty()) else {
        return Ok(run_dir.to_path_buf());
    };
    let path = Path::new(w);
    if path
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(format!("workdir {w:?} must not contain `..`"));
    }
    if !path.is_absolute() {
        return Ok(run_dir.join(path));
    }
    if roots.iter().any(|root| path.starts_with(root)) {
        return Ok(path.to_path_buf());
    }
    Err(format!(
        "workdir {w:?} is outside the TaskRun's run directory: this agent allows absolute \
         workdirs only under {} (sloth-agent --allow-workdir-root DIR)",
        if roots.is_empty() {
            "no root".to_string()
        } else {
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    ))
}

/// A fresh run directory (an earlier TaskRun of the same name may have left
/// one) and the working directory.
async fn prepare(run_dir: &Path, cwd: &Path) -> Result<(), String> {
    match tokio::fs::remove_dir_all(run_dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(format!(
                "cannot clear the run directory {}: {e}",
                run_dir.display()
            ));
        }
    }
    for dir in [run_dir, cwd] {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("cannot create the directory {}: {e}", dir.display()))?;
    }
    Ok(())
}

fn stop_message(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Deleted => "the TaskRun was deleted while it ran",
        StopReason::Finalized => "the TaskRun was finished elsewhere while it ran",
        StopReason::Shutdown => "the agent shut down while it ran",
        StopReason::LeaseLost => {
            "the agent could not renew its heartbeat lease in time, so it stopped its \
             payloads before the lease ran out (fencing)"
        }
        StopReason::LockLost => {
            "a lock it held (Lua lock module) was deleted, taken over or ran out, so it \
             was stopped: mutual exclusion no longer held"
        }
    }
}

/// The reason a run stopped for `why` is recorded with.
fn stop_reason(why: StopReason) -> &'static str {
    match why {
        StopReason::LeaseLost => reason::LEASE_LOST,
        StopReason::LockLost => reason::LOCK_LOST,
        _ => reason::KILLED,
    }
}

/// Prepares and runs a claimed TaskRun; returns its terminal status.
async fn run_claimed(
    ctx: &Ctx,
    key: &RunKey,
    taskrun: &TaskRun,
    stop: watch::Receiver<Option<StopReason>>,
    start: Time,
) -> TaskRunStatus {
    let spec = &taskrun.spec;
    let run_dir = logs::run_dir(&ctx.work_dir, key);
    let output = run_dir.join(logs::OUTPUT_FILE);
    let cwd = cwd_for(&run_dir, spec.workdir.as_deref(), &ctx.workdir_roots);
    let base = TaskRunStatus {
        phase: TaskRunPhase::Failed,
        agent: Some(ctx.agent.clone()),
        start_time: taskrun
            .status
            .as_ref()
            .and_then(|s| s.start_time)
            .or(Some(start)),
        ..TaskRunStatus::default()
    };
    let failed = |reason: &str, message: String| TaskRunStatus {
        reason: reason.into(),
        message,
        completion_time: Some(Utc::now()),
        ..base.clone()
    };
    let cwd = match cwd {
        Ok(cwd) => cwd,
        Err(message) => return failed(reason::ERROR, message),
    };
    if let Err(message) = prepare(&run_dir, &cwd).await {
        return failed(reason::ERROR, message);
    }
    if let Some(why) = *stop.borrow() {
        return failed(
            stop_reason(why),
            format!("{}; it was not started", stop_message(why)),
        );
    }
    if !ctx.fence.holds() {
        return failed(
            reason::LEASE_LOST,
            "the agent's heartbeat lease was not current when the run was to start; \
             it was not started"
                .into(),
        );
    }
    // Secrets are read before anything runs: a missing one fails the run
    // with a reason naming it.
    let delivery = match deliver(ctx, key, spec).await {
        Ok(delivery) => delivery,
        Err(refused) => return failed(refused.reason, refused.message),
    };
    let secret_files = match secrets::write_files(&run_dir, spec, &delivery.secrets) {
        Ok(files) => files,
        Err(refused) => return failed(refused.reason, refused.message),
    };
    if let Err(f) =
        crate::artifacts::materialize(&ctx.client, &ctx.blobs, key, spec, &run_dir, &cwd).await
    {
        secrets::remove_files(&secret_files);
        return failed(f.reason, f.message);
    }
    let masks = delivery.masks.clone();
    let status = run_payload(
        ctx,
        key,
        spec,
        &run_dir,
        cwd.clone(),
        output,
        delivery,
        stop,
        base,
    )
    .await;
    secrets::remove_files(&secret_files);
    let status = with_artifacts(ctx, key, spec, &cwd, status).await;
    mask_status(&masks, status)
}

/// After a success: the declared artifacts uploaded and listed in the
/// status, or the run failed when one cannot be.
async fn with_artifacts(
    ctx: &Ctx,
    key: &RunKey,
    spec: &TaskRunSpec,
    cwd: &Path,
    status: TaskRunStatus,
) -> TaskRunStatus {
    if status.phase != TaskRunPhase::Succeeded || spec.artifacts.is_none() {
        return status;
    }
    match crate::artifacts::upload(&ctx.client, &ctx.blobs, key, spec, cwd).await {
        Ok(artifacts) => TaskRunStatus {
            artifacts,
            ..status
        },
        Err(f) => TaskRunStatus {
            phase: TaskRunPhase::Failed,
            reason: f.reason.into(),
            message: f.message,
            ..status
        },
    }
}

/// The Secrets of a run, when it references any (none: nothing is read).
async fn deliver(
    ctx: &Ctx,
    key: &RunKey,
    spec: &TaskRunSpec,
) -> Result<secrets::Delivery, secrets::Undeliverable> {
    if spec.secret_use().names().is_empty() {
        return Ok(secrets::Delivery::default());
    }
    let fetched = secrets::fetch(&ctx.client, &key.namespace, spec).await?;
    secrets::resolve(spec, fetched)
}

/// `status` with every delivered value hidden (message, results, log tail).
fn mask_status(masks: &crate::masking::Masks, status: TaskRunStatus) -> TaskRunStatus {
    if masks.is_empty() {
        return status;
    }
    TaskRunStatus {
        message: masks.text(&status.message),
        results: masks.map(status.results),
        log_tail: status.log_tail.map(|t| masks.text(&t)),
        ..status
    }
}

/// Runs the payload (shell or Lua) of a prepared run.
#[allow(clippy::too_many_arguments)]
async fn run_payload(
    ctx: &Ctx,
    key: &RunKey,
    spec: &TaskRunSpec,
    run_dir: &Path,
    cwd: PathBuf,
    output: PathBuf,
    delivery: secrets::Delivery,
    stop: watch::Receiver<Option<StopReason>>,
    base: TaskRunStatus,
) -> TaskRunStatus {
    // The script may `cd` anywhere: give it an absolute path.
    let results_file = std::path::absolute(run_dir)
        .unwrap_or_else(|_| run_dir.to_path_buf())
        .join(RESULTS_FILE);
    let mut env: Vec<(String, String)> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend(delivery.env);
    env.extend([
        ("SLOTH_TASKRUN".to_string(), key.name.clone()),
        ("SLOTH_NAMESPACE".to_string(), key.namespace.clone()),
        ("SLOTH_AGENT".to_string(), ctx.agent.clone()),
        (
            RESULTS_ENV.to_string(),
            results_file.to_string_lossy().into_owned(),
        ),
    ]);
    let check_mode = spec.check_mode || check_mode_env();
    if check_mode {
        // Shell payloads and programs see it too.
        env.push((CHECK_MODE_ENV.to_string(), "1".to_string()));
    }
    if let (None, Some(payload)) = (&spec.run.shell, &spec.run.lua) {
        let metrics = lua::MetricsSink::default();
        let hooks = lua::HookSink::default();
        let job = LuaJob {
            payload: payload.clone(),
            namespace: key.namespace.clone(),
            taskrun: key.name.clone(),
            agent: ctx.agent.clone(),
            attempt: spec.attempt,
            cwd: std::path::absolute(&cwd).unwrap_or(cwd),
            output: output.clone(),
            pid_file: Some(run_dir.join(PGID_FILE)),
            env,
            timeout: spec.timeout.map(|t| t.as_std()).filter(|t| !t.is_zero()),
            client: Some(ctx.client.clone()),
            supervision: Supervision {
                program: ctx.supervisor.clone(),
                deadlines: ctx.fence.subscribe(),
            },
            secrets: delivery.secrets,
            masks: delivery.masks,
            check_mode,
            metrics: metrics.clone(),
            hook_failures: hooks.clone(),
        };
        let (running, concurrent) = ctx.slots.process_started();
        tracing::info!("taskrun {key} started (Lua) concurrent={concurrent}");
        let outcome = lua::run(job, stop).await;
        drop(running);
        let log_tail = read_log_tail(key, &output).await;
        let mut status = TaskRunStatus {
            completion_time: Some(Utc::now()),
            log_tail,
            metrics: metrics.values(),
            ..lua_status(outcome, spec.timeout.unwrap_or_default(), base)
        };
        let failed_hooks = hooks.values();
        if !failed_hooks.is_empty() {
            status.conditions.push(sloth_sdk::Condition {
                type_: lua::HOOK_FAILED.into(),
                status: "True".into(),
                reason: lua::HOOK_FAILED.into(),
                message: failed_hooks.join("; "),
                last_transition_time: Some(Utc::now()),
            });
        }
        return status;
    }
    let job = ShellJob {
        script: spec.run.shell.clone().unwrap_or_default(),
        cwd,
        env,
        output: output.clone(),
        pid_file: run_dir.join(PGID_FILE),
        timeout: spec.timeout.map(|t| t.as_std()).filter(|t| !t.is_zero()),
        supervisor: ctx.supervisor.clone(),
        masks: delivery.masks,
    };
    let slots = ctx.slots.clone();
    let outcome = executor::run(&job, stop, ctx.fence.subscribe(), |pid| {
        let (guard, concurrent) = slots.process_started();
        tracing::info!("taskrun {key} started pid={pid} concurrent={concurrent}");
        guard
    })
    .await;
    let completion = Utc::now();
    let log_tail = read_log_tail(key, &output).await;
    let exited = matches!(outcome, Outcome::Exited(_));
    let parsed = match outcome {
        Outcome::NotStarted(_) => Ok(None),
        _ => results::read(&results_file).await,
    };
    let (mut phase, mut why, exit_code, mut message) = match outcome {
        Outcome::Exited(status) if status.success() => (
            TaskRunPhase::Succeeded,
            reason::COMPLETED,
            Some(0),
            executor::describe(status),
        ),
        Outcome::Exited(status) => (
            TaskRunPhase::Failed,
            reason::ERROR,
            Some(executor::exit_code(status)),
            executor::describe(status),
        ),
        Outcome::TimedOut { status, .. } => (
            TaskRunPhase::Failed,
            reason::TIMED_OUT,
            Some(executor::exit_code(status)),
            format!(
                "timed out after {}; its process group was killed ({})",
                spec.timeout.unwrap_or_default(),
                executor::describe(status)
            ),
        ),
        Outcome::Stopped {
            reason: stop,
            status,
        } => (
            TaskRunPhase::Failed,
            stop_reason(stop),
            Some(executor::exit_code(status)),
            format!(
                "{}; its process group was killed ({})",
                stop_message(stop),
                executor::describe(status)
            ),
        ),
        Outcome::NotStarted(message) => (TaskRunPhase::Failed, reason::ERROR, None, message),
    };
    let results = match parsed {
        Ok(results) => results.unwrap_or_default(),
        // The process ran to its end: its results are part of its outcome.
        Err(invalid) if exited => {
            phase = TaskRunPhase::Failed;
            why = reason::INVALID_RESULTS;
            message = format!("invalid ${RESULTS_ENV} file: {invalid} (the process {message})");
            Default::default()
        }
        // Killed or timed out: that stays the reason.
        Err(invalid) => {
            message = format!("{message}; ${RESULTS_ENV} ignored: {invalid}");
            Default::default()
        }
    };
    TaskRunStatus {
        phase,
        reason: why.into(),
        message,
        exit_code,
        completion_time: Some(completion),
        log_tail,
        results,
        ..base
    }
}

/// The last bytes of a run's output, for `status.logTail`.
async fn read_log_tail(key: &RunKey, output: &Path) -> Option<String> {
    match logs::read_tail(output, MAX_LOG_TAIL_BYTES).await {
        Ok(tail) => Some(tail).filter(|t| !t.is_empty()),
        Err(e) => {
            tracing::warn!("cannot read the output of taskrun {key}: {e}");
            None
        }
    }
}

/// The terminal status of a Lua run (phase, reason, message, results) on
/// top of `base`.
/// The agent's environment variable that puts every run in check mode.
pub const CHECK_MODE_ENV: &str = "SLOTH_CHECK_MODE";

/// True when the agent runs with SLOTH_CHECK_MODE set to 1, true or yes.
fn check_mode_env() -> bool {
    std::env::var(CHECK_MODE_ENV).is_ok_and(|v| check_mode_on(&v))
}

/// SLOTH_CHECK_MODE's values that turn check mode on.
fn check_mode_on(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes"
    )
}

fn lua_status(
    outcome: LuaOutcome,
    timeout: sloth_sdk::duration::Duration,
    base: TaskRunStatus,
) -> TaskRunStatus {
    let failed = |why: &str, message: String| TaskRunStatus {
        phase: TaskRunPhase::Failed,
        reason: why.into(),
        message,
        ..base.clone()
    };
    match outcome {
        LuaOutcome::Returned {
            ok: true,
            message,
            results,
        } => TaskRunStatus {
            phase: TaskRunPhase::Succeeded,
            reason: reason::COMPLETED.into(),
            message,
            results,
            ..base
        },
        LuaOutcome::Returned {
            ok: false,
            message,
            results,
        } => TaskRunStatus {
            results,
            ..failed(reason::ERROR, message)
        },
        LuaOutcome::InvalidResults(problem) => failed(
            reason::INVALID_RESULTS,
            format!("invalid results: {problem}"),
        ),
        LuaOutcome::Error(text) => failed(reason::LUA_ERROR, text),
        LuaOutcome::TimedOut => failed(
            reason::TIMED_OUT,
            format!("timed out after {timeout}; the Lua code was stopped"),
        ),
        LuaOutcome::Stopped(why) => failed(
            stop_reason(why),
            format!("{}; the Lua code was stopped", stop_message(why)),
        ),
        LuaOutcome::NotStarted(message) => failed(reason::ERROR, message),
    }
}

/// Writes the terminal status, re-reading on conflicts and retrying while
/// the apiserver is away; gives up when the TaskRun is gone or already
/// terminal.
async fn finish(ctx: &Ctx, key: &RunKey, claimed: TaskRun, status: TaskRunStatus) {
    let api = ctx.api(&key.namespace);
    let mut current = claimed;
    let mut backoff = CALL_BACKOFF.retries();
    loop {
        let mut next = current.clone();
        next.status = Some(with_conditions(&current, &status));
        match api.update_status(&next).await {
            Ok(_) => {
                tracing::info!(
                    "taskrun {key} {} ({}): {}",
                    status.phase.as_str(),
                    status.reason,
                    status.message
                );
                return;
            }
            Err(Error::Conflict(_)) => match api.get(&key.name).await {
                Ok(fresh) if phase_of(&fresh).is_terminal() => {
                    tracing::info!(
                        "taskrun {key} was already {}; its result here ({}) is dropped",
                        phase_of(&fresh).as_str(),
                        status.reason
                    );
                    return;
                }
                Ok(fresh) if fresh.metadata.uid == current.metadata.uid => current = fresh,
                Ok(_) | Err(Error::NotFound(_)) => {
                    tracing::info!("taskrun {key} was deleted; its result is dropped");
                    return;
                }
                Err(e) => {
                    tracing::warn!("cannot read taskrun {key} again: {e}");
                    backoff.wait().await;
                }
            },
            Err(Error::NotFound(_)) => {
                tracing::info!("taskrun {key} was deleted; its result is dropped");
                return;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!("cannot write the status of taskrun {key} (will retry): {e}");
                backoff.wait().await;
            }
            Err(e) => {
                tracing::error!("cannot write the status of taskrun {key}: {e}");
                return;
            }
        }
    }
}

/// Fails a TaskRun that is Running on this agent but not held by this
/// process: an earlier incarnation claimed it. It is never run again; what
/// is left of its processes is killed.
pub async fn fail_orphan(ctx: Arc<Ctx>, key: RunKey) {
    let api = ctx.api(&key.namespace);
    let mut backoff = CALL_BACKOFF.retries();
    loop {
        let current = match api.get(&key.name).await {
            Ok(current) => current,
            Err(Error::NotFound(_)) => return,
            Err(e) if e.is_transient() => {
                tracing::warn!("cannot read taskrun {key} (will retry): {e}");
                backoff.wait().await;
                continue;
            }
            Err(e) => {
                tracing::error!("cannot read taskrun {key}: {e}");
                return;
            }
        };
        if !running_on(&current, &ctx.agent) || ctx.runs.contains(&key) {
            return;
        }
        let run_dir = logs::run_dir(&ctx.work_dir, &key);
        let killed = executor::kill_recorded_group(&run_dir.join(PGID_FILE)).await;
        let tail = logs::read_tail(&run_dir.join(logs::OUTPUT_FILE), MAX_LOG_TAIL_BYTES)
            .await
            .ok()
            .filter(|t| !t.is_empty());
        let old = current.status_or_default();
        let mut message = format!(
            "agent {} restarted while this TaskRun was running; it is not run again",
            ctx.agent
        );
        if killed {
            message.push_str(" (the processes it left were killed)");
        }
        let mut next = current.clone();
        next.status = Some(TaskRunStatus {
            phase: TaskRunPhase::Failed,
            reason: reason::AGENT_RESTARTED.into(),
            message,
            completion_time: Some(Utc::now()),
            log_tail: tail.or(old.log_tail.clone()),
            ..old
        });
        match api.update_status(&next).await {
            Ok(_) => {
                tracing::info!("taskrun {key} Failed ({})", reason::AGENT_RESTARTED);
                return;
            }
            Err(Error::Conflict(_)) => {}
            Err(Error::NotFound(_)) => return,
            Err(e) if e.is_transient() => {
                tracing::warn!("cannot fail taskrun {key} (will retry): {e}");
                backoff.wait().await;
            }
            Err(e) => {
                tracing::error!("cannot fail taskrun {key}: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn check_mode_env_values() {
        for on in ["1", "true", "TRUE", " yes "] {
            assert!(super::check_mode_on(on), "{on}");
        }
        for off in ["", "0", "false", "no", "2"] {
            assert!(!super::check_mode_on(off), "{off}");
        }
    }

    use super::*;
    use sloth_sdk::objects::Payload;

    fn taskrun(agent: Option<&str>, phase: TaskRunPhase) -> TaskRun {
        let mut tr = TaskRun::new(
            "t1",
            TaskRunSpec {
                run: Payload {
                    shell: Some("true".into()),
                    lua: None,
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

    #[test]
    fn workdir_stays_in_the_run_dir_or_an_allowed_root() {
        let run = Path::new("/w/default/t1");
        let none: &[PathBuf] = &[];
        assert_eq!(cwd_for(run, None, none).as_deref(), Ok(run));
        assert_eq!(cwd_for(run, Some(""), none).as_deref(), Ok(run));
        assert_eq!(
            cwd_for(run, Some("src/app"), none).as_deref(),
            Ok(Path::new("/w/default/t1/src/app"))
        );
        let e = cwd_for(run, Some("../../../../etc"), none).expect_err("escape");
        assert!(e.contains(".."), "{e}");
        let e = cwd_for(run, Some("/etc"), none).expect_err("absolute");
        assert!(e.contains("--allow-workdir-root"), "{e}");
        let roots = [PathBuf::from("/srv/builds")];
        assert_eq!(
            cwd_for(run, Some("/srv/builds/x"), &roots).as_deref(),
            Ok(Path::new("/srv/builds/x"))
        );
        assert!(cwd_for(run, Some("/srv/buildsx"), &roots).is_err());
        assert!(cwd_for(run, Some("/srv/builds/../etc"), &roots).is_err());
    }
}
