//! Heartbeats: the Lock `sloth-system/agent-NAME`, held by this agent's
//! instance id and renewed every third of its lease (compare-and-swap,
//! created when missing), each success extending the fencing deadlines;
//! and the Agent status refreshed every 30 s and whenever the number of
//! running TaskRuns changes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sloth_sdk::lease::{self, Acquire};
use sloth_sdk::objects::{AgentPhase, Lock, LockSpec};
use sloth_sdk::{Api, Client, Error};
use tokio_util::sync::CancellationToken;

use crate::config::heartbeat_lock_name;
use crate::fence::{BootMs, Fence};
use crate::registration::Registration;
use sloth_sdk::well_known::HEARTBEAT_NAMESPACE;

/// How often the Agent status is refreshed without a change.
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// The least time between two status writes caused by running-count changes.
const STATUS_MIN_GAP: Duration = Duration::from_millis(250);

/// How often a lost compare-and-swap is retried at once with a fresh read.
const CONFLICT_ATTEMPTS: usize = 3;

/// Why the heartbeat lease could not be renewed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RenewError {
    /// Another live instance holds the lease of this agent's name.
    #[error(
        "the heartbeat lock {HEARTBEAT_NAMESPACE}/{lock} is held by another instance, \
         {holder:?}, until {}", expires.map_or_else(|| "(unknown)".to_string(), |t| t.to_rfc3339())
    )]
    Held {
        lock: String,
        holder: String,
        expires: Option<DateTime<Utc>>,
    },
    #[error(transparent)]
    Api(#[from] Error),
}

/// When the heartbeat lease was last renewed (the `renewTime` written), for
/// the Agent status's `lastHeartbeatTime`. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub(crate) struct LastRenewal(Arc<Mutex<Option<DateTime<Utc>>>>);

impl LastRenewal {
    pub(crate) fn get(&self) -> Option<DateTime<Utc>> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, at: Option<DateTime<Utc>>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }
}

/// The agent's heartbeat Lock.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    api: Api<LockSpec>,
    agent: String,
    /// This process's holder identity: the agent's instance id.
    instance: String,
    lock_name: String,
    lease_seconds: u32,
    /// The Lock as last written, for the next compare-and-swap.
    last: Option<Lock>,
    renewed: LastRenewal,
}

impl Heartbeat {
    pub(crate) fn new(
        client: Client,
        agent: &str,
        instance: &str,
        lease_seconds: u32,
        renewed: LastRenewal,
    ) -> Self {
        Self {
            renewed,
            api: Api::namespaced(client, HEARTBEAT_NAMESPACE),
            agent: agent.to_string(),
            instance: instance.to_string(),
            lock_name: heartbeat_lock_name(agent),
            lease_seconds,
            last: None,
        }
    }

    pub(crate) fn agent(&self) -> &str {
        &self.agent
    }

    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    /// Takes or renews the lease now; creates the Lock when it is missing.
    /// Refuses when another instance holds an unexpired lease (a Lock held
    /// under the bare agent name, as agents before instance ids wrote it,
    /// is taken over).
    pub(crate) async fn renew(&mut self) -> Result<Lock, RenewError> {
        let mut last = None;
        for _ in 0..CONFLICT_ATTEMPTS {
            let current = match self.last.take() {
                Some(lock) => Some(lock),
                None => match self.api.get(&self.lock_name).await {
                    Ok(lock) => Some(lock),
                    Err(Error::NotFound(_)) => None,
                    Err(e) => return Err(e.into()),
                },
            };
            let now = Utc::now();
            let outcome = match current {
                None => {
                    let lock = Lock::new(
                        &self.lock_name,
                        LockSpec {
                            holder_identity: Some(self.instance.clone()),
                            lease_duration_seconds: Some(self.lease_seconds),
                            acquire_time: Some(now),
                            renew_time: Some(now),
                            lease_transitions: 0,
                        },
                    );
                    self.api.create(&lock).await
                }
                Some(mut lock) => {
                    if lease::holder(&lock) == Some(self.agent.as_str()) {
                        lock.spec.holder_identity = None;
                    }
                    match lease::acquire_at(&lock, &self.instance, self.lease_seconds, now) {
                        Acquire::Acquired(next) => self.api.replace(&next).await,
                        Acquire::Held { holder, expires } => {
                            return Err(RenewError::Held {
                                lock: self.lock_name.clone(),
                                holder,
                                expires,
                            });
                        }
                    }
                }
            };
            match outcome {
                Ok(lock) => {
                    self.renewed.set(lock.spec.renew_time);
                    self.last = Some(lock.clone());
                    return Ok(lock);
                }
                // Someone else wrote it: read it again and retry.
                Err(e @ (Error::Conflict(_) | Error::AlreadyExists(_) | Error::NotFound(_))) => {
                    last = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .unwrap_or_else(|| Error::Conflict(self.lock_name.clone()))
            .into())
    }

    /// Renews every third of the lease (sooner after a failure), extending
    /// `fence` with each success, until `stop`. Cancels `superseded` and
    /// returns when another instance has taken the lease.
    pub(crate) async fn run(
        mut self,
        fence: Fence,
        stop: CancellationToken,
        superseded: CancellationToken,
    ) {
        let timeline = fence.timeline();
        let mut wait = timeline.renew_every();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            // Taken before the request: never later than the renewTime written.
            let sent = BootMs::now();
            let started = std::time::Instant::now();
            let renewed = tokio::time::timeout(timeline.renew_every(), self.renew()).await;
            wait = timeline.retry_every();
            match renewed {
                Ok(Ok(_)) => {
                    crate::metrics::global().renewed(started.elapsed());
                    fence.renewed(sent);
                    wait = timeline.renew_every();
                }
                Ok(Err(e @ RenewError::Held { .. })) => {
                    tracing::error!(lock = %self.lock_name, "lost the heartbeat lease: {e}");
                    superseded.cancel();
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(lock = %self.lock_name, error = %e, "cannot renew the heartbeat lock");
                }
                Err(_) => {
                    self.last = None;
                    tracing::warn!(lock = %self.lock_name, "cannot renew the heartbeat lock: no answer in time");
                }
            }
        }
    }

    /// Gives the lease up (at shutdown), so the agent shows NotReady at
    /// once: clears the holder, keeping the Lock (a Lock another instance
    /// has taken meanwhile is left alone).
    pub(crate) async fn release(&self) -> Result<(), Error> {
        lease::release(&self.api, &self.lock_name, &self.instance).await?;
        Ok(())
    }
}

/// Refreshes the Agent status every [`STATUS_EVERY`] and when the running
/// count changes, until `stop`.
pub(crate) async fn refresh_status(registration: Registration, stop: CancellationToken) {
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
