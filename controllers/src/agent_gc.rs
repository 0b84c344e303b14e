//! Agent garbage collection: an Agent that has been NotReady for
//! `--agent-gc-after` (default 24h), by its Ready condition's transition
//! time, is deleted, with its heartbeat Lock. A machine that comes back
//! registers again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sloth_sdk::objects::{Agent, AgentSpec, LockSpec};
use sloth_sdk::well_known::HEARTBEAT_NAMESPACE;
use sloth_sdk::{Api, Client, Error};
use tokio_util::sync::CancellationToken;

use crate::expiry;
use crate::gc::{Ttl, judge_due};
use crate::lifecycle::controller::not_ready_since;
use crate::lifecycle::heartbeat_lock_name;

/// How long an Agent may stay NotReady by default before it is deleted.
pub const DEFAULT_AGENT_GC_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The `--agent-gc-after` flag, one definition for `sloth-controllers` and
/// `sloth-apiserver --controllers`.
#[derive(clap::Args, Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentGcFlag {
    /// How long an Agent may stay NotReady (no heartbeat, or stopped)
    /// before it is deleted with its heartbeat Lock (with sloth-apiserver:
    /// when it runs --controllers).
    #[arg(long, default_value = "24h", value_parser = sloth_sdk::duration::parse_flag)]
    pub agent_gc_after: Duration,
}

/// Judges at `now` whether `agent` is due for deletion after `after`,
/// counted from its Ready condition's last transition to False (written by
/// the agent at shutdown or by the agent-lifecycle controller when its
/// lease ran out).
pub fn judge(agent: &Agent, after: Duration, now: DateTime<Utc>) -> Ttl {
    if agent.metadata.deletion_timestamp.is_some() {
        return Ttl::Keep;
    }
    match agent.status.as_ref().and_then(not_ready_since) {
        Some(since) => judge_due(after, since, now),
        None => Ttl::Keep,
    }
}

/// Deletes Agents NotReady for longer than `after` (and their heartbeat
/// Locks) until `shutdown`.
pub async fn run(client: Client, after: Duration, shutdown: CancellationToken) {
    expiry::run::<AgentSpec, _, _, _>(
        client,
        "agent-gc",
        move |agent, now| judge(agent, after, now),
        move |client, agent| async move {
            tracing::info!(
                agent = agent.name(),
                ?after,
                "deleted an agent NotReady past --agent-gc-after"
            );
            let locks: Api<LockSpec> = Api::namespaced(client, HEARTBEAT_NAMESPACE);
            match locks.delete(&heartbeat_lock_name(agent.name())).await {
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => tracing::warn!(
                    agent = agent.name(),
                    "cannot delete its heartbeat lock: {e}"
                ),
            }
        },
        shutdown,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{DAY, at};
    use sloth_sdk::Condition;
    use sloth_sdk::objects::{AgentPhase, AgentStatus};

    fn agent(phase: AgentPhase, ready: &str, since: i64) -> Agent {
        let mut agent = Agent::new("a1", AgentSpec::default());
        agent.status = Some(AgentStatus {
            phase,
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ready.into(),
                reason: "HeartbeatExpired".into(),
                message: String::new(),
                last_transition_time: Some(at(since)),
            }],
            ..AgentStatus::default()
        });
        agent
    }

    #[test]
    fn a_not_ready_agent_is_deleted_after_the_period() {
        let lost = agent(AgentPhase::NotReady, "False", 100);
        assert_eq!(judge(&lost, DAY, at(200)), Ttl::DueAt(at(86_500)));
        assert_eq!(judge(&lost, DAY, at(86_500)), Ttl::Delete);
    }

    #[test]
    fn ready_unknown_and_deleting_agents_are_kept() {
        assert_eq!(
            judge(&agent(AgentPhase::Ready, "True", 0), Duration::ZERO, at(10)),
            Ttl::Keep
        );
        let mut no_status = Agent::new("a1", AgentSpec::default());
        assert_eq!(judge(&no_status, Duration::ZERO, at(10)), Ttl::Keep);
        no_status.status = Some(AgentStatus {
            phase: AgentPhase::NotReady,
            ..AgentStatus::default()
        });
        assert_eq!(
            judge(&no_status, Duration::ZERO, at(10)),
            Ttl::Keep,
            "no transition time: nothing to count from"
        );
        let mut deleting = agent(AgentPhase::NotReady, "False", 0);
        deleting.metadata.deletion_timestamp = Some(at(1));
        assert_eq!(judge(&deleting, Duration::ZERO, at(10)), Ttl::Keep);
    }
}
