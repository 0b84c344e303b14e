//! Sloth's controllers: they reconcile desired state through the API.

pub mod agent_gc;
pub mod cron;
pub mod due_queue;
pub mod events_ttl;
pub mod expiry;
pub mod gc;
pub mod leader;
pub mod lifecycle;
pub mod lock;
pub mod metrics;
pub mod relevant;
pub mod scheduler;
pub mod stack;
pub mod state_ttl;
pub mod taskrun_ttl;
pub mod workflow;
pub mod workflow_lifetime;

#[cfg(test)]
mod testing;

use std::time::Duration;

use sloth_sdk::Client;
use tokio_util::sync::CancellationToken;

/// What can be tuned about the controllers.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// How long after an agent's heartbeat lease ran out its unfinished
    /// TaskRuns are failed with reason AgentLost.
    pub agent_lost_grace: Duration,
    /// How long finished ad-hoc TaskRuns are kept (their
    /// `spec.ttlAfterFinished` overrides it).
    pub taskrun_ttl: Duration,
    /// How long an Agent may stay NotReady before it is deleted.
    pub agent_gc_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            agent_lost_grace: Duration::from_secs(10),
            taskrun_ttl: taskrun_ttl::DEFAULT_TASKRUN_TTL,
            agent_gc_after: agent_gc::DEFAULT_AGENT_GC_AFTER,
        }
    }
}

/// Runs every controller while this process is the elected leader, until
/// `shutdown`.
pub async fn run_elected(
    client: Client,
    election: leader::Election,
    settings: Settings,
    shutdown: CancellationToken,
) {
    let lead_client = client.clone();
    leader::run_elected(client, election, shutdown, move |term| {
        run_all(lead_client.clone(), settings, term)
    })
    .await;
}

/// Runs every controller until `shutdown` fires and they have finished.
pub async fn run_all(client: Client, settings: Settings, shutdown: CancellationToken) {
    tokio::join!(
        scheduler::controller::run(client.clone(), shutdown.clone()),
        lifecycle::controller::run(client.clone(), settings.agent_lost_grace, shutdown.clone()),
        workflow::controller::run(client.clone(), shutdown.clone()),
        lock::run(client.clone(), shutdown.clone()),
        gc::run(client.clone(), shutdown.clone()),
        taskrun_ttl::run(client.clone(), settings.taskrun_ttl, shutdown.clone()),
        events_ttl::run(client.clone(), shutdown.clone()),
        state_ttl::run(client.clone(), shutdown.clone()),
        cron::controller::run(client.clone(), shutdown.clone()),
        cron::gc::run(client.clone(), shutdown.clone()),
        agent_gc::run(client, settings.agent_gc_after, shutdown),
    );
}
