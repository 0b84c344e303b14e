//! What a reconcile asks for next, and the default retry delay after errors.

use std::time::Duration;

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

/// The delays of [`Action::Backoff`]: `initial`, doubling with each
/// consecutive failure of one object up to `max`, each stretched by a random
/// factor in `[1, 1 + jitter)` so that objects failing together (the
/// apiserver was down) do not retry in lockstep. The longest delay is thus
/// `max * (1 + jitter)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ErrorBackoff {
    pub initial: Duration,
    pub max: Duration,
    /// A fraction in `[0, 1]`; values outside are clamped.
    pub jitter: f64,
}

impl Default for ErrorBackoff {
    /// 1s, 2s, 4s, ... up to 5 minutes, with up to 20% jitter.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

impl ErrorBackoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            ..Self::default()
        }
    }

    pub fn with_jitter(self, jitter: f64) -> Self {
        Self { jitter, ..self }
    }

    /// The delay before the next attempt of an object that has already
    /// failed `failures` times in a row before this failure (0 on its first).
    pub fn delay(&self, failures: u32) -> Duration {
        let nominal = self.nominal(failures);
        let jitter = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        };
        let factor = 1.0 + jitter * fastrand::f64();
        // A huge `max` could overflow when stretched; then skip the jitter.
        Duration::try_from_secs_f64(nominal.as_secs_f64() * factor).unwrap_or(nominal)
    }

    /// The delay without jitter.
    pub fn nominal(&self, failures: u32) -> Duration {
        let growth = 1u32.checked_shl(failures).unwrap_or(u32::MAX);
        self.initial.saturating_mul(growth).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_up_to_the_cap() {
        let b = ErrorBackoff::new(SEC, 10 * SEC);
        let nominal: Vec<_> = (0..6).map(|n| b.nominal(n)).collect();
        assert_eq!(
            nominal,
            [SEC, 2 * SEC, 4 * SEC, 8 * SEC, 10 * SEC, 10 * SEC]
        );
        assert_eq!(b.nominal(u32::MAX), 10 * SEC);
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let b = ErrorBackoff::new(SEC, 60 * SEC).with_jitter(0.5);
        for failures in 0..8 {
            let nominal = b.nominal(failures);
            let delays: Vec<_> = (0..50).map(|_| b.delay(failures)).collect();
            for d in &delays {
                assert!(
                    *d >= nominal && *d < nominal.mul_f64(1.5),
                    "{d:?} vs {nominal:?}"
                );
            }
            // 50 equal draws from a continuous range would mean no jitter.
            assert!(delays.iter().any(|d| *d != delays[0]));
        }
    }

    #[test]
    fn odd_settings_do_not_panic() {
        let huge = ErrorBackoff::new(Duration::MAX, Duration::MAX).with_jitter(1.0);
        assert_eq!(huge.delay(40), Duration::MAX);
        let bad_jitter = ErrorBackoff::new(SEC, SEC).with_jitter(f64::NAN);
        assert_eq!(bad_jitter.delay(3), SEC);
        let negative = ErrorBackoff::new(SEC, SEC).with_jitter(-4.0);
        assert_eq!(negative.delay(0), SEC);
    }
}
