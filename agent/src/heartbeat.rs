//! Heartbeats: the Lock `sloth-system/agent-NAME` renewed every third of its
//! lease (compare-and-swap, created when missing), and the Agent status
//! refreshed every 30 s and whenever the number of running TaskRuns changes.

use std::time::Duration;

use chrono::Utc;
use sloth_sdk::objects::{AgentPhase, Lock, LockSpec};
use sloth_sdk::{Api, Client, Error};
use tokio_util::sync::CancellationToken;

use crate::config::{HEARTBEAT_NAMESPACE, heartbeat_lock_name};
use crate::registration::Registration;

/// How often the Agent status is refreshed without a change.
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// The least time between two status writes caused by running-count changes.
const STATUS_MIN_GAP: Duration = Duration::from_millis(250);

/// How often a lost compare-and-swap is retried at once with a fresh read.
const CONFLICT_ATTEMPTS: usize = 3;

/// The agent's heartbeat Lock.
#[derive(Debug)]
pub struct Heartbeat {
    api: Api<LockSpec>,
    agent: String,
    lock_name: String,
    lease_seconds: u32,
    /// The Lock as last written, for the next compare-and-swap.
    last: Option<Lock>,
}

impl Heartbeat {
    pub fn new(client: Client, agent: &str, lease_seconds: u32) -> Self {
        Self {
            api: Api::namespaced(client, HEARTBEAT_NAMESPACE),
            agent: agent.to_string(),
            lock_name: heartbeat_lock_name(agent),
            lease_seconds,
            last: None,
        }
    }

    /// Renews the lease now: takes the Lock over if another holder has it,
    /// creates it when it is missing.
    pub async fn renew(&mut self) -> Result<Lock, Error> {
        let mut last = None;
        for _ in 0..CONFLICT_ATTEMPTS {
            let current = match self.last.take() {
                Some(lock) => Some(lock),
                None => match self.api.get(&self.lock_name).await {
                    Ok(lock) => Some(lock),
                    Err(Error::NotFound(_)) => None,
                    Err(e) => return Err(e),
                },
            };
            let now = Utc::now();
            let outcome = match current {
                None => {
                    let lock = Lock::new(
                        &self.lock_name,
                        LockSpec {
                            holder_identity: Some(self.agent.clone()),
                            lease_duration_seconds: Some(self.lease_seconds),
                            acquire_time: Some(now),
                            renew_time: Some(now),
                            lease_transitions: 0,
                        },
                    );
                    self.api.create(&lock).await
                }
                Some(mut lock) => {
                    if lock.spec.holder_identity.as_deref() != Some(self.agent.as_str()) {
                        lock.spec.holder_identity = Some(self.agent.clone());
                        lock.spec.acquire_time = Some(now);
                        lock.spec.lease_transitions = lock.spec.lease_transitions.saturating_add(1);
                    }
                    lock.spec.acquire_time.get_or_insert(now);
                    lock.spec.lease_duration_seconds = Some(self.lease_seconds);
                    lock.spec.renew_time = Some(now);
                    self.api.replace(&lock).await
                }
            };
            match outcome {
                Ok(lock) => {
                    self.last = Some(lock.clone());
                    return Ok(lock);
                }
                // Someone else wrote it: read it again and retry.
                Err(e @ (Error::Conflict(_) | Error::AlreadyExists(_) | Error::NotFound(_))) => {
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Conflict(self.lock_name.clone())))
    }

    /// Renews every `every` until `stop`.
    pub async fn run(mut self, every: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.renew().await {
                tracing::warn!(lock = %self.lock_name, error = %e, "cannot renew the heartbeat lock");
            }
        }
    }

    /// Gives the lease up (at shutdown), so the agent shows NotReady at once;
    /// a Lock another holder has taken meanwhile is left alone.
    pub async fn release(&self) -> Result<(), Error> {
        for _ in 0..CONFLICT_ATTEMPTS {
            let lock = match self.api.get(&self.lock_name).await {
                Ok(lock) => lock,
                Err(Error::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            if lock.spec.holder_identity.as_deref() != Some(self.agent.as_str()) {
                return Ok(());
            }
            let deleted = self
                .api
                .client()
                .delete(
                    "Lock",
                    HEARTBEAT_NAMESPACE,
                    &self.lock_name,
                    Some(&lock.metadata.resource_version),
                )
                .await;
            match deleted {
                Ok(_) | Err(Error::NotFound(_)) => return Ok(()),
                // A renewal still in flight wrote it: read it again.
                Err(Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Refreshes the Agent status every [`STATUS_EVERY`] and when the running
/// count changes, until `stop`.
pub async fn refresh_status(registration: Registration, stop: CancellationToken) {
    let mut changes = registration.slots.subscribe();
    changes.mark_unchanged();
    let mut next_due = tokio::time::Instant::now() + STATUS_EVERY;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(next_due) => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                // Let a burst of starts and ends settle into one write.
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(STATUS_MIN_GAP) => {}
                }
                changes.mark_unchanged();
            }
        }
        next_due = tokio::time::Instant::now() + STATUS_EVERY;
        if let Err(e) = registration.write_status(AgentPhase::Ready).await {
            tracing::warn!(agent = %registration.name, error = %e, "cannot refresh the agent status");
        }
    }
}
