//! What a [`Controller`](super::Controller) reports about its work, for
//! metrics: each reconcile's duration and outcome, and its queue's depth.

use std::time::Duration;

/// Receives a controller's measurements. Called on the controller's loop,
/// so implementations must be cheap (atomics, no allocation, no I/O).
pub trait ReconcileObserver: Send + Sync {
    /// One reconcile finished after `elapsed`; `failed` when it returned an
    /// error or panicked.
    fn reconciled(&self, elapsed: Duration, failed: bool);
    /// Objects waiting in the queue (scheduled, not yet handed out).
    fn queue_depth(&self, depth: usize);
}

/// Reports nothing: the default.
#[derive(Debug, Default)]
pub struct NoObserver;

impl ReconcileObserver for NoObserver {
    fn reconciled(&self, _elapsed: Duration, _failed: bool) {}
    fn queue_depth(&self, _depth: usize) {}
}
