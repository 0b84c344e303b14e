//! Retry policy (pure): whether a failed attempt is retried, and after how long.

use std::time::Duration;

use sloth_sdk::objects::workflow::{RetryOn, RetryPolicy};

/// TaskRun reasons that mean the agent went away under the task.
pub const AGENT_LOST_REASONS: &[&str] = &["AgentLost", "AgentRestarted", "LeaseLost"];

/// The growth factor of the backoff when `factor` is not given.
pub const DEFAULT_FACTOR: f64 = 2.0;

/// Whether attempt number `attempt` (1-based), which failed with `reason`,
/// is followed by another.
pub fn retries(policy: Option<&RetryPolicy>, attempt: u32, reason: &str) -> bool {
    let Some(policy) = policy else {
        return false;
    };
    let wanted = match policy.retry_on {
        RetryOn::OnFailure => true,
        RetryOn::OnAgentLost => AGENT_LOST_REASONS.contains(&reason),
    };
    wanted && attempt <= policy.limit
}

/// How long after attempt `attempt` (1-based) failed the next one starts:
/// `duration * factor^(attempt-1)`, at most `max` (and at most a day, beyond
/// any sensible backoff); at once without a backoff.
pub fn delay(policy: Option<&RetryPolicy>, attempt: u32) -> Duration {
    let Some(backoff) = policy.and_then(|p| p.backoff.as_ref()) else {
        return Duration::ZERO;
    };
    let factor = backoff
        .factor
        .filter(|f| f.is_finite() && *f >= 1.0)
        .unwrap_or(DEFAULT_FACTOR);
    let max = backoff.max.map_or(DAY, |max| max.as_std().min(DAY));
    sloth_sdk::backoff::Backoff::fixed(backoff.duration.as_std().min(DAY), max)
        .with_factor(factor)
        .nominal(attempt.saturating_sub(1))
}

const DAY: Duration = Duration::from_secs(86_400);

#[cfg(test)]
mod tests {
    use super::*;
    use sloth_sdk::duration::Duration as SpecDuration;
    use sloth_sdk::objects::workflow::Backoff;

    fn policy(limit: u32, retry_on: RetryOn, backoff: Option<Backoff>) -> RetryPolicy {
        RetryPolicy {
            limit,
            backoff,
            retry_on,
        }
    }

    fn secs(s: u64) -> SpecDuration {
        SpecDuration::from(Duration::from_secs(s))
    }

    #[test]
    fn limit_counts_retries_after_the_first_attempt() {
        let p = policy(2, RetryOn::OnFailure, None);
        assert!(retries(Some(&p), 1, "Error"));
        assert!(retries(Some(&p), 2, "TimedOut"));
        assert!(!retries(Some(&p), 3, "Error"));
        assert!(!retries(None, 1, "Error"));
    }

    #[test]
    fn on_agent_lost_retries_only_lost_agents() {
        let p = policy(3, RetryOn::OnAgentLost, None);
        assert!(retries(Some(&p), 1, "AgentLost"));
        assert!(retries(Some(&p), 1, "AgentRestarted"));
        assert!(retries(Some(&p), 1, "LeaseLost"));
        assert!(!retries(Some(&p), 1, "Error"));
        assert!(!retries(Some(&p), 1, "TimedOut"));
    }

    #[test]
    fn backoff_grows_by_factor_up_to_max() {
        let p = policy(
            10,
            RetryOn::OnFailure,
            Some(Backoff {
                duration: secs(1),
                factor: Some(3.0),
                max: Some(secs(20)),
            }),
        );
        let schedule: Vec<u64> = (1..=5).map(|a| delay(Some(&p), a).as_secs()).collect();
        assert_eq!(schedule, [1, 3, 9, 20, 20]);
        let doubling = policy(
            10,
            RetryOn::OnFailure,
            Some(Backoff {
                duration: secs(2),
                factor: None,
                max: None,
            }),
        );
        let schedule: Vec<u64> = (1..=4)
            .map(|a| delay(Some(&doubling), a).as_secs())
            .collect();
        assert_eq!(schedule, [2, 4, 8, 16]);
        assert_eq!(
            delay(Some(&policy(1, RetryOn::OnFailure, None)), 1),
            Duration::ZERO
        );
        assert_eq!(
            delay(Some(&doubling), u32::MAX),
            Duration::from_secs(86_400)
        );
    }
}
