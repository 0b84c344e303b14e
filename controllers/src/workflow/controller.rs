//! The Workflow controller's IO: it observes Workflows and the TaskRuns
//! they own, asks [`plan`](super::plan::plan) what to do, and does it:
//! stops TaskRuns, takes task locks, creates TaskRuns, writes the status
//! and records Events for what changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use sloth_sdk::dag::Dag;
use sloth_sdk::events::Recorder;
use sloth_sdk::objects::workflow::{TaskPhase, WorkflowPhase, WorkflowStatus};
use sloth_sdk::objects::{
    EventType, LockSpec, ObjectReference, TaskRun, TaskRunPhase, TaskRunSpec, TaskRunStatus,
    Workflow, WorkflowSpec, WorkflowState,
};
use sloth_sdk::runtime::{Action, Controller, ObjectRef, Store};
use sloth_sdk::watcher::watch_objects;
use sloth_sdk::{Api, Client, Error, WatchParams, lease};
use tokio_util::sync::CancellationToken;

use super::index::TaskRunIndex;
use super::plan::{NewRun, Plan, StopRun, is_final_phase, plan_with};
use super::status_batch::{PROGRESS_BATCH, progress_only};
use super::status_write::write_status;
use crate::stack::gate::{self as stack_gate, Gate};
use crate::stack::history;
use sloth_sdk::well_known::{
    HOOK_FAILED_CONDITION as HOOK_FAILED, HOOK_LABEL, TASK_LABEL, WORKFLOW_LABEL,
};

/// Task locks are leases this long, renewed while their TaskRun runs.
pub const TASK_LOCK_LEASE_SECONDS: u32 = 60;
/// How often the locks of running TaskRuns are renewed.
const LOCK_RENEWAL: Duration = Duration::from_secs(15);
/// How often a task waiting for a lock tries again.
const LOCK_RETRY: Duration = Duration::from_secs(1);
/// TaskRuns of one workflow created at once.
const CREATE_CONCURRENCY: usize = 16;
/// The reason of a TaskRun stopped because a lock it held was taken away.
pub const LOCK_LOST: &str = "LockLost";
/// The reason of a task that waits for a lock.
pub const WAITING_FOR_LOCK: &str = "WaitingForLock";

struct Ctx {
    client: Client,
    /// The TaskRuns of each workflow, from the TaskRun watch.
    taskruns: TaskRunIndex,
    recorder: Recorder,
    /// Every Workflow (the controller's own cache): a stack's line.
    workflows: Store<WorkflowSpec>,
    /// Each running workflow's graph, built once per spec (uid and
    /// generation) instead of on every reconcile.
    dags: Mutex<HashMap<ObjectRef, CachedDag>>,
    /// When each running workflow's status was last written, to batch
    /// progress (`status_batch`).
    last_written: Mutex<HashMap<ObjectRef, Instant>>,
}

/// A workflow's graph and the spec it was built from.
struct CachedDag {
    uid: String,
    generation: i64,
    dag: Arc<Dag>,
}

impl Ctx {
    /// The graph of `wf`'s spec, from the cache when the spec is the same.
    fn dag_of(&self, wf: &Workflow) -> Arc<Dag> {
        let key = ObjectRef::from_obj(wf);
        let mut dags = self.dags.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = dags.get(&key)
            && cached.uid == wf.metadata.uid
            && cached.generation == wf.metadata.generation
        {
            return cached.dag.clone();
        }
        // A new graph is rare (once per workflow and spec change): drop
        // those of workflows that are gone.
        dags.retain(|key, _| self.workflows.get(key).is_some());
        let dag = Arc::new(Dag::of(&wf.spec));
        dags.insert(
            key,
            CachedDag {
                uid: wf.metadata.uid.clone(),
                generation: wf.metadata.generation,
                dag: dag.clone(),
            },
        );
        dag
    }

    /// Forgets the graph of a workflow that finished or is being deleted.
    fn forget_dag(&self, wf: &Workflow) {
        let key = ObjectRef::from_obj(wf);
        self.dags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        self.last_written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }

    /// How long progress of `wf` should still wait before it is written;
    /// None when it may be written now.
    fn progress_wait(&self, wf: &Workflow) -> Option<Duration> {
        let last = self
            .last_written
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let since = last.get(&ObjectRef::from_obj(wf))?.elapsed();
        PROGRESS_BATCH
            .checked_sub(since)
            .filter(|wait| !wait.is_zero())
    }

    fn status_written(&self, wf: &Workflow) {
        self.last_written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ObjectRef::from_obj(wf), Instant::now());
    }
}

/// Runs the Workflow controller until `shutdown`.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let workflows: Api<WorkflowSpec> = Api::all(client.clone());
    let taskruns_api: Api<TaskRunSpec> = Api::all(client.clone());
    let taskruns = TaskRunIndex::default();
    let owned = WatchParams {
        label_selector: WORKFLOW_LABEL.into(),
        ..WatchParams::default()
    };
    // The TaskRun index is written before the trigger it causes is seen, so
    // a reconcile always finds the change that caused it.
    let index = taskruns.clone();
    let taskrun_events = watch_objects(&taskruns_api, "", owned).inspect(move |item| {
        if let Ok(event) = item {
            index.apply(event);
        }
    });
    let controller = Controller::new(workflows, "", WatchParams::default())
        .observe(crate::metrics::global().controller("workflow"));
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "workflow-controller"),
        client,
        taskruns,
        workflows: controller.store(),
        dags: Mutex::default(),
        last_written: Mutex::default(),
    });
    controller
        .watches_stream(taskrun_events, |tr: &TaskRun| {
            tr.metadata
                .labels
                .get(WORKFLOW_LABEL)
                .map(|wf| ObjectRef::new(tr.namespace(), wf.as_str()))
        })
        .concurrency(4)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, |_, _: &Error, _| Action::backoff(), ctx)
        .await;
}

async fn reconcile(wf: Arc<Workflow>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if wf.metadata.deletion_timestamp.is_some() {
        ctx.forget_dag(&wf);
        return Ok(Action::await_change());
    }
    let started = std::time::Instant::now();
    let owned = ctx.taskruns.owned(&wf);
    let refs: Vec<&TaskRun> = owned.iter().map(Arc::as_ref).collect();
    let mut stack_env = BTreeMap::new();
    if let Some(stack) = &wf.spec.stack {
        if stack_gate::is_recorded(&wf) {
            return Ok(Action::await_change());
        }
        if history::is_finished(&wf) {
            stack_gate::record_finish(&ctx.client, &wf, stack, &refs).await?;
            return Ok(Action::await_change());
        }
        // Cancelled before it started: it ends without the stack.
        let cancelled_waiting =
            wf.spec.state == WorkflowState::Cancelled && !history::has_started(&wf);
        if !cancelled_waiting {
            match stack_gate::gate(&ctx.client, &wf, stack, &ctx.workflows).await? {
                Gate::Run(env) => stack_env = env,
                Gate::Busy(message) => return wait_for_stack(&ctx, &wf, message).await,
            }
        }
    }
    let now = Utc::now();
    let mut plan = if is_final_phase(wf.phase()) {
        // The planner leaves a finished workflow alone; it needs no graph.
        ctx.forget_dag(&wf);
        super::plan::plan(&wf, &refs, now)
    } else {
        plan_with(&wf, &ctx.dag_of(&wf), &refs, now)
    };
    for new in &mut plan.create {
        for (key, value) in &stack_env {
            new.taskrun
                .spec
                .env
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
    }
    let old = wf.status_or_default();
    let mut requeue = plan.requeue_after;
    let planned = started.elapsed();
    let creates = plan.create.len();

    for stop in &plan.stop {
        if let Some(tr) = owned.iter().find(|tr| tr.name() == stop.taskrun) {
            stop_taskrun(&ctx, tr, stop).await?;
        }
    }
    let locks: Api<LockSpec> = Api::namespaced(ctx.client.clone(), wf.namespace());
    if tend_locks(&ctx, &wf, &owned, &locks, now).await? {
        requeue = Some(requeue.map_or(LOCK_RENEWAL, |r| r.min(LOCK_RENEWAL)));
    }
    let taskruns: Api<TaskRunSpec> = Api::namespaced(ctx.client.clone(), wf.namespace());
    // Tasks that take locks are created one at a time (each waits for its
    // locks); the others of a layer are created together, so a wide layer
    // costs about one write's latency, not one per task.
    let (locked, free): (Vec<NewRun>, Vec<NewRun>) = std::mem::take(&mut plan.create)
        .into_iter()
        .partition(|new| !new.locks.is_empty());
    for new in locked {
        if !acquire_locks(&locks, &new).await? {
            if let Some(task) = plan.status.tasks.get_mut(&new.task) {
                task.reason = WAITING_FOR_LOCK.into();
            }
            requeue = Some(requeue.map_or(LOCK_RETRY, |r| r.min(LOCK_RETRY)));
            continue;
        }
        create_taskrun(&ctx, &wf, &taskruns, &locks, &new).await?;
    }
    let results: Vec<Result<(), Error>> = futures_util::stream::iter(free)
        .map(|new| {
            let (ctx, wf, taskruns, locks) =
                (ctx.clone(), wf.clone(), taskruns.clone(), locks.clone());
            async move { create_taskrun(&ctx, &wf, &taskruns, &locks, &new).await }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect::<Result<(), Error>>()?;
    let created = started.elapsed();

    if plan.status != old {
        // Progress that decides nothing waits for the next write, up to
        // PROGRESS_BATCH (a requeue writes it if nothing else comes).
        if creates == 0
            && plan.stop.is_empty()
            && progress_only(&old, &plan.status)
            && let Some(wait) = ctx.progress_wait(&wf)
        {
            return Ok(Action::requeue(requeue.map_or(wait, |r| r.min(wait))));
        }
        match write_status(&ctx.client, &wf, plan.status.clone()).await {
            Ok(_) => {
                ctx.status_written(&wf);
                tracing::debug!(workflow = wf.name(), taskruns = owned.len(), creates, ?planned, ?created, written = ?started.elapsed(), "status written");
                record_transitions(&ctx, &wf, &old, &plan).await;
                record_hook_failures(&ctx, &wf, &old, &plan, &owned).await;
                record_workflow_hook_failures(&ctx, &wf, &old, &plan, &owned).await;
            }
            // Someone wrote in between (a cancel, a spec change): the write
            // triggers another reconcile from the newer copy.
            Err(Error::Conflict(_)) => return Ok(Action::requeue(Duration::from_millis(100))),
            Err(Error::NotFound(_)) => return Ok(Action::await_change()),
            Err(e) => return Err(e),
        }
    }
    Ok(requeue.map_or(Action::await_change(), Action::requeue))
}

/// Keeps a Workflow of a busy stack Pending with reason StackBusy and
/// looks again shortly.
async fn wait_for_stack(ctx: &Ctx, wf: &Workflow, message: String) -> Result<Action, Error> {
    let status = stack_gate::busy_status(wf, message);
    if wf.status.as_ref() != Some(&status) {
        match write_status(&ctx.client, wf, status).await {
            Ok(_) | Err(Error::Conflict(_) | Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Action::requeue(stack_gate::BUSY_RETRY))
}

/// Creates one task's TaskRun and records it; a TaskRun an earlier
/// reconcile created is fine. On failure the task's locks are let go.
async fn create_taskrun(
    ctx: &Ctx,
    wf: &Workflow,
    taskruns: &Api<TaskRunSpec>,
    locks: &Api<LockSpec>,
    new: &NewRun,
) -> Result<(), Error> {
    match taskruns.create(&new.taskrun).await {
        Ok(_) => {
            tracing::info!(
                workflow = wf.name(),
                taskrun = new.taskrun.name(),
                "created taskrun"
            );
            let message = format!(
                "created TaskRun {} (attempt {})",
                new.taskrun.name(),
                new.taskrun.spec.attempt
            );
            record(ctx, wf, EventType::Normal, "TaskStarted", &message).await;
            Ok(())
        }
        // Created by an earlier reconcile whose result the cache had not
        // shown yet: the name is the attempt's identity.
        Err(Error::AlreadyExists(_)) => Ok(()),
        Err(e) => {
            release_locks(locks, &new.taskrun, &new.locks).await;
            Err(e)
        }
    }
}

/// Fails an unfinished TaskRun; its agent sees the terminal phase and
/// kills the process group.
async fn stop_taskrun(ctx: &Ctx, tr: &TaskRun, stop: &StopRun) -> Result<(), Error> {
    let mut status = tr.status_or_default();
    if status.phase.is_terminal() {
        return Ok(());
    }
    status = TaskRunStatus {
        phase: TaskRunPhase::Failed,
        reason: stop.reason.into(),
        message: stop.message.clone(),
        completion_time: Some(Utc::now()),
        ..status
    };
    let mut next = tr.clone();
    next.status = Some(status);
    match Api::<TaskRunSpec>::namespaced(ctx.client.clone(), tr.namespace())
        .update_status(&next)
        .await
    {
        Ok(_) => {
            tracing::info!(taskrun = tr.name(), reason = stop.reason, "stopped taskrun");
            Ok(())
        }
        // It moved on (finished, or was claimed): the next reconcile sees it.
        Err(Error::Conflict(_) | Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The identity that holds a task lock: the TaskRun it guards.
pub fn lock_holder(tr: &TaskRun) -> String {
    lease::taskrun_holder(tr.namespace(), tr.name())
}

/// Takes every lock `new` needs, or none: a lock held elsewhere releases
/// those already taken, so two tasks never wait on each other in a cycle.
async fn acquire_locks(locks: &Api<LockSpec>, new: &NewRun) -> Result<bool, Error> {
    let holder = lock_holder(&new.taskrun);
    for (i, name) in new.locks.iter().enumerate() {
        match lease::try_acquire(locks, name, &holder, TASK_LOCK_LEASE_SECONDS).await {
            Ok(lease::Acquire::Acquired(_)) => {}
            Ok(lease::Acquire::Held { holder: other, .. }) => {
                tracing::debug!(
                    lock = name,
                    holder = other,
                    "task {} waits for the lock",
                    new.task
                );
                release_locks(locks, &new.taskrun, &new.locks[..i]).await;
                return Ok(false);
            }
            Err(Error::Conflict(_)) => {
                release_locks(locks, &new.taskrun, &new.locks[..i]).await;
                return Ok(false);
            }
            Err(e) => {
                release_locks(locks, &new.taskrun, &new.locks[..i]).await;
                return Err(e);
            }
        }
    }
    Ok(true)
}

async fn release_locks(locks: &Api<LockSpec>, tr: &TaskRun, names: &[String]) {
    let holder = lock_holder(tr);
    for name in names {
        if let Err(e) = lease::release(locks, name, &holder).await {
            // The lease runs out by itself.
            tracing::warn!(lock = name, error = %e, "cannot release a task lock");
        }
    }
}

/// Renews the locks of unfinished TaskRuns and releases those of recently
/// finished ones; an unfinished TaskRun that lost a lock (deleted, taken
/// over, or its lease ran out) is stopped with reason [`LOCK_LOST`].
/// Returns whether some lock is still held.
async fn tend_locks(
    ctx: &Ctx,
    wf: &Workflow,
    owned: &[Arc<TaskRun>],
    locks: &Api<LockSpec>,
    now: chrono::DateTime<Utc>,
) -> Result<bool, Error> {
    let mut holding = false;
    for tr in owned {
        let Some(task) = tr.metadata.labels.get(TASK_LABEL).and_then(|name| {
            wf.spec
                .tasks
                .iter()
                .chain(&wf.spec.finally)
                .find(|t| &t.name == name)
        }) else {
            continue;
        };
        if task.locks.is_empty() {
            continue;
        }
        let status = tr.status_or_default();
        if !status.phase.is_terminal() {
            holding = true;
            let holder = lock_holder(tr);
            for name in &task.locks {
                match lease::renew(locks, name, &holder, TASK_LOCK_LEASE_SECONDS).await {
                    Ok(lease::Renew::Renewed(_)) | Err(Error::Conflict(_)) => {}
                    Ok(lease::Renew::Lost(why)) => {
                        tracing::warn!(lock = name, taskrun = tr.name(), "{why}");
                        let stop = StopRun {
                            taskrun: tr.name().to_string(),
                            reason: LOCK_LOST,
                            message: format!("{why} while the task ran; it was stopped"),
                        };
                        stop_taskrun(ctx, tr, &stop).await?;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        } else if status.completion_time.is_some_and(|done| {
            now - done < chrono::Duration::seconds(i64::from(TASK_LOCK_LEASE_SECONDS))
        }) {
            release_locks(locks, tr, &task.locks).await;
        }
    }
    Ok(holding)
}

/// Events are written in the background: a reconcile that records one per
/// finished task (a whole layer of a wide workflow) would otherwise hold up
/// the next reconcile, and the next layer's start, by a write per task.
async fn record(ctx: &Ctx, wf: &Workflow, type_: EventType, reason: &str, message: &str) {
    ctx.recorder
        .record_in_background(&ObjectReference::from_obj(wf), type_, reason, message)
        .await;
}

/// A Warning Event `HookFailed` for each task that just finished with a
/// failed hook (the agent's TaskRun condition `HookFailed`: the hook did
/// not change the task's result, so nothing else would tell).
async fn record_hook_failures(
    ctx: &Ctx,
    wf: &Workflow,
    old: &WorkflowStatus,
    plan: &Plan,
    owned: &[Arc<TaskRun>],
) {
    for (name, task) in &plan.status.tasks {
        let was = old.tasks.get(name).map(|t| (t.phase, t.attempt));
        let finished = matches!(task.phase, TaskPhase::Succeeded | TaskPhase::Failed);
        if was == Some((task.phase, task.attempt)) || !finished {
            continue;
        }
        let Some(tr) = owned
            .iter()
            .find(|tr| Some(tr.name()) == task.task_run.as_deref())
        else {
            continue;
        };
        let status = tr.status_or_default();
        if let Some(c) = status.conditions.iter().find(|c| c.type_ == HOOK_FAILED) {
            let message = format!("task {name}: {} ({})", c.message, tr.name());
            record(ctx, wf, EventType::Warning, HOOK_FAILED, &message).await;
        }
    }
}

/// A Warning Event `HookFailed` per failed workflow hook TaskRun, once,
/// when the workflow ends (a hook never changes the workflow's result).
async fn record_workflow_hook_failures(
    ctx: &Ctx,
    wf: &Workflow,
    old: &WorkflowStatus,
    plan: &Plan,
    owned: &[Arc<TaskRun>],
) {
    let ended = |phase| matches!(phase, WorkflowPhase::Succeeded | WorkflowPhase::Failed);
    if !ended(plan.status.phase) || ended(old.phase) {
        return;
    }
    for tr in owned.iter().filter(|tr| super::hooks::is_hook(tr)) {
        let status = tr.status_or_default();
        if status.phase != TaskRunPhase::Failed {
            continue;
        }
        let hook = tr
            .metadata
            .labels
            .get(HOOK_LABEL)
            .map_or("", String::as_str);
        let message = format!(
            "workflow hook {hook} failed: {} ({})",
            status.message,
            tr.name()
        );
        record(ctx, wf, EventType::Warning, HOOK_FAILED, &message).await;
    }
}

/// One Event per task that reached a final phase and for the workflow's end.
async fn record_transitions(ctx: &Ctx, wf: &Workflow, old: &WorkflowStatus, plan: &Plan) {
    for (name, task) in &plan.status.tasks {
        let before = old.tasks.get(name);
        if before.is_some_and(|b| b.phase == task.phase && b.attempt == task.attempt) {
            continue;
        }
        let run = task.task_run.as_deref().unwrap_or("-");
        let (type_, reason, message) = match task.phase {
            TaskPhase::Succeeded => (
                EventType::Normal,
                "TaskSucceeded",
                format!("task {name} succeeded ({run})"),
            ),
            TaskPhase::Failed => (
                EventType::Warning,
                "TaskFailed",
                format!("task {name} failed: {} ({run})", task.reason),
            ),
            TaskPhase::Skipped => (
                EventType::Normal,
                "TaskSkipped",
                format!("task {name} skipped: {}", task.reason),
            ),
            TaskPhase::Running if task.reason == super::plan::reason::BACKOFF => (
                EventType::Warning,
                "TaskRetrying",
                format!(
                    "task {name} attempt {} failed; retrying after backoff",
                    task.attempt
                ),
            ),
            _ => continue,
        };
        record(ctx, wf, type_, reason, &message).await;
    }
    if plan.status.phase != old.phase {
        let message = plan
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == super::plan::CONDITION)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        let (type_, reason) = match plan.status.phase {
            WorkflowPhase::Running => (EventType::Normal, "WorkflowStarted"),
            WorkflowPhase::Succeeded => (EventType::Normal, "WorkflowSucceeded"),
            WorkflowPhase::Failed => (EventType::Warning, "WorkflowFailed"),
            WorkflowPhase::Cancelled => (EventType::Normal, "WorkflowCancelled"),
            WorkflowPhase::Pending => return,
        };
        record(ctx, wf, type_, reason, &message).await;
    }
}
