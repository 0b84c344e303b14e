//! CronWorkflow schedules: standard 5-field cron, 6 fields with seconds,
//! `@hourly`-style names (all parsed by `croner`) in an IANA timezone, and
//! `@every D`, which fires at the multiples of D since the Unix epoch so
//! that every controller computes the same instants.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::duration::Duration;

/// A schedule that could not be read, naming the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression cannot be parsed.
    #[error("invalid cron expression {expression:?}: {reason}")]
    Expression {
        /// The expression as given.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `spec.timezone` is no IANA timezone name.
    #[error("unknown timezone {0:?}: use an IANA name such as UTC or Europe/Paris")]
    Timezone(String),
}

impl ScheduleError {
    /// The spec field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Expression { .. } => "spec.schedule",
            Self::Timezone(_) => "spec.timezone",
        }
    }
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A cron expression (5 or 6 fields, or `@hourly`-style) read in a timezone.
    Cron {
        /// The parsed expression.
        cron: Box<croner::Cron>,
        /// The timezone its fields are read in.
        tz: Tz,
    },
    /// `@every D`: whole seconds, at least one.
    Every(u64),
}

const EVERY: &str = "@every";

/// Parses the timezone of a schedule; empty is UTC.
pub fn parse_timezone(name: &str) -> Result<Tz, ScheduleError> {
    if name.is_empty() {
        return Ok(Tz::UTC);
    }
    Tz::from_str(name).map_err(|_| ScheduleError::Timezone(name.to_string()))
}

impl Schedule {
    /// Parses `expression` in `timezone` (empty: UTC).
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let tz = parse_timezone(timezone)?;
        let bad = |reason: String| ScheduleError::Expression {
            expression: expression.to_string(),
            reason,
        };
        let text = expression.trim();
        if let Some(rest) = text.strip_prefix(EVERY) {
            let d = Duration::from_str(rest.trim()).map_err(|e| bad(e.to_string()))?;
            let d = d.as_std();
            if d.as_secs() == 0 || d.subsec_nanos() != 0 {
                return Err(bad(
                    "@every takes whole seconds, at least 1s (e.g. @every 30s)".into(),
                ));
            }
            return Ok(Self::Every(d.as_secs()));
        }
        if text.is_empty() {
            return Err(bad("empty".into()));
        }
        let fields = text.split_whitespace().count();
        if !text.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(bad(format!(
                "has {fields} fields: write 5 (minute hour day month weekday), 6 (seconds \
                 first), @hourly/@daily/@weekly/@monthly/@yearly or @every D"
            )));
        }
        let cron = croner::Cron::new(text)
            .with_seconds_optional()
            .parse()
            .map_err(|e| bad(e.to_string()))?;
        // A pattern that never matches (`0 0 30 2 *`) is refused here
        // rather than found out at every reconcile.
        if cron
            .find_next_occurrence(&Utc::now().with_timezone(&tz), false)
            .is_err()
        {
            return Err(bad("never matches a real time".into()));
        }
        Ok(Self::Cron {
            cron: Box::new(cron),
            tz,
        })
    }

    /// The first scheduled time strictly after `after`, in whole seconds.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every(every) => {
                let every = i64::try_from(*every).ok()?;
                let secs = after.timestamp();
                let next = (secs.div_euclid(every) + 1).checked_mul(every)?;
                Utc.timestamp_opt(next, 0).single()
            }
            Self::Cron { cron, tz } => {
                // croner works in whole seconds: from a fractional instant
                // start at its second, which is before `after`, so skip it.
                let floor = Utc.timestamp_opt(after.timestamp(), 0).single()?;
                cron.find_next_occurrence(&floor.with_timezone(tz), false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn next(expr: &str, tz: &str, after: &str) -> String {
        Schedule::parse(expr, tz)
            .expect("parses")
            .next_after(at(after))
            .expect("a next time")
            .to_rfc3339()
    }

    /// Each case: expression, timezone, after, the expected next time.
    fn assert_next(cases: &[(&str, &str, &str, &str)]) {
        for &(expr, tz, after, expected) in cases {
            assert_eq!(next(expr, tz, after), expected, "{expr:?} after {after}");
        }
    }

    #[test]
    fn five_fields_names_and_seconds() {
        assert_next(&[
            (
                "0 3 * * *",
                "",
                "2026-01-01T03:00:00Z",
                "2026-01-02T03:00:00+00:00",
            ),
            (
                "@hourly",
                "",
                "2026-01-01T03:00:00.5Z",
                "2026-01-01T04:00:00+00:00",
            ),
            (
                "*/5 * * * * *",
                "",
                "2026-01-01T03:00:02Z",
                "2026-01-01T03:00:05+00:00",
            ),
        ]);
    }

    #[test]
    fn timezone_is_applied() {
        // 03:00 in Paris in winter is 02:00 UTC.
        assert_eq!(
            next("0 3 * * *", "Europe/Paris", "2026-01-01T00:00:00Z"),
            "2026-01-01T02:00:00+00:00"
        );
    }

    #[test]
    fn every_is_aligned_to_the_epoch() {
        assert_next(&[
            (
                "@every 2s",
                "",
                "2026-01-01T00:00:01Z",
                "2026-01-01T00:00:02+00:00",
            ),
            (
                "@every 2s",
                "",
                "2026-01-01T00:00:02Z",
                "2026-01-01T00:00:04+00:00",
            ),
            (
                "@every 1h",
                "",
                "2026-01-01T00:30:00Z",
                "2026-01-01T01:00:00+00:00",
            ),
        ]);
    }

    #[test]
    fn bad_input_names_the_field() {
        for bad in [
            "",
            "61 * * * *",
            "* * *",
            "1 2 3 4 5 6 7",
            "@every 0s",
            "@every 1.5s",
            "@every",
            "@often",
            "0 0 30 2 *",
        ] {
            let e = Schedule::parse(bad, "").expect_err(bad);
            assert_eq!(e.field(), "spec.schedule", "{bad}: {e}");
        }
        let e = Schedule::parse("@hourly", "Mars/Olympus").expect_err("tz");
        assert_eq!(e.field(), "spec.timezone");
        assert!(e.to_string().contains("Mars/Olympus"));
    }
}
