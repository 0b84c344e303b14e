//! Fencing: how long this agent's payloads may run on the strength of its
//! last heartbeat renewal.
//!
//! The heartbeat lease lasts `L` from a renewal. The agent stops its own
//! payloads (reason `LeaseLost`) at `renewal + 2L/3` if no later renewal
//! succeeded, and each run's supervisor process SIGKILLs its payload at
//! `renewal + 5L/6` on its own, which holds even when the agent itself is
//! frozen (SIGSTOP) or dead. The lease runs out at `renewal + L`, and the
//! controllers declare the agent lost only a grace period after that, so a
//! retry never starts while an earlier attempt can still run.
//!
//! Deadlines are points on CLOCK_BOOTTIME, which every process of the
//! machine shares and which keeps counting while the machine sleeps.

use std::time::Duration;

pub(crate) use sloth_supervisor::BootMs;
use tokio::sync::watch;

use crate::concurrency::{ActiveRuns, StopReason};

/// The fencing timeline of a heartbeat lease `L`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timeline {
    pub lease: Duration,
}

impl Timeline {
    pub(crate) fn new(lease: Duration) -> Self {
        Self { lease }
    }

    /// Renewals while all is well: every `L/3`.
    pub(crate) fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    /// Retries after a failed renewal: every `L/10`, at most 1 s apart.
    pub(crate) fn retry_every(&self) -> Duration {
        (self.lease / 10).min(Duration::from_secs(1))
    }

    /// The agent stops its payloads this long after its last renewal: `2L/3`.
    pub(crate) fn self_fence_after(&self) -> Duration {
        self.lease * 2 / 3
    }

    /// Each supervisor SIGKILLs its payload this long after the agent's last
    /// renewal: `5L/6`, still before the lease (`L`) runs out.
    pub(crate) fn kill_after(&self) -> Duration {
        self.lease * 5 / 6
    }
}

/// The deadlines that the last successful renewal grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deadlines {
    /// The agent stops its payloads (reason `LeaseLost`).
    pub self_fence: BootMs,
    /// The supervisors kill their payloads.
    pub kill: BootMs,
}

impl Deadlines {
    /// No lease held: everything is due at once.
    pub(crate) const NONE: Self = Self {
        self_fence: BootMs(0),
        kill: BootMs(0),
    };

    /// Never due (payloads run without a lease, in tests).
    #[cfg(test)]
    pub(crate) const NEVER: Self = Self {
        self_fence: BootMs::NEVER,
        kill: BootMs::NEVER,
    };

    /// The deadlines granted by a renewal sent at `sent` (taken before the
    /// request went out, so never later than the renewTime it wrote).
    pub(crate) fn granted(timeline: &Timeline, sent: BootMs) -> Self {
        Self {
            self_fence: sent.after(timeline.self_fence_after()),
            kill: sent.after(timeline.kill_after()),
        }
    }
}

/// The agent's current deadlines, shared by the heartbeat (which extends
/// them), the runs (which pass them to their supervisors) and the enforcer.
#[derive(Clone, Debug)]
pub(crate) struct Fence {
    timeline: Timeline,
    deadlines: watch::Sender<Deadlines>,
}

impl Fence {
    pub(crate) fn new(timeline: Timeline) -> Self {
        Self {
            timeline,
            deadlines: watch::Sender::new(Deadlines::NONE),
        }
    }

    pub(crate) fn timeline(&self) -> Timeline {
        self.timeline
    }

    /// Records a successful renewal sent at `sent`.
    pub(crate) fn renewed(&self, sent: BootMs) {
        let granted = Deadlines::granted(&self.timeline, sent);
        self.deadlines.send_if_modified(|current| {
            let later = granted.kill > current.kill;
            if later {
                *current = granted;
            }
            later
        });
    }

    /// The lease is given up (shutdown): nothing may run on it any more.
    pub(crate) fn revoke(&self) {
        self.deadlines.send_replace(Deadlines::NONE);
    }

    /// True while payloads may run: the self-fencing deadline is ahead.
    pub(crate) fn holds(&self) -> bool {
        !self.deadlines.borrow().self_fence.passed()
    }

    /// Follows the deadlines (for the supervisors of the runs).
    pub(crate) fn subscribe(&self) -> watch::Receiver<Deadlines> {
        self.deadlines.subscribe()
    }
}

/// Stops every run with reason `LeaseLost` whenever the self-fencing
/// deadline passes without a renewal; runs until the fence is dropped.
pub(crate) async fn enforce(mut deadlines: watch::Receiver<Deadlines>, runs: ActiveRuns) {
    loop {
        let due = deadlines.borrow_and_update().self_fence;
        if due.passed() {
            if runs.len() > 0 {
                tracing::error!(
                    "the heartbeat lease was not renewed in time: stopping {} running taskruns \
                     (reason LeaseLost) before the lease runs out",
                    runs.len()
                );
            }
            runs.stop_all(StopReason::LeaseLost);
            if deadlines.changed().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            changed = deadlines.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(due.remaining()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_orders_fence_kill_and_expiry() {
        for secs in [1, 3, 15, 3600] {
            let t = Timeline::new(Duration::from_secs(secs));
            assert!(t.renew_every() < t.self_fence_after(), "{secs}");
            assert!(t.self_fence_after() < t.kill_after(), "{secs}");
            assert!(t.kill_after() < t.lease, "{secs}");
            assert!(t.retry_every() <= t.renew_every(), "{secs}");
        }
        let t = Timeline::new(Duration::from_secs(15));
        assert_eq!(
            (t.renew_every(), t.self_fence_after(), t.kill_after()),
            (
                Duration::from_secs(5),
                Duration::from_secs(10),
                Duration::from_millis(12_500)
            )
        );
    }

    #[test]
    fn renewals_only_extend_the_deadlines() {
        let fence = Fence::new(Timeline::new(Duration::from_secs(3)));
        assert!(!fence.holds(), "no lease before the first renewal");
        let now = BootMs::now();
        fence.renewed(now);
        assert!(fence.holds());
        let d = *fence.subscribe().borrow();
        assert_eq!(d, Deadlines::granted(&fence.timeline(), now));
        fence.renewed(BootMs(now.0 - 1000));
        assert_eq!(
            *fence.subscribe().borrow(),
            d,
            "an older renewal is ignored"
        );
        fence.revoke();
        assert!(!fence.holds());
    }

    #[tokio::test]
    async fn a_passed_deadline_stops_the_runs_as_lease_lost() {
        let fence = Fence::new(Timeline::new(Duration::from_millis(300)));
        fence.renewed(BootMs::now());
        let runs = ActiveRuns::default();
        let (_guard, stopped) = runs
            .insert(crate::concurrency::RunKey::new("ns", "t"), "uid")
            .expect("insert");
        tokio::spawn(enforce(fence.subscribe(), runs.clone()));
        let mut stopped = stopped;
        tokio::time::timeout(Duration::from_secs(5), stopped.wait_for(Option::is_some))
            .await
            .expect("stopped in time")
            .expect("sender alive");
        assert_eq!(*stopped.borrow(), Some(StopReason::LeaseLost));
    }
}
