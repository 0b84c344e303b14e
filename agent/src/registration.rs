//! The agent's own Agent object: created or updated at start (spec and
//! labels), and its status written by compare-and-swap.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use sloth_sdk::objects::{Agent, AgentPhase, AgentSpec, AgentStatus};
use sloth_sdk::well_known::{AGENT_LABEL, RESTRICTED_LABEL_PREFIX, STOP_ANNOTATION};
use sloth_sdk::{Api, Client, Condition, Error};

use crate::concurrency::Slots;
use crate::heartbeat::LastRenewal;
use crate::resources;

/// How often a lost compare-and-swap is retried with a fresh read.
const CONFLICT_ATTEMPTS: usize = 10;

/// What the agent writes into its Agent object.
#[derive(Clone, Debug)]
pub(crate) struct Registration {
    pub api: Api<AgentSpec>,
    pub name: String,
    pub address: String,
    pub capacity: u32,
    pub labels: BTreeMap<String, String>,
    pub work_dir: PathBuf,
    pub slots: Arc<Slots>,
    /// The last heartbeat renewal, reported as `lastHeartbeatTime`.
    pub renewed: LastRenewal,
}

impl Registration {
    pub(crate) fn new(
        client: Client,
        name: &str,
        address: String,
        capacity: u32,
        labels: BTreeMap<String, String>,
        work_dir: PathBuf,
        slots: Arc<Slots>,
    ) -> Self {
        Self {
            renewed: LastRenewal::default(),
            api: Api::all(client),
            name: name.to_string(),
            address,
            capacity,
            labels: with_agent_label(labels, name),
            work_dir,
            slots,
        }
    }

    /// Reports `renewed` as the status's `lastHeartbeatTime`.
    pub(crate) fn reporting(mut self, renewed: LastRenewal) -> Self {
        self.renewed = renewed;
        self
    }

    /// Creates the Agent object, or updates its address, capacity and labels;
    /// `spec.unschedulable` and taints stay as stored (they are the user's).
    pub(crate) async fn register(&self) -> Result<Agent, Error> {
        let mut last = None;
        for _ in 0..CONFLICT_ATTEMPTS {
            let outcome = match self.api.get(&self.name).await {
                Err(Error::NotFound(_)) => {
                    let mut agent = Agent::new(
                        &self.name,
                        AgentSpec {
                            address: self.address.clone(),
                            capacity: self.capacity,
                            ..AgentSpec::default()
                        },
                    );
                    agent.metadata.labels = self.labels.clone();
                    self.api.create(&agent).await
                }
                Ok(mut agent) => {
                    agent.spec.address = self.address.clone();
                    agent.spec.capacity = self.capacity;
                    agent.metadata.labels = with_restricted_of(&agent, &self.labels);
                    // A stop asked of an earlier run of this agent is done:
                    // this start is a new decision.
                    agent.metadata.annotations.remove(STOP_ANNOTATION);
                    self.api.replace(&agent).await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Err(e @ (Error::Conflict(_) | Error::AlreadyExists(_) | Error::NotFound(_))) => {
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| Error::Conflict(format!("agent {:?}", self.name))))
    }

    /// Writes the status: `phase`, running and allocatable counts, resources,
    /// version and the last heartbeat renewal; other fields (conditions) stay.
    pub(crate) async fn write_status(&self, phase: AgentPhase) -> Result<Agent, Error> {
        let mut last = None;
        for _ in 0..CONFLICT_ATTEMPTS {
            let mut agent = self.api.get(&self.name).await?;
            let running = self.slots.running();
            let resources = resources::snapshot(&self.work_dir);
            let status = agent.status.get_or_insert_with(AgentStatus::default);
            status.phase = phase;
            status.version = env!("CARGO_PKG_VERSION").to_string();
            status.running = running;
            status.allocatable = agent.spec.capacity.saturating_sub(running);
            status.resources = Some(resources);
            status.last_heartbeat_time = self.renewed.get().or(status.last_heartbeat_time);
            set_ready_condition(status, &self.name);
            match self.api.update_status(&agent).await {
                Err(e @ Error::Conflict(_)) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| Error::Conflict(format!("agent {:?}", self.name))))
    }
}

/// `labels` with [`AGENT_LABEL`] set to `name` (replacing a value given
/// on the command line); left out, with a warning, when `name` cannot be a
/// label value (longer than 63 characters).
fn with_agent_label(mut labels: BTreeMap<String, String>, name: &str) -> BTreeMap<String, String> {
    match sloth_sdk::validation::names::validate_label_value(name) {
        Ok(()) => {
            labels.insert(AGENT_LABEL.to_string(), name.to_string());
        }
        Err(e) => {
            tracing::warn!("agent name {name:?} cannot be the {AGENT_LABEL} label: {e}");
        }
    }
    labels
}

/// `labels` plus the restricted labels `stored` carries: admins and
/// operators set those, and the apiserver refuses an agent that would
/// remove them.
fn with_restricted_of(
    stored: &Agent,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = labels.clone();
    for (key, value) in &stored.metadata.labels {
        if key.starts_with(RESTRICTED_LABEL_PREFIX) {
            labels.insert(key.clone(), value.clone());
        }
    }
    labels
}

/// Keeps the `Ready` condition in line with the phase the agent writes
/// (the agent-lifecycle controller only rewrites it when the phase differs).
fn set_ready_condition(status: &mut AgentStatus, agent: &str) {
    let (value, reason, message) = match status.phase {
        AgentPhase::Ready => (
            "True",
            "AgentStarted",
            format!(
                "agent {agent} is running (sloth-agent {})",
                env!("CARGO_PKG_VERSION")
            ),
        ),
        _ => ("False", "AgentStopped", format!("agent {agent} shut down")),
    };
    if status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == value)
    {
        return;
    }
    status.conditions.retain(|c| c.type_ != "Ready");
    status.conditions.push(Condition {
        type_: "Ready".into(),
        status: value.into(),
        reason: reason.into(),
        message,
        last_transition_time: Some(chrono::Utc::now()),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registering_again_keeps_the_restricted_labels_an_admin_set() {
        let mut stored = Agent::new("build-1", AgentSpec::default());
        stored.metadata.labels = BTreeMap::from([
            (
                "restricted.sloth.dev/tier".to_string(),
                "secure".to_string(),
            ),
            ("old".to_string(), "x".to_string()),
        ]);
        let own = BTreeMap::from([("zone".to_string(), "a".to_string())]);
        let labels = with_restricted_of(&stored, &own);
        assert_eq!(labels["restricted.sloth.dev/tier"], "secure");
        assert_eq!(labels["zone"], "a");
        assert!(
            !labels.contains_key("old"),
            "other labels are the agent's own"
        );
    }

    #[test]
    fn the_agent_label_names_the_agent() {
        let given = BTreeMap::from([
            ("zone".to_string(), "a".to_string()),
            (AGENT_LABEL.to_string(), "other".to_string()),
        ]);
        let labels = with_agent_label(given, "build-1");
        assert_eq!(labels[AGENT_LABEL], "build-1");
        assert_eq!(labels["zone"], "a");
        assert_eq!(
            sloth_sdk::validation::names::validate_label_key(AGENT_LABEL),
            Ok(())
        );
        let long = "a".repeat(64);
        assert!(!with_agent_label(BTreeMap::new(), &long).contains_key(AGENT_LABEL));
    }

    #[test]
    fn ready_condition_follows_the_phase_and_keeps_its_transition_time() {
        let mut status = AgentStatus {
            phase: AgentPhase::Ready,
            ..AgentStatus::default()
        };
        set_ready_condition(&mut status, "a1");
        assert_eq!(status.conditions.len(), 1);
        let first = status.conditions[0].clone();
        assert_eq!(
            (first.status.as_str(), first.reason.as_str()),
            ("True", "AgentStarted")
        );
        set_ready_condition(&mut status, "a1");
        assert_eq!(status.conditions, vec![first]);
        status.phase = AgentPhase::NotReady;
        set_ready_condition(&mut status, "a1");
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(status.conditions[0].status, "False");
    }
}
