//! The scheduler's reconciler. Several decisions run at once: each counts
//! its binding in [`State`] (under one lock) before writing it, so that
//! concurrent decisions never over-commit an agent, and bindings' round
//! trips overlap.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sloth_sdk::meta::Condition;
use sloth_sdk::objects::{AgentSpec, TaskRun, TaskRunPhase, TaskRunSpec, TaskRunStatus};
use sloth_sdk::runtime::{Action, Controller, ObjectRef, spawn_reflector};
use sloth_sdk::watcher::watch_objects;
use sloth_sdk::{Api, Client, Error, WatchParams};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;

use super::state::{Decision, State};

/// How often an unschedulable TaskRun is looked at again even when no
/// agent changes (a safety net; agent changes and freed slots trigger at
/// once).
const UNSCHEDULABLE_RECHECK: Duration = Duration::from_secs(30);

/// A TaskRun that waits only for a free slot on agents that could take it
/// gets no `Unschedulable` condition before it has waited this long: in a
/// burst most waits are short, and each condition is a store write. It
/// stays parked meanwhile, so a freed slot still wakes it at once.
pub const FULL_GRACE: Duration = Duration::from_secs(1);

/// While its queue moves (matching agents free slots), a TaskRun waiting
/// for a slot gets the condition only after this long...
pub const MOVING_GRACE: Duration = Duration::from_secs(30);

/// ...and is looked at again this often meanwhile.
const MOVING_RECHECK: Duration = Duration::from_secs(5);

/// The TaskRuns the scheduler watches: the unfinished ones.
const UNFINISHED: &str = "status.phase!=Succeeded,status.phase!=Failed";

/// Bindings written at once. Each is one round trip; more in flight keeps
/// the apiserver busy without letting the scheduler's own CPU dominate.
const CONCURRENCY: usize = 64;

struct Ctx {
    taskruns: Api<TaskRunSpec>,
    state: Arc<Mutex<State>>,
}

impl Ctx {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every State method leaves it consistent before anything can panic
        // inside, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the scheduler until `shutdown`.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let taskruns: Api<TaskRunSpec> = Api::all(client.clone());
    let agents_api: Api<AgentSpec> = Api::all(client);
    let (agents, mut agents_changed) =
        spawn_reflector(&agents_api, "", WatchParams::default(), shutdown.clone());
    let (wake, woken) = tokio::sync::mpsc::unbounded_channel();
    let state = Arc::new(Mutex::new(State::new(agents, wake)));

    // The TaskRun watch feeds the state before the controller's cache, so a
    // decision never sees a cached TaskRun the state has not counted. The
    // state counts every TaskRun (bound ones load their agents); the
    // controller caches and reconciles only the ones left to place, so a
    // restart with many finished TaskRuns stored does not queue a new one
    // behind all of them.
    //
    // Finished TaskRuns take no slot: the server leaves them out of the
    // watch (a TaskRun that finishes arrives as deleted, which frees its
    // slot in the state), so a restart lists only the unfinished ones.
    let unfinished = WatchParams {
        field_selector: UNFINISHED.to_string(),
        ..WatchParams::default()
    };
    let tap = state.clone();
    let events = watch_objects(&taskruns, "", unfinished).map(move |item| {
        if let Ok(event) = &item {
            tap.lock().unwrap_or_else(|p| p.into_inner()).apply(event);
        }
        item
    });
    let events = crate::relevant::only(events, to_place);

    let on_agents = state.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                changed = agents_changed.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    on_agents.lock().unwrap_or_else(|p| p.into_inner()).agents_changed();
                }
            }
        }
    });

    let ctx = Arc::new(Ctx { taskruns, state });
    Controller::from_stream(events)
        .observe(crate::metrics::global().controller("scheduler"))
        .reconcile_on(UnboundedReceiverStream::new(woken))
        .concurrency(CONCURRENCY)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, |_, _: &Error, _| Action::backoff(), ctx)
        .await;
}

/// Whether `tr` is the scheduler's to place: unbound and Pending.
fn to_place(tr: &TaskRun) -> bool {
    tr.spec.agent_name.is_none() && tr.phase() == TaskRunPhase::Pending
}

async fn reconcile(tr: Arc<TaskRun>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !to_place(&tr) {
        return Ok(Action::await_change());
    }
    let decision = ctx.state().decide(&tr);
    match decision {
        Decision::AlreadyBound => Ok(Action::await_change()),
        Decision::Unschedulable(message) => {
            mark_unschedulable(&ctx, &tr, &message).await?;
            Ok(Action::requeue(UNSCHEDULABLE_RECHECK))
        }
        Decision::Full {
            message,
            waited,
            moving,
        } => match grace_left(waited, moving) {
            Some(left) => Ok(Action::requeue(left)),
            None => {
                mark_unschedulable(&ctx, &tr, &message).await?;
                Ok(Action::requeue(UNSCHEDULABLE_RECHECK))
            }
        },
        Decision::Bind(agent) => match bind(&ctx, &tr, &agent).await {
            Ok(()) => {
                let waited = tr
                    .metadata
                    .creation_timestamp
                    .map(|created| (chrono::Utc::now() - created).to_std().unwrap_or_default());
                crate::metrics::global().bound(waited);
                Ok(Action::await_change())
            }
            Err(Bind::NotWritten(e)) => {
                ctx.state().forget_binding(&ObjectRef::from_obj(&*tr));
                match e {
                    // Changed or gone meanwhile: its watch event runs it again.
                    Error::Conflict(_) | Error::NotFound(_) => Ok(Action::await_change()),
                    e => Err(e),
                }
            }
            Err(Bind::StatusFailed(e)) => Err(e),
        },
    }
}

/// When to look again at a TaskRun that waits for a slot, without writing
/// the `Unschedulable` condition; `None`: write it now. It gets
/// [`FULL_GRACE`], or [`MOVING_GRACE`] while its queue moves.
fn grace_left(waited: Duration, moving: bool) -> Option<Duration> {
    let left = |grace: Duration| grace.checked_sub(waited).filter(|l| !l.is_zero());
    match left(FULL_GRACE) {
        Some(l) => Some(l),
        None if moving => left(MOVING_GRACE).map(|l| l.min(MOVING_RECHECK)),
        None => None,
    }
}

/// How a binding failed: before its spec write took (the slot is free
/// again) or after (the agent has it; only the phase is behind).
enum Bind {
    NotWritten(Error),
    StatusFailed(Error),
}

async fn bind(ctx: &Ctx, tr: &TaskRun, agent: &str) -> Result<(), Bind> {
    let api = Api::<TaskRunSpec>::namespaced(ctx.taskruns.client().clone(), tr.namespace());
    let mut bound = tr.clone();
    bound.spec.agent_name = Some(agent.to_string());
    // The apiserver stores this status with the binding (its binding rule,
    // docs/api.md): one write moves the TaskRun to Scheduled.
    bound.status = Some(scheduled(tr, agent));
    // Compare-and-swap on the cached resourceVersion: never two agents.
    let bound = api.replace(&bound).await.map_err(Bind::NotWritten)?;
    tracing::debug!(taskrun = %ObjectRef::from_obj(tr), agent, "bound");
    if bound.phase() == TaskRunPhase::Pending {
        // An apiserver without the binding rule ignored the status: a
        // second write for the phase.
        let mut status = bound.clone();
        status.status = Some(scheduled(&bound, agent));
        match api.update_status(&status).await {
            // The agent may already have moved it on; its word stands.
            Ok(_) | Err(Error::Conflict(_)) => {}
            Err(e) => return Err(Bind::StatusFailed(e)),
        }
    }
    Ok(())
}

/// `tr`'s status once bound to `agent`: phase Scheduled, the agent, and the
/// `Scheduled` condition True.
fn scheduled(tr: &TaskRun, agent: &str) -> TaskRunStatus {
    let mut status = tr.status_or_default();
    status.phase = TaskRunPhase::Scheduled;
    status.agent = Some(agent.to_string());
    set_condition(
        &mut status.conditions,
        "True",
        "Scheduled",
        &format!("bound to agent {agent}"),
    );
    status
}

async fn mark_unschedulable(ctx: &Ctx, tr: &TaskRun, message: &str) -> Result<(), Error> {
    let mut status = tr.status_or_default();
    let before = status.conditions.clone();
    set_condition(&mut status.conditions, "False", "Unschedulable", message);
    if status.conditions == before {
        return Ok(());
    }
    tracing::info!(taskrun = %ObjectRef::from_obj(tr), message, "unschedulable");
    let api = Api::<TaskRunSpec>::namespaced(ctx.taskruns.client().clone(), tr.namespace());
    let mut updated = tr.clone();
    updated.status = Some(status);
    match api.update_status(&updated).await {
        Ok(_) | Err(Error::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets the `Scheduled` condition; the transition time moves only when the
/// status flips.
fn set_condition(conditions: &mut Vec<Condition>, status: &str, reason: &str, message: &str) {
    let now = chrono::Utc::now();
    match conditions.iter_mut().find(|c| c.type_ == "Scheduled") {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(now);
            }
            c.status = status.to_string();
            c.reason = reason.to_string();
            c.message = message.to_string();
        }
        None => conditions.push(Condition {
            type_: "Scheduled".into(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: Some(now),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taskrun_waiting_for_a_slot_is_marked_only_after_the_grace_longer_while_its_queue_moves() {
        for moving in [false, true] {
            assert_eq!(grace_left(Duration::ZERO, moving), Some(FULL_GRACE));
            assert_eq!(
                grace_left(Duration::from_millis(300), moving),
                Some(FULL_GRACE - Duration::from_millis(300))
            );
        }
        // A stalled queue: the condition once the short grace is over.
        assert_eq!(grace_left(FULL_GRACE, false), None);
        assert_eq!(grace_left(FULL_GRACE * 10, false), None);
        // A queue that drains: looked at again, up to the long grace.
        assert_eq!(grace_left(FULL_GRACE, true), Some(MOVING_RECHECK));
        assert_eq!(
            grace_left(MOVING_GRACE - Duration::from_secs(2), true),
            Some(Duration::from_secs(2))
        );
        assert_eq!(grace_left(MOVING_GRACE, true), None);
    }
}
