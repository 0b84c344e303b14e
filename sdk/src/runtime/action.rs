//! What a reconcile asks for next, and the default retry delay after errors.

use std::time::Duration;

pub use crate::backoff::Backoff;

/// What the controller does with an object after reconciling it.
///
/// Returned by the reconciler on success and by the error policy on failure.
/// Whatever it says, a trigger (an event on the object or a mapped secondary,
/// or a reconcile-all) still reconciles the object at once: level-triggered
/// reconcilers must not depend on a requeue to see changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reconcile again after this delay, e.g. to check a timeout.
    Requeue(Duration),
    /// Reconcile again only when something triggers it.
    AwaitChange,
    /// Reconcile again after the controller's [`ErrorBackoff`] for this
    /// object: it grows with each consecutive failure of the object and is
    /// reset when a reconcile of it succeeds. The usual error policy result.
    /// From a successful reconcile it means the first, shortest step.
    Backoff,
}

impl Action {
    /// Reconcile again after `delay`.
    pub const fn requeue(delay: Duration) -> Self {
        Self::Requeue(delay)
    }

    /// Reconcile again only when something triggers it.
    pub const fn await_change() -> Self {
        Self::AwaitChange
    }

    /// Reconcile again after this object's growing error backoff.
    pub const fn backoff() -> Self {
        Self::Backoff
    }
}

/// The delays of [`Action::Backoff`]: the sdk's one [`Backoff`], per
/// object (`delay(failures)`); the default is 1s doubling up to 5 minutes
/// with up to 20% jitter.
pub type ErrorBackoff = Backoff;
