//! The agent-lifecycle controller: keeps each Agent's phase in line with
//! its heartbeat Lock.

use std::sync::Arc;
use std::time::Duration;

use sloth_sdk::meta::Condition;
use sloth_sdk::objects::{Agent, AgentPhase, AgentSpec, LockSpec};
use sloth_sdk::runtime::{Action, Controller, ObjectRef, Store, spawn_reflector};
use sloth_sdk::{Api, Client, Error, WatchParams};
use tokio_util::sync::CancellationToken;

use crate::lifecycle::{HEARTBEAT_NAMESPACE, heartbeat_lock_name, judge};

/// Agents are looked at this often even when nothing changes.
const RESYNC: Duration = Duration::from_secs(30);

struct Ctx {
    agents: Api<AgentSpec>,
    locks_api: Api<LockSpec>,
    locks: Store<LockSpec>,
}

/// Runs the agent-lifecycle controller until `shutdown`.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let agents: Api<AgentSpec> = Api::all(client.clone());
    let locks_api: Api<LockSpec> = Api::namespaced(client, HEARTBEAT_NAMESPACE);
    let (locks, _) = spawn_reflector(
        &locks_api,
        HEARTBEAT_NAMESPACE,
        WatchParams::default(),
        shutdown.clone(),
    );
    let ctx = Arc::new(Ctx {
        agents: agents.clone(),
        locks_api: locks_api.clone(),
        locks,
    });
    Controller::new(agents, "", WatchParams::default())
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
        updated.status = Some(status);
        match ctx.agents.update_status(&updated).await {
            Ok(_) | Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Action::requeue(
        verdict.recheck_after.unwrap_or(RESYNC).min(RESYNC),
    ))
}
