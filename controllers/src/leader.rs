//! Leader election through a Lock, so that several controller processes can
//! run and exactly one acts. The leader renews `sloth-system/<name>` every
//! lease/3; a candidate takes the Lock over once its lease has run out
//! without renewal. Every write is a compare-and-swap, so two candidates
//! can never both win the same term.

use std::future::Future;
use std::time::Duration;

use sloth_sdk::lease::{self, Acquire};
use sloth_sdk::objects::LockSpec;
use sloth_sdk::{Api, Client, Error};
use tokio_util::sync::CancellationToken;

use sloth_sdk::well_known::HEARTBEAT_NAMESPACE;

/// The Lock the controllers elect their leader with.
pub const CONTROLLERS_LOCK: &str = "sloth-controllers";

/// How long the controllers get to finish their reconciles in flight once
/// leadership ends (shutdown, or the lock lost) before they are aborted.
/// Every write they make is a compare-and-swap, so an aborted reconcile
/// leaves nothing half done; a short bound keeps a restart's downtime well
/// inside the agents' heartbeat lease and lets the next leader start soon.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Who competes for which Lock, and how long a term lasts without renewal.
#[derive(Clone, Debug)]
pub struct Election {
    pub lock_name: String,
    pub identity: String,
    pub lease: Duration,
}

impl Election {
    pub fn new(identity: impl Into<String>, lease: Duration) -> Self {
        Self {
            lock_name: CONTROLLERS_LOCK.to_string(),
            identity: identity.into(),
            lease: lease.max(Duration::from_secs(1)),
        }
    }

    fn lease_seconds(&self) -> u32 {
        u32::try_from(self.lease.as_secs()).unwrap_or(u32::MAX)
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// `hostname-pid`, unique enough among the processes of one cluster.
pub fn default_identity() -> String {
    format!("{}-{}", hostname(), std::process::id())
}

/// Outcome of one attempt to take or keep the Lock.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Leading,
    /// Someone else holds an unexpired lease.
    Following(String),
}

/// Competes for leadership until `shutdown`; while leading, runs `lead`
/// with a token that is cancelled when leadership is lost or on shutdown.
/// On shutdown the Lock is released so another candidate takes over at once.
pub async fn run_elected<F, Fut>(
    client: Client,
    election: Election,
    shutdown: CancellationToken,
    lead: F,
) where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let api: Api<LockSpec> = Api::namespaced(client, HEARTBEAT_NAMESPACE);
    let retry = election.lease / 3;
    let mut last_holder = String::new();
    while !shutdown.is_cancelled() {
        match try_acquire(&api, &election).await {
            Ok(Attempt::Leading) => {
                tracing::info!(identity = %election.identity, "became the leader");
                lead_while_renewing(&api, &election, &shutdown, &lead).await;
                tracing::info!(identity = %election.identity, "no longer the leader");
            }
            Ok(Attempt::Following(holder)) => {
                if holder != last_holder {
                    tracing::info!(leader = %holder, "following");
                    last_holder = holder;
                }
            }
            Err(e) => tracing::warn!(error = %e, "leader election: cannot read or write the lock"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(retry) => {}
        }
    }
    release(&api, &election).await;
}

async fn lead_while_renewing<F, Fut>(
    api: &Api<LockSpec>,
    election: &Election,
    shutdown: &CancellationToken,
    lead: &F,
) where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let term = shutdown.child_token();
    let work = tokio::spawn(lead(term.clone()));
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = term.cancelled() => break,
            _ = tokio::time::sleep(election.lease / 3) => {}
        }
        match try_acquire(api, election).await {
            Ok(Attempt::Leading) => last_renewal = tokio::time::Instant::now(),
            Ok(Attempt::Following(holder)) => {
                tracing::warn!(leader = %holder, "lost the lock to another candidate");
                break;
            }
            Err(e) => {
                // Stop acting before the lease can have run out elsewhere.
                if last_renewal.elapsed() + election.lease / 3 >= election.lease {
                    tracing::warn!(error = %e, "cannot renew the lock within the lease; stepping down");
                    break;
                }
                tracing::warn!(error = %e, "lock renewal failed; retrying");
            }
        }
    }
    term.cancel();
    stop_within(work, STOP_GRACE).await;
}

/// Waits for `work` to finish for up to `grace`, then aborts it (dropping
/// the controllers aborts their reconciles). Returns whether it finished
/// by itself.
async fn stop_within(mut work: tokio::task::JoinHandle<()>, grace: Duration) -> bool {
    if tokio::time::timeout(grace, &mut work).await.is_ok() {
        return true;
    }
    tracing::warn!(
        ?grace,
        "the controllers did not stop within the grace period; aborting their reconciles"
    );
    work.abort();
    // An aborted task ends at its next await point.
    let _ = work.await;
    false
}

async fn try_acquire(api: &Api<LockSpec>, election: &Election) -> Result<Attempt, Error> {
    let taken = lease::try_acquire(
        api,
        &election.lock_name,
        &election.identity,
        election.lease_seconds(),
    )
    .await;
    match taken {
        Ok(Acquire::Acquired(_)) => Ok(Attempt::Leading),
        Ok(Acquire::Held { holder, .. }) => Ok(Attempt::Following(holder)),
        // Another candidate kept winning the compare-and-swap.
        Err(Error::Conflict(_)) => Ok(Attempt::Following(String::new())),
        Err(e) => Err(e),
    }
}

/// Gives the Lock up (if still ours) so the next leader need not wait for
/// the lease to run out.
async fn release(api: &Api<LockSpec>, election: &Election) {
    match lease::release(api, &election.lock_name, &election.identity).await {
        Ok(true) => tracing::info!(identity = %election.identity, "released the leader lock"),
        Ok(false) => {}
        // The in-process controllers stop together with their server.
        Err(e) if e.is_unavailable() => {
            tracing::debug!(error = %e, "could not release the leader lock")
        }
        Err(e) => tracing::warn!(error = %e, "could not release the leader lock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn controllers_that_ignore_the_stop_are_aborted_after_the_grace() {
        let term = CancellationToken::new();
        let stuck = term.clone();
        // A reconcile that never returns, even when told to stop.
        let work = tokio::spawn(async move {
            stuck.cancelled().await;
            std::future::pending::<()>().await;
        });
        term.cancel();
        let started = tokio::time::Instant::now();
        assert!(!stop_within(work, STOP_GRACE).await);
        assert_eq!(started.elapsed(), STOP_GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn controllers_that_stop_by_themselves_are_waited_for() {
        let work = tokio::spawn(tokio::time::sleep(Duration::from_secs(1)));
        let started = tokio::time::Instant::now();
        assert!(stop_within(work, STOP_GRACE).await);
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}
