//! Taking a Lock as a lease: the one mechanism behind leader election,
//! workflow task locks and Lua's `lock` module.
//!
//! A Lock is held by `spec.holderIdentity` until `leaseDurationSeconds`
//! after its last renewal (`renewTime`, else `acquireTime`). A Lock without
//! a holder, or whose lease has run out, is free: anyone may take it. Every
//! write is a compare-and-swap on the resourceVersion read, so two
//! candidates never both win the same term.

use chrono::{DateTime, Utc};

use crate::client::Api;
use crate::error::Error;
use crate::objects::{Lock, LockSpec};

/// The name of an agent's heartbeat Lock (in
/// [`SYSTEM_NAMESPACE`](crate::well_known::SYSTEM_NAMESPACE)).
pub fn heartbeat_lock_name(agent: &str) -> String {
    format!("agent-{agent}")
}

/// The lease assumed for a Lock that names a holder but no duration.
pub const DEFAULT_LEASE_SECONDS: u32 = 15;

/// How often a lost compare-and-swap is retried with a fresh read before
/// the conflict is returned.
const CONFLICT_ATTEMPTS: usize = 4;

/// The identity under which a TaskRun holds Locks: the task locks the
/// workflow controller takes for it and those its Lua code takes.
pub fn taskrun_holder(namespace: &str, taskrun: &str) -> String {
    format!("TaskRun/{namespace}/{taskrun}")
}

/// The holder of `lock`, if any (an empty identity is none).
pub fn holder(lock: &Lock) -> Option<&str> {
    lock.spec
        .holder_identity
        .as_deref()
        .filter(|h| !h.is_empty())
}

/// When the current holder's lease runs out: the last renewal (`renewTime`,
/// else `acquireTime`, else the Lock's creation) plus `leaseDurationSeconds`
/// ([`DEFAULT_LEASE_SECONDS`] when unset). None when nobody holds it.
pub fn expires_at(lock: &Lock) -> Option<DateTime<Utc>> {
    holder(lock)?;
    let since = lock
        .spec
        .renew_time
        .or(lock.spec.acquire_time)
        .or(lock.metadata.creation_timestamp)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let lease = lock
        .spec
        .lease_duration_seconds
        .unwrap_or(DEFAULT_LEASE_SECONDS);
    Some(
        since
            .checked_add_signed(chrono::Duration::seconds(i64::from(lease)))
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

/// Nobody holds `lock` at `now`: no holder, or the lease has run out.
pub fn is_free(lock: &Lock, now: DateTime<Utc>) -> bool {
    expires_at(lock).is_none_or(|expires| expires <= now)
}

/// The outcome of [`try_acquire`] (and of [`acquire_at`]).
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per call, returned at once: not worth a Box
pub enum Acquire {
    /// The Lock is ours: as written by [`try_acquire`], or as to be written
    /// from [`acquire_at`].
    Acquired(Lock),
    /// Someone else holds an unexpired lease.
    Held {
        /// Who holds it (`spec.holderIdentity`).
        holder: String,
        /// When the holder's lease runs out, if the Lock says.
        expires: Option<DateTime<Utc>>,
    },
}

/// The Lock `holder` would write at `now` to take or renew `lock` for
/// `lease_seconds`, or who holds it instead. Taking a free Lock sets
/// acquireTime and renewTime to `now` and counts a transition when the
/// holder changes; renewing keeps acquireTime.
pub fn acquire_at(lock: &Lock, holder_id: &str, lease_seconds: u32, now: DateTime<Utc>) -> Acquire {
    let current = holder(lock);
    let ours = current == Some(holder_id);
    if !ours && !is_free(lock, now) {
        return Acquire::Held {
            holder: current.unwrap_or_default().to_string(),
            expires: expires_at(lock),
        };
    }
    let mut next = lock.clone();
    next.spec.holder_identity = Some(holder_id.to_string());
    next.spec.lease_duration_seconds = Some(lease_seconds.max(1));
    next.spec.renew_time = Some(now);
    if ours {
        next.spec.acquire_time.get_or_insert(now);
    } else {
        next.spec.acquire_time = Some(now);
        next.spec.lease_transitions = lock.spec.lease_transitions.saturating_add(1);
    }
    Acquire::Acquired(next)
}

/// `lock` with its holder cleared (holderIdentity and renewTime), as a
/// release or an expiry writes it; leaseTransitions is kept.
pub fn cleared(lock: &Lock) -> Lock {
    let mut next = lock.clone();
    next.spec.holder_identity = None;
    next.spec.renew_time = None;
    next
}

/// Takes the Lock `name` for `holder` for `lease_seconds`, or renews it when
/// `holder` already holds it; creates it when missing. Returns who holds it
/// when someone else has an unexpired lease. A lost compare-and-swap is
/// retried a few times with a fresh read, then returned as the Conflict.
pub async fn try_acquire(
    api: &Api<LockSpec>,
    name: &str,
    holder: &str,
    lease_seconds: u32,
) -> Result<Acquire, Error> {
    retry_conflicts(name, || async move {
        let now = Utc::now();
        let current = match api.get(name).await {
            Ok(lock) => lock,
            Err(Error::NotFound(_)) => {
                let lock = Lock::new(
                    name,
                    LockSpec {
                        holder_identity: Some(holder.to_string()),
                        lease_duration_seconds: Some(lease_seconds.max(1)),
                        acquire_time: Some(now),
                        renew_time: Some(now),
                        lease_transitions: 0,
                    },
                );
                return match api.create(&lock).await {
                    Ok(created) => Ok(Attempt::Done(Acquire::Acquired(created))),
                    // Created meanwhile by someone else: read it.
                    Err(Error::AlreadyExists(message)) => Ok(Attempt::Retry(message)),
                    Err(e) => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let next = match acquire_at(&current, holder, lease_seconds, now) {
            Acquire::Acquired(next) => next,
            held @ Acquire::Held { .. } => return Ok(Attempt::Done(held)),
        };
        match api.replace(&next).await {
            Ok(written) => Ok(Attempt::Done(Acquire::Acquired(written))),
            Err(Error::Conflict(message) | Error::NotFound(message)) => Ok(Attempt::Retry(message)),
            Err(e) => Err(e),
        }
    })
    .await
}

/// One try of a compare-and-swap write from a fresh read.
enum Attempt<T> {
    Done(T),
    /// The write lost a race (the message says how): read again and retry.
    Retry(String),
}

/// Runs `attempt` until it is done, at most [`CONFLICT_ATTEMPTS`] times; then
/// the last lost race is returned as a Conflict on the Lock `name`.
async fn retry_conflicts<T, F, Fut>(name: &str, mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Attempt<T>, Error>>,
{
    let mut last = None;
    for _ in 0..CONFLICT_ATTEMPTS {
        match attempt().await? {
            Attempt::Done(done) => return Ok(done),
            Attempt::Retry(message) => last = Some(message),
        }
    }
    Err(Error::Conflict(last.unwrap_or_else(|| name.to_string())))
}

/// The outcome of [`renew`].
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per call, returned at once: not worth a Box
pub enum Renew {
    /// Still ours: the Lock as written with the new `renewTime`.
    Renewed(Lock),
    /// The lease is no longer the holder's, for this reason: the Lock was
    /// deleted, someone else holds it, or the lease ran out (so someone
    /// else may have held it meanwhile).
    Lost(String),
}

/// Renews `holder_id`'s lease of the Lock `name`, never (re)taking it: a
/// holder that lost its lease must stop what the Lock guards, not carry on
/// as if mutual exclusion had held all along.
pub async fn renew(
    api: &Api<LockSpec>,
    name: &str,
    holder_id: &str,
    lease_seconds: u32,
) -> Result<Renew, Error> {
    let lost =
        |why: String| -> Result<Attempt<Renew>, Error> { Ok(Attempt::Done(Renew::Lost(why))) };
    retry_conflicts(name, || async move {
        let now = Utc::now();
        let current = match api.get(name).await {
            Ok(lock) => lock,
            Err(Error::NotFound(_)) => return lost(format!("lock {name:?} was deleted")),
            Err(e) => return Err(e),
        };
        match holder(&current) {
            Some(h) if h == holder_id => {}
            Some(other) => return lost(format!("lock {name:?} is held by {other} now")),
            None => {
                return lost(format!(
                    "lock {name:?} was released (or expired) by someone else"
                ));
            }
        }
        if is_free(&current, now) {
            return lost(format!("the lease of lock {name:?} ran out"));
        }
        let next = match acquire_at(&current, holder_id, lease_seconds, now) {
            Acquire::Acquired(next) => next,
            Acquire::Held { holder, .. } => {
                return lost(format!("lock {name:?} is held by {holder} now"));
            }
        };
        match api.replace(&next).await {
            Ok(written) => Ok(Attempt::Done(Renew::Renewed(written))),
            Err(Error::NotFound(_)) => lost(format!("lock {name:?} was deleted")),
            Err(Error::Conflict(message)) => Ok(Attempt::Retry(message)),
            Err(e) => Err(e),
        }
    })
    .await
}

/// Gives the Lock `name` up when `holder` holds it: clears holderIdentity
/// and renewTime (compare-and-swap). True when released; false when it is
/// missing or held by someone else (an expired lease of `holder` that
/// nobody took yet is still released).
pub async fn release(api: &Api<LockSpec>, name: &str, holder_id: &str) -> Result<bool, Error> {
    retry_conflicts(name, || async move {
        let current = match api.get(name).await {
            Ok(lock) => lock,
            Err(Error::NotFound(_)) => return Ok(Attempt::Done(false)),
            Err(e) => return Err(e),
        };
        if holder(&current) != Some(holder_id) {
            return Ok(Attempt::Done(false));
        }
        match api.replace(&cleared(&current)).await {
            Ok(_) => Ok(Attempt::Done(true)),
            Err(Error::NotFound(_)) => Ok(Attempt::Done(false)),
            Err(Error::Conflict(message)) => Ok(Attempt::Retry(message)),
            Err(e) => Err(e),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("time")
    }

    fn lock(holder: Option<&str>, renewed: Option<i64>, lease: Option<u32>) -> Lock {
        Lock::new(
            "l",
            LockSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: lease,
                acquire_time: Some(at(0)),
                renew_time: renewed.map(at),
                lease_transitions: 3,
            },
        )
    }

    #[test]
    fn expiry_counts_from_the_last_renewal() {
        assert_eq!(
            expires_at(&lock(Some("a"), Some(10), Some(5))),
            Some(at(15))
        );
        // No renewal yet: from the acquisition.
        assert_eq!(expires_at(&lock(Some("a"), None, Some(5))), Some(at(5)));
        // No duration: the default lease.
        assert_eq!(
            expires_at(&lock(Some("a"), Some(10), None)),
            Some(at(10 + i64::from(DEFAULT_LEASE_SECONDS)))
        );
        assert_eq!(expires_at(&lock(None, Some(10), Some(5))), None);
        assert_eq!(expires_at(&lock(Some(""), Some(10), Some(5))), None);
    }

    #[test]
    fn free_without_a_holder_or_after_the_lease() {
        let held = lock(Some("a"), Some(10), Some(5));
        assert!(!is_free(&held, at(14)));
        assert!(is_free(&held, at(15)));
        assert!(is_free(&lock(None, None, Some(5)), at(0)));
    }

    #[test]
    fn takes_a_free_lock_with_a_transition() {
        let Acquire::Acquired(next) = acquire_at(&lock(Some("a"), Some(0), Some(5)), "b", 7, at(6))
        else {
            panic!("should be taken");
        };
        assert_eq!(next.spec.holder_identity.as_deref(), Some("b"));
        assert_eq!(next.spec.acquire_time, Some(at(6)));
        assert_eq!(next.spec.renew_time, Some(at(6)));
        assert_eq!(next.spec.lease_duration_seconds, Some(7));
        assert_eq!(next.spec.lease_transitions, 4);
    }

    #[test]
    fn renews_its_own_lock_without_a_transition() {
        let Acquire::Acquired(next) = acquire_at(&lock(Some("a"), Some(2), Some(5)), "a", 5, at(3))
        else {
            panic!("should be renewed");
        };
        assert_eq!(next.spec.acquire_time, Some(at(0)));
        assert_eq!(next.spec.renew_time, Some(at(3)));
        assert_eq!(next.spec.lease_transitions, 3);
    }

    #[test]
    fn reports_an_unexpired_holder() {
        assert_eq!(
            acquire_at(&lock(Some("a"), Some(2), Some(5)), "b", 5, at(3)),
            Acquire::Held {
                holder: "a".into(),
                expires: Some(at(7)),
            }
        );
    }

    #[test]
    fn clearing_keeps_the_transitions() {
        let c = cleared(&lock(Some("a"), Some(2), Some(5)));
        assert_eq!(c.spec.holder_identity, None);
        assert_eq!(c.spec.renew_time, None);
        assert_eq!(c.spec.lease_transitions, 3);
        assert!(is_free(&c, at(0)));
    }
}
