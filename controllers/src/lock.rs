//! The lock controller: a Lock whose holder stopped renewing it for
//! `leaseDurationSeconds` is expired, i.e. its holder is cleared, so that
//! `slothctl get locks` and every reader see it free.
//!
//! Expiry clears `holderIdentity` only: `renewTime` (and `acquireTime`,
//! `leaseTransitions`) are kept, so the Lock still tells when its last
//! lease ran out. The agent-lifecycle controller times the AgentLost grace
//! period from that renewal. A cleared holder is free for everyone
//! ([`sloth_sdk::lease::is_free`]): leader election takes it over, and an
//! agent's heartbeat takes its own Lock back at the next renewal.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sloth_sdk::lease;
use sloth_sdk::objects::{Lock, LockSpec};
use sloth_sdk::runtime::{Action, Controller};
use sloth_sdk::{Api, Client, Error, WatchParams};
use tokio_util::sync::CancellationToken;

/// Slack after a lease's end before it is expired, so that a renewal at the
/// last moment wins.
const SLACK: Duration = Duration::from_millis(100);

/// What to do with a Lock at some moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nobody holds it: nothing to do until it changes.
    Free,
    /// Held until this time: look again then.
    HeldUntil(DateTime<Utc>),
    /// Its holder's lease ran out: clear the holder.
    Expire { holder: String },
}

/// Judges `lock` at `now`.
pub fn judge(lock: &Lock, now: DateTime<Utc>) -> Verdict {
    let Some(expires) = lease::expires_at(lock) else {
        return Verdict::Free;
    };
    if expires <= now {
        Verdict::Expire {
            holder: lease::holder(lock).unwrap_or_default().to_string(),
        }
    } else {
        Verdict::HeldUntil(expires)
    }
}

/// `lock` as expiry writes it: no holder, the rest kept.
pub fn expired(lock: &Lock) -> Lock {
    let mut next = lock.clone();
    next.spec.holder_identity = None;
    next
}

/// When to look at a lock held until `expires` again, from `now`.
fn recheck(expires: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (expires - now).to_std().unwrap_or_default() + SLACK
}

struct Ctx {
    client: Client,
}

/// Runs the lock controller over the Locks of all namespaces until
/// `shutdown`.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let locks: Api<LockSpec> = Api::all(client.clone());
    Controller::new(locks, "", WatchParams::default())
        .observe(crate::metrics::global().controller("lock"))
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            |_, _: &Error, _| Action::backoff(),
            Arc::new(Ctx { client }),
        )
        .await;
}

async fn reconcile(lock: Arc<Lock>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let now = Utc::now();
    let holder = match judge(&lock, now) {
        Verdict::Free => return Ok(Action::await_change()),
        Verdict::HeldUntil(expires) => return Ok(Action::requeue(recheck(expires, now))),
        Verdict::Expire { holder } => holder,
    };
    let api: Api<LockSpec> = Api::namespaced(ctx.client.clone(), lock.namespace());
    // Compare-and-swap on the copy judged: a renewal that landed meanwhile
    // wins, and its event brings the Lock back here.
    match api.replace(&expired(&lock)).await {
        Ok(_) => {
            tracing::info!(
                lock = %format!("{}/{}", lock.namespace(), lock.name()),
                holder = %holder,
                expired_at = ?lease::expires_at(&lock).map(|t| t.to_rfc3339()),
                "lock expired: its holder stopped renewing it"
            );
            Ok(Action::await_change())
        }
        Err(Error::Conflict(_) | Error::NotFound(_)) => Ok(Action::await_change()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::at;

    fn lock(holder: Option<&str>, renewed: i64, lease: u32) -> Lock {
        Lock::new(
            "l",
            LockSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(lease),
                acquire_time: Some(at(0)),
                renew_time: Some(at(renewed)),
                lease_transitions: 2,
            },
        )
    }

    #[test]
    fn a_free_lock_is_left_alone() {
        assert_eq!(judge(&lock(None, 0, 5), at(100)), Verdict::Free);
    }

    #[test]
    fn a_held_lock_is_looked_at_again_at_its_expiry() {
        assert_eq!(
            judge(&lock(Some("a"), 10, 5), at(12)),
            Verdict::HeldUntil(at(15))
        );
        assert_eq!(recheck(at(15), at(12)), Duration::from_secs(3) + SLACK);
        // Already due by the time it is computed: at once (plus the slack).
        assert_eq!(recheck(at(15), at(16)), SLACK);
    }

    #[test]
    fn an_expired_lease_is_cleared_keeping_its_history() {
        let l = lock(Some("a"), 10, 5);
        assert_eq!(judge(&l, at(15)), Verdict::Expire { holder: "a".into() });
        let e = expired(&l);
        assert_eq!(e.spec.holder_identity, None);
        assert_eq!(e.spec.renew_time, Some(at(10)));
        assert_eq!(e.spec.acquire_time, Some(at(0)));
        assert_eq!(e.spec.lease_transitions, 2);
        assert_eq!(judge(&e, at(100)), Verdict::Free);
        assert!(lease::is_free(&e, at(11)));
    }
}
