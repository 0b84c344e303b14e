//! Points on CLOCK_BOOTTIME, which every process of the machine shares and
//! which keeps counting while the machine sleeps: the agent and its
//! supervisors agree on deadlines without sharing anything but a number.

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// A point on CLOCK_BOOTTIME, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BootMs(pub u64);

impl BootMs {
    /// Never reached: a payload run without a lease behind it (tests).
    pub const NEVER: Self = Self(u64::MAX);

    pub fn now() -> Self {
        let now = clock_gettime(ClockId::CLOCK_BOOTTIME)
            .or_else(|_| clock_gettime(ClockId::CLOCK_MONOTONIC))
            .map(|t| {
                let secs = u64::try_from(t.tv_sec()).unwrap_or_default();
                let millis = u64::try_from(t.tv_nsec()).unwrap_or_default() / 1_000_000;
                secs.saturating_mul(1000).saturating_add(millis)
            });
        // Both clocks exist on every Linux; without them every deadline
        // reads as passed (fail safe: payloads stop).
        Self(now.unwrap_or(u64::MAX))
    }

    pub fn after(self, d: Duration) -> Self {
        let millis = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// How long until this point (zero once passed).
    pub fn remaining(self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(Self::now().0))
    }

    pub fn passed(self) -> bool {
        Self::now() >= self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_pass_in_order() {
        let now = BootMs::now();
        assert!(now.passed());
        assert!(!BootMs::NEVER.passed());
        assert!(!now.after(Duration::from_secs(60)).passed());
        assert!(now.after(Duration::from_secs(60)).remaining() > Duration::from_secs(50));
        assert_eq!(BootMs(0).remaining(), Duration::ZERO);
        assert_eq!(BootMs::NEVER.after(Duration::from_secs(1)), BootMs::NEVER);
    }
}
