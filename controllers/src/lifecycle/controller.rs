//! The agent-lifecycle controller: keeps each Agent's phase in line with
//! its heartbeat Lock, and once an agent has been lost for longer than the
//! grace period, fails its unfinished TaskRuns with reason `AgentLost` so
//! that their workflows retry them elsewhere.

use std::sync::Arc;
use std::time::Duration;

use sloth_sdk::meta::Condition;
use sloth_sdk::objects::{
    Agent, AgentPhase, AgentSpec, LockSpec, TaskRunPhase, TaskRunSpec, TaskRunStatus,
};
use sloth_sdk::runtime::{Action, Controller, ObjectRef, Store, spawn_reflector};
use sloth_sdk::{Api, Client, Error, ListParams, WatchParams};
use tokio_util::sync::CancellationToken;

use crate::lifecycle::{heartbeat_lock_name, judge};
use sloth_sdk::well_known::HEARTBEAT_NAMESPACE;

/// Agents are looked at this often even when nothing changes.
const RESYNC: Duration = Duration::from_secs(30);

/// The reason of TaskRuns failed because their agent was lost.
pub const AGENT_LOST: &str = "AgentLost";

struct Ctx {
    agents: Api<AgentSpec>,
    taskruns: Api<TaskRunSpec>,
    grace: Duration,
    locks_api: Api<LockSpec>,
    locks: Store<LockSpec>,
}

/// Runs the agent-lifecycle controller until `shutdown`.
pub async fn run(client: Client, grace: Duration, shutdown: CancellationToken) {
    let agents: Api<AgentSpec> = Api::all(client.clone());
    let taskruns: Api<TaskRunSpec> = Api::all(client.clone());
    let locks_api: Api<LockSpec> = Api::namespaced(client, HEARTBEAT_NAMESPACE);
    let (locks, _) = spawn_reflector(
        &locks_api,
        HEARTBEAT_NAMESPACE,
        WatchParams::default(),
        shutdown.clone(),
    );
    let ctx = Arc::new(Ctx {
        agents: agents.clone(),
        taskruns,
        grace,
        locks_api: locks_api.clone(),
        locks,
    });
    Controller::new(agents, "", WatchParams::default())
        .observe(crate::metrics::global().controller("agent-lifecycle"))
        .watches(
            locks_api,
            HEARTBEAT_NAMESPACE,
            WatchParams::default(),
            |lock: &sloth_sdk::objects::Lock| {
                lock.name()
                    .strip_prefix("agent-")
                    .map(|agent| ObjectRef::new("", agent))
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, |_, _: &Error, _| Action::backoff(), ctx)
        .await;
}

async fn reconcile(agent: Arc<Agent>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let lock_name = heartbeat_lock_name(agent.name());
    let cached = ctx
        .locks
        .get(&ObjectRef::new(HEARTBEAT_NAMESPACE, lock_name.clone()));
    let mut verdict = judge(cached.as_deref(), chrono::Utc::now());
    let mut status = agent.status_or_default();
    if verdict.phase == AgentPhase::NotReady {
        // The lock cache may lag behind the agent's latest renewal (it is a
        // different watch from the one that triggered us): before declaring
        // or keeping an agent lost, ask the server.
        let fresh = match ctx.locks_api.get(&lock_name).await {
            Ok(lock) => Some(lock),
            Err(Error::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        verdict = judge(fresh.as_ref(), chrono::Utc::now());
    }
    if status.phase != verdict.phase {
        tracing::info!(agent = agent.name(), phase = ?verdict.phase, reason = verdict.reason, "agent phase");
        status.phase = verdict.phase;
        let ready = if verdict.phase == AgentPhase::Ready {
            "True"
        } else {
            "False"
        };
        status.conditions.retain(|c| c.type_ != "Ready");
        status.conditions.push(Condition {
            type_: "Ready".into(),
            status: ready.into(),
            reason: verdict.reason.into(),
            message: verdict.message.clone(),
            last_transition_time: Some(chrono::Utc::now()),
        });
        let mut updated = (*agent).clone();
        updated.status = Some(status.clone());
        match ctx.agents.update_status(&updated).await {
            Ok(_) | Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut lost_recheck = None;
    if let Some(since) = not_ready_since(&status) {
        let due = since + chrono::Duration::from_std(ctx.grace).unwrap_or_default();
        let now = chrono::Utc::now();
        if due <= now {
            fail_lost_taskruns(&ctx, agent.name(), since).await?;
        } else {
            lost_recheck = (due - now).to_std().ok();
        }
    }
    let recheck = verdict.recheck_after.or(lost_recheck).unwrap_or(RESYNC);
    Ok(Action::requeue(recheck.min(RESYNC)))
}

/// Since when the agent has been NotReady, by its Ready condition (the
/// lifecycle controller's own observation, so it survives the heartbeat
/// Lock being released or expired).
pub fn not_ready_since(
    status: &sloth_sdk::objects::AgentStatus,
) -> Option<chrono::DateTime<chrono::Utc>> {
    if status.phase != AgentPhase::NotReady {
        return None;
    }
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "False")
        .and_then(|c| c.last_transition_time)
}

/// Fails every unfinished TaskRun bound to `agent`. Compare-and-swap on
/// the copy read: a TaskRun that finished meanwhile keeps its result.
async fn fail_lost_taskruns(
    ctx: &Ctx,
    agent: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    let params = ListParams {
        field_selector: format!("spec.agentName={agent}"),
        ..ListParams::default()
    };
    let bound = ctx.taskruns.list(&params).await?;
    for tr in bound.items {
        let status = tr.status_or_default();
        if status.phase.is_terminal() || tr.spec.agent_name.as_deref() != Some(agent) {
            continue;
        }
        let mut next = tr.clone();
        next.status = Some(TaskRunStatus {
            phase: TaskRunPhase::Failed,
            reason: AGENT_LOST.into(),
            message: format!(
                "agent {agent} has been NotReady (no heartbeat) since {} and the grace \
                 period of {}s passed",
                since.to_rfc3339(),
                ctx.grace.as_secs()
            ),
            completion_time: Some(chrono::Utc::now()),
            ..status
        });
        match Api::<TaskRunSpec>::namespaced(ctx.taskruns.client().clone(), tr.namespace())
            .update_status(&next)
            .await
        {
            Ok(_) => tracing::info!(agent, taskrun = tr.name(), "taskrun failed: agent lost"),
            Err(Error::Conflict(_) | Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
