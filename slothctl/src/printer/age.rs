//! Ages and durations as kubectl prints them (`45s`, `3m20s`, `12m`, `5h`,
//! `3d`): k8s.io/apimachinery's `duration.HumanDuration`.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

/// Shown when a timestamp is missing.
pub(crate) const UNKNOWN: &str = "<unknown>";

/// A duration with two significant units at most, coarser as it grows.
pub(crate) fn human_duration(d: TimeDelta) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{years}y")
}

/// An RFC 3339 timestamp in JSON.
pub(crate) fn parse_time(value: Option<&Value>) -> Option<DateTime<Utc>> {
    let text = value?.as_str()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// How long ago `since` was, or `<unknown>`.
pub(crate) fn age(since: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    since.map_or_else(|| UNKNOWN.to_string(), |t| human_duration(now - t))
}

/// How long something ran: from `start` to `end`, or to `now` while it runs.
pub(crate) fn elapsed(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<String> {
    let start = start?;
    Some(human_duration(end.unwrap_or(now) - start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: i64) -> String {
        human_duration(TimeDelta::seconds(s))
    }

    #[test]
    fn ages_read_like_kubectl() {
        let (m, h, d) = (60, 3600, 86400);
        for (input, want) in [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (2 * m, "2m"),
            (3 * m + 20, "3m20s"),
            (12 * m, "12m"),
            (179 * m, "179m"),
            (3 * h, "3h"),
            (5 * h, "5h"),
            (5 * h + 30 * m, "5h30m"),
            (8 * h, "8h"),
            (47 * h, "47h"),
            (2 * d, "2d"),
            (3 * d, "3d"),
            (3 * d + 4 * h, "3d4h"),
            (8 * d, "8d"),
            (400 * d, "400d"),
            (2 * 365 * d, "2y"),
            (2 * 365 * d + 10 * d, "2y10d"),
            (9 * 365 * d, "9y"),
        ] {
            assert_eq!(secs(input), want, "{input}s");
        }
    }

    #[test]
    fn timestamps_become_ages() {
        let now = DateTime::parse_from_rfc3339("2025-01-01T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let t = parse_time(Some(&Value::from("2025-01-01T11:48:00Z")));
        assert_eq!(age(t, now), "12m");
        assert_eq!(age(None, now), UNKNOWN);
        assert_eq!(parse_time(Some(&Value::from("yesterday"))), None);
        let start = parse_time(Some(&Value::from("2025-01-01T11:59:00Z")));
        let end = parse_time(Some(&Value::from("2025-01-01T11:59:45Z")));
        assert_eq!(elapsed(start, end, now).as_deref(), Some("45s"));
        assert_eq!(elapsed(start, None, now).as_deref(), Some("60s"));
        assert_eq!(elapsed(None, end, now), None);
    }
}
