//! The scheduler's reconciler: one decision at a time (concurrency 1), so
//! that capacity counts are never raced by the scheduler itself.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sloth_sdk::meta::Condition;
use sloth_sdk::objects::{Agent, AgentSpec, TaskRun, TaskRunPhase, TaskRunSpec};
use sloth_sdk::runtime::{Action, Controller, ObjectRef, Store, spawn_reflector};
use sloth_sdk::{Api, Client, Error, WatchParams};
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::CancellationToken;

use super::filter::{Candidate, feasible};
use super::policy::Placer;

/// The label that groups a workflow's TaskRuns (for Spread).
pub use crate::workflow::WORKFLOW_LABEL;

/// How often an unschedulable TaskRun is looked at again even when no
/// agent changes (a safety net; agent changes trigger at once).
const UNSCHEDULABLE_RECHECK: Duration = Duration::from_secs(30);

struct Ctx {
    taskruns: Api<TaskRunSpec>,
    cache: Store<TaskRunSpec>,
    agents: Store<AgentSpec>,
    placer: Mutex<Placer>,
    /// Bindings made but maybe not yet seen in the cache: TaskRun -> agent.
    assumed: Mutex<HashMap<ObjectRef, String>>,
    /// Bumped when a bound TaskRun finishes: its agent has room again, so
    /// waiting TaskRuns are looked at once more.
    capacity_freed: tokio::sync::watch::Sender<u64>,
    /// uids of finished TaskRuns already announced through `capacity_freed`,
    /// so that the re-run it causes does not announce them again.
    announced: Mutex<HashSet<String>>,
    /// The TaskRun cache's change counter, and a count of bindings made:
    /// together they say when `memo` is stale.
    cache_generation: tokio::sync::watch::Receiver<u64>,
    bindings: AtomicU64,
    /// Agent loads as of one cache generation: a burst of reconciles with
    /// nothing changed in between counts the cache once, not once each.
    memo: Mutex<Option<Loads>>,
}

/// Unfinished TaskRuns per agent, and per (workflow, agent).
#[derive(Debug)]
struct Loads {
    generation: u64,
    bindings: u64,
    running: HashMap<String, u32>,
    groups: HashMap<(String, String), u32>,
}

/// Runs the scheduler until `shutdown`.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let taskruns: Api<TaskRunSpec> = Api::all(client.clone());
    let agents_api: Api<AgentSpec> = Api::all(client);
    let (agents, agents_changed) =
        spawn_reflector(&agents_api, "", WatchParams::default(), shutdown.clone());
    let controller = Controller::new(taskruns.clone(), "", WatchParams::default());
    let cache_generation = controller.store().changes();
    let (capacity_freed, freed) = tokio::sync::watch::channel(0u64);
    let ctx = Arc::new(Ctx {
        taskruns,
        cache: controller.store(),
        agents,
        placer: Mutex::new(Placer::default()),
        assumed: Mutex::new(HashMap::new()),
        capacity_freed,
        announced: Mutex::new(HashSet::new()),
        cache_generation,
        bindings: AtomicU64::new(0),
        memo: Mutex::new(None),
    });
    controller
        .reconcile_all_on(WatchStream::from_changes(agents_changed))
        .reconcile_all_on(WatchStream::from_changes(freed))
        .concurrency(1)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, |_, _: &Error, _| Action::backoff(), ctx)
        .await;
}

fn is_unfinished(tr: &TaskRun) -> bool {
    !tr.status.as_ref().is_some_and(|s| s.phase.is_terminal())
}

async fn reconcile(tr: Arc<TaskRun>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let phase = tr.status.as_ref().map(|s| s.phase).unwrap_or_default();
    if phase.is_terminal() && tr.spec.agent_name.is_some() {
        announce_finished(&ctx, &tr);
        return Ok(Action::await_change());
    }
    if tr.spec.agent_name.is_some() || phase != TaskRunPhase::Pending {
        return Ok(Action::await_change());
    }
    let agents: Vec<Arc<Agent>> = ctx.agents.state();
    let (running, group_counts) = load(&ctx, &tr);
    let candidates = match feasible(&tr, &agents, &running) {
        Ok(c) => c,
        Err(message) => {
            mark_unschedulable(&ctx, &tr, &message).await?;
            return Ok(Action::requeue(UNSCHEDULABLE_RECHECK));
        }
    };
    let policy = tr
        .spec
        .placement
        .as_ref()
        .map(|p| p.policy)
        .unwrap_or_default();
    let selector_key = tr
        .spec
        .agent_selector
        .as_ref()
        .map(|s| sloth_sdk::selector::Labels::from_selector(s).to_string())
        .unwrap_or_default();
    let chosen: Option<Candidate> = ctx
        .placer
        .lock()
        .map_err(|_| Error::Invalid("scheduler state poisoned".into()))?
        .pick(policy, &selector_key, &candidates, &group_counts)
        .cloned();
    let Some(chosen) = chosen else {
        return Ok(Action::requeue(UNSCHEDULABLE_RECHECK));
    };
    bind(&ctx, &tr, chosen.name()).await?;
    Ok(Action::await_change())
}

fn announce_finished(ctx: &Ctx, tr: &TaskRun) {
    let mut announced = ctx.announced.lock().unwrap_or_else(|p| p.into_inner());
    if !announced.insert(tr.metadata.uid.clone()) {
        return;
    }
    // Forget deleted TaskRuns now and then, so the set stays the size of the cache.
    if announced.len() > 2 * ctx.cache.len() + 64 {
        let live: HashSet<String> = ctx
            .cache
            .state()
            .iter()
            .map(|t| t.metadata.uid.clone())
            .collect();
        announced.retain(|uid| live.contains(uid));
    }
    drop(announced);
    ctx.capacity_freed.send_modify(|n| *n = n.wrapping_add(1));
}

/// Unfinished TaskRuns per agent, and per agent those of the same workflow.
fn load(ctx: &Ctx, tr: &TaskRun) -> (HashMap<String, u32>, HashMap<String, u32>) {
    let generation = *ctx.cache_generation.borrow();
    let bindings = ctx.bindings.load(Ordering::Acquire);
    let mut memo = ctx.memo.lock().unwrap_or_else(|p| p.into_inner());
    let fresh = memo
        .as_ref()
        .is_some_and(|m| m.generation == generation && m.bindings == bindings);
    if !fresh {
        *memo = Some(count_loads(ctx, generation, bindings));
    }
    let Some(loads) = memo.as_ref() else {
        return (HashMap::new(), HashMap::new());
    };
    let groups = match tr.metadata.labels.get(WORKFLOW_LABEL) {
        Some(group) => loads
            .groups
            .iter()
            .filter(|((g, _), _)| g == group)
            .map(|((_, agent), n)| (agent.clone(), *n))
            .collect(),
        None => HashMap::new(),
    };
    (loads.running.clone(), groups)
}

/// Counts every cached TaskRun (and the bindings the cache has not shown
/// yet) once.
fn count_loads(ctx: &Ctx, generation: u64, bindings: u64) -> Loads {
    let mut running: HashMap<String, u32> = HashMap::new();
    let mut groups: HashMap<(String, String), u32> = HashMap::new();
    let mut assumed = ctx.assumed.lock().unwrap_or_else(|p| p.into_inner());
    for other in ctx.cache.state() {
        let agent = match &other.spec.agent_name {
            Some(agent) => {
                // The cache has caught up with this binding.
                if !assumed.is_empty() {
                    assumed.remove(&ObjectRef::from_obj(&*other));
                }
                agent.clone()
            }
            None if assumed.is_empty() => continue,
            None => {
                let key = ObjectRef::from_obj(&*other);
                match assumed.get(&key) {
                    Some(agent) if is_unfinished(&other) => agent.clone(),
                    Some(_) => {
                        assumed.remove(&key);
                        continue;
                    }
                    None => continue,
                }
            }
        };
        if !is_unfinished(&other) {
            continue;
        }
        *running.entry(agent.clone()).or_default() += 1;
        if let Some(group) = other.metadata.labels.get(WORKFLOW_LABEL) {
            *groups.entry((group.clone(), agent)).or_default() += 1;
        }
    }
    Loads {
        generation,
        bindings,
        running,
        groups,
    }
}

async fn bind(ctx: &Ctx, tr: &TaskRun, agent: &str) -> Result<(), Error> {
    let api = Api::<TaskRunSpec>::namespaced(ctx.taskruns.client().clone(), tr.namespace());
    let mut bound = tr.clone();
    bound.spec.agent_name = Some(agent.to_string());
    // Compare-and-swap on the cached resourceVersion: never two agents.
    let bound = api.replace(&bound).await?;
    if let Ok(mut assumed) = ctx.assumed.lock() {
        assumed.insert(ObjectRef::from_obj(tr), agent.to_string());
    }
    ctx.bindings.fetch_add(1, Ordering::Release);
    tracing::info!(taskrun = %ObjectRef::from_obj(tr), agent, "bound");
    let mut status = bound.status_or_default();
    if status.phase == TaskRunPhase::Pending {
        status.phase = TaskRunPhase::Scheduled;
        status.agent = Some(agent.to_string());
        set_condition(
            &mut status.conditions,
            "True",
            "Scheduled",
            &format!("bound to agent {agent}"),
        );
        let mut scheduled = bound.clone();
        scheduled.status = Some(status);
        match api.update_status(&scheduled).await {
            // The agent may already have moved it on; its word stands.
            Ok(_) | Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
