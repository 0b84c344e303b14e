//! Agent lifecycle: an agent is Ready while it keeps renewing its Lock
//! (`sloth-system/agent-NAME`), NotReady once the lease runs out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sloth_sdk::objects::{AgentPhase, Lock};

pub use sloth_sdk::lease::heartbeat_lock_name;

pub mod controller;

/// What the agent's phase should be, and when to look again.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub phase: AgentPhase,
    /// Why, for the Ready condition.
    pub reason: &'static str,
    pub message: String,
    /// When the verdict may change by itself (the lease running out).
    pub recheck_after: Option<Duration>,
}

/// Judges an agent by its heartbeat Lock at `now`.
pub fn judge(lock: Option<&Lock>, now: DateTime<Utc>) -> Verdict {
    let Some(lock) = lock else {
        return Verdict {
            phase: AgentPhase::NotReady,
            reason: "NoHeartbeat",
            message: "the agent has no heartbeat lock (never taken, or deleted)".into(),
            recheck_after: None,
        };
    };
    if lock
        .spec
        .holder_identity
        .as_deref()
        .is_none_or(str::is_empty)
    {
        // A release (at shutdown) clears renewTime with the holder; the lock
        // controller's expiry keeps renewTime.
        return match lock.spec.renew_time {
            None => Verdict {
                phase: AgentPhase::NotReady,
                reason: "HeartbeatReleased",
                message: "the agent released its heartbeat lock: it shut down".into(),
                recheck_after: None,
            },
            Some(renewed) => Verdict {
                phase: AgentPhase::NotReady,
                reason: "HeartbeatExpired",
                message: format!(
                    "no heartbeat since {}: the lease ran out",
                    renewed.to_rfc3339()
                ),
                recheck_after: None,
            },
        };
    }
    let lease = i64::from(lock.spec.lease_duration_seconds.unwrap_or(15));
    let Some(renewed) = lock.spec.renew_time.or(lock.spec.acquire_time) else {
        return Verdict {
            phase: AgentPhase::NotReady,
            reason: "NoHeartbeat",
            message: "the heartbeat lock was never renewed".into(),
            recheck_after: None,
        };
    };
    let expires = renewed + chrono::Duration::seconds(lease);
    if expires > now {
        let left = (expires - now).to_std().unwrap_or_default();
        Verdict {
            phase: AgentPhase::Ready,
            reason: "HeartbeatRenewed",
            message: format!("heartbeat renewed at {}", renewed.to_rfc3339()),
            recheck_after: Some(left + Duration::from_millis(100)),
        }
    } else {
        Verdict {
            phase: AgentPhase::NotReady,
            reason: "HeartbeatExpired",
            message: format!(
                "no heartbeat since {} (lease {lease}s)",
                renewed.to_rfc3339()
            ),
            recheck_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sloth_sdk::objects::LockSpec;

    fn lock(renewed_secs_ago: i64, lease: u32, now: DateTime<Utc>) -> Lock {
        Lock::new(
            "agent-a1",
            LockSpec {
                holder_identity: Some("a1".into()),
                lease_duration_seconds: Some(lease),
                renew_time: Some(now - chrono::Duration::seconds(renewed_secs_ago)),
                ..LockSpec::default()
            },
        )
    }

    #[test]
    fn ready_while_the_lease_holds_and_rechecks_at_expiry() {
        let now = Utc::now();
        let v = judge(Some(&lock(5, 15, now)), now);
        assert_eq!(v.phase, AgentPhase::Ready);
        let recheck = v.recheck_after.expect("recheck");
        assert!(recheck > Duration::from_secs(9) && recheck <= Duration::from_secs(11));
    }

    #[test]
    fn not_ready_after_the_lease_or_without_a_lock() {
        let now = Utc::now();
        let v = judge(Some(&lock(16, 15, now)), now);
        assert_eq!(v.phase, AgentPhase::NotReady);
        assert_eq!(v.reason, "HeartbeatExpired");
        let mut released = lock(1, 15, now);
        released.spec.holder_identity = None;
        released.spec.renew_time = None;
        let v = judge(Some(&released), now);
        assert_eq!(
            (v.phase, v.reason),
            (AgentPhase::NotReady, "HeartbeatReleased")
        );
        let mut expired = lock(20, 15, now);
        expired.spec.holder_identity = None;
        let v = judge(Some(&expired), now);
        assert_eq!(
            (v.phase, v.reason),
            (AgentPhase::NotReady, "HeartbeatExpired")
        );
        assert_eq!(judge(None, now).phase, AgentPhase::NotReady);
    }
}
