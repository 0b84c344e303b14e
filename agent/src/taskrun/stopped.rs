//! How a run stopped early (deleted, finalized, shutdown, lease or lock
//! lost) reads in its status.

use super::reason;
use crate::concurrency::StopReason;

pub(super) fn stop_message(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Deleted => "the TaskRun was deleted while it ran",
        StopReason::Finalized => "the TaskRun was finished elsewhere while it ran",
        StopReason::Shutdown => "the agent shut down while it ran",
        StopReason::LeaseLost => {
            "the agent could not renew its heartbeat lease in time, so it stopped its \
             payloads before the lease ran out (fencing)"
        }
        StopReason::LockLost => {
            "a lock it held (Lua lock module) was deleted, taken over or ran out, so it \
             was stopped: mutual exclusion no longer held"
        }
    }
}

/// The reason a run stopped for `why` is recorded with.
pub(super) fn stop_reason(why: StopReason) -> &'static str {
    match why {
        StopReason::LeaseLost => reason::LEASE_LOST,
        StopReason::LockLost => reason::LOCK_LOST,
        _ => reason::KILLED,
    }
}
