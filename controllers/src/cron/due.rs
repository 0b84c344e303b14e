//! Which scheduled time, if any, a CronWorkflow runs now: a pure function
//! of its schedule, the last time it ran, the starting deadline and now,
//! as Kubernetes' CronJob controller decides it.
//!
//! - The times considered are those after the last scheduled run (or the
//!   object's creation) up to now.
//! - Only the latest of them runs; earlier ones are missed (an Event
//!   says so).
//! - The latest is skipped when it is later than `startingDeadline`, or
//!   when more than [`MAX_MISSED`] were missed (the controllers were down
//!   far longer than the schedule's period).

use chrono::{DateTime, Utc};
use sloth_sdk::schedule::Schedule;

/// More missed times than this are not caught up at all.
pub const MAX_MISSED: usize = 100;

/// Scheduled times looked at per window while searching backwards for the
/// latest one.
const WINDOW_STEPS: usize = 1000;

/// What to do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Due {
    /// No scheduled time has come since the last.
    Nothing,
    /// Run the time `at`; `missed` earlier times are not run.
    Run { at: DateTime<Utc>, missed: usize },
    /// The latest time `at` is not run: too late for the starting deadline.
    TooLate { at: DateTime<Utc> },
    /// More than [`MAX_MISSED`] times were missed: none runs; `at` is the
    /// latest.
    TooManyMissed { at: DateTime<Utc> },
}

/// Decides what is due at `now` for a schedule last run at `since`.
pub fn decide(
    schedule: &Schedule,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    deadline: Option<std::time::Duration>,
) -> Due {
    let Some((at, count)) = latest(schedule, since, now) else {
        return Due::Nothing;
    };
    if count > MAX_MISSED + 1 {
        return Due::TooManyMissed { at };
    }
    if let Some(deadline) = deadline {
        let deadline = chrono::Duration::from_std(deadline).unwrap_or(chrono::Duration::MAX);
        if at.checked_add_signed(deadline).is_some_and(|end| end < now) {
            return Due::TooLate { at };
        }
    }
    Due::Run {
        at,
        missed: count - 1,
    }
}

/// The latest scheduled time in `(since, now]` and how many there are
/// (counted up to `MAX_MISSED + 2`, then "more").
pub fn latest(
    schedule: &Schedule,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, usize)> {
    let mut count = 0;
    let mut last = None;
    let mut t = since;
    while count <= MAX_MISSED + 1 {
        match schedule.next_after(t) {
            Some(next) if next <= now => {
                count += 1;
                last = Some(next);
                t = next;
            }
            _ => return last.map(|at| (at, count)),
        }
    }
    // Far too many to walk: look for the latest in growing windows ending
    // at now.
    let mut window = chrono::Duration::seconds(60);
    loop {
        let start = (now - window).max(t);
        let mut found = None;
        let mut cursor = start;
        for _ in 0..WINDOW_STEPS {
            match schedule.next_after(cursor) {
                Some(next) if next <= now => {
                    found = Some(next);
                    cursor = next;
                }
                _ => break,
            }
        }
        if let Some(at) = found {
            return Some((at, count));
        }
        if start <= t {
            return last.map(|at| (at, count));
        }
        window = window * 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("time")
    }

    fn every(s: &str) -> Schedule {
        Schedule::parse(s, "").expect("schedule")
    }

    /// `decide` for `@every 10s`, the times in seconds from `at(0)`.
    fn every_10s(since: i64, now: i64, deadline: Option<Duration>) -> Due {
        decide(&every("@every 10s"), at(since), at(now), deadline)
    }

    fn run_at(secs: i64, missed: usize) -> Due {
        Due::Run {
            at: at(secs),
            missed,
        }
    }

    #[test]
    fn nothing_before_the_first_time() {
        assert_eq!(every_10s(0, 9, None), Due::Nothing);
    }

    #[test]
    fn the_time_that_came_runs() {
        assert_eq!(every_10s(0, 12, None), run_at(10, 0));
        // Once run (since = 10), nothing until 20.
        assert_eq!(every_10s(10, 19, None), Due::Nothing);
    }

    #[test]
    fn only_the_latest_of_several_missed_runs() {
        assert_eq!(every_10s(0, 55, None), run_at(50, 4));
    }

    #[test]
    fn a_run_later_than_the_deadline_is_skipped() {
        let d = Some(Duration::from_secs(3));
        assert_eq!(every_10s(0, 12, d), run_at(10, 0));
        assert_eq!(every_10s(0, 14, d), Due::TooLate { at: at(10) });
    }

    #[test]
    fn too_many_missed_are_all_skipped_and_the_latest_is_found() {
        // 1000 missed seconds: more than MAX_MISSED.
        let due = decide(&every("* * * * * *"), at(0), at(1000), None);
        assert_eq!(due, Due::TooManyMissed { at: at(1000) });
        let due = decide(&every("@every 1s"), at(0), at(1000), None);
        assert_eq!(due, Due::TooManyMissed { at: at(1000) });
        // Exactly MAX_MISSED missed (MAX_MISSED + 1 times): the latest runs.
        let n = i64::try_from(MAX_MISSED).expect("small") + 1;
        assert_eq!(
            decide(&every("@every 1s"), at(0), at(n), None),
            run_at(n, MAX_MISSED)
        );
    }

    #[test]
    fn the_latest_of_a_sparse_schedule_after_many_misses() {
        // Every minute from 09:00 to 09:59 only: after days of downtime
        // the latest is found by the widening backward search.
        let s = every("* 9 * * *");
        let time = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("t")
                .with_timezone(&Utc)
        };
        let (since, now) = (time("2026-01-01T00:00:00Z"), time("2026-01-05T12:00:00Z"));
        let (latest, count) = latest(&s, since, now).expect("some");
        assert_eq!(latest.to_rfc3339(), "2026-01-05T09:59:00+00:00");
        assert!(count > MAX_MISSED);
    }
}
