//! Durations written as Go/Kubernetes strings: `250ms`, `30s`, `5m`, `1h30m`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration with a human-readable text form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

/// A duration string that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected e.g. 500ms, 30s, 5m, 1h30m)")]
pub struct ParseDurationError {
    input: String,
    reason: &'static str,
}

impl Duration {
    /// Whole seconds.
    pub fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// The standard library's duration.
    pub fn as_std(self) -> std::time::Duration {
        self.0
    }
}

/// Parses a duration flag (`--history 5m`) for clap's `value_parser`.
pub fn parse_flag(text: &str) -> Result<std::time::Duration, String> {
    text.parse::<Duration>()
        .map(Duration::as_std)
        .map_err(|e| e.to_string())
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Self(d)
    }
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseDurationError {
            input: input.to_string(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s == "0" {
            return Ok(Self::default());
        }
        let mut total = std::time::Duration::ZERO;
        let mut rest = s;
        // Units from the largest down, each at most once (`1h30m`, never
        // `1h1h` or `30m1h`), as a reader would expect to read them.
        let mut smallest_so_far = u64::MAX;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| err("missing unit"))?;
            if digits == 0 {
                return Err(err("expected a number"));
            }
            let number = &rest[..digits];
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit_nanos: u64 = match &rest[..unit_len] {
                "ns" => 1,
                "us" | "µs" => 1_000,
                "ms" => 1_000_000,
                "s" => NANOS_PER_SEC,
                "m" => 60 * NANOS_PER_SEC,
                "h" => 3600 * NANOS_PER_SEC,
                "d" => 86400 * NANOS_PER_SEC,
                _ => return Err(err("unknown unit")),
            };
            if unit_nanos >= smallest_so_far {
                return Err(err(
                    "units must go from the largest down, each at most once",
                ));
            }
            smallest_so_far = unit_nanos;
            rest = &rest[unit_len..];
            let part = scaled(number, unit_nanos).map_err(err)?;
            total = total.checked_add(part).ok_or_else(|| err("out of range"))?;
        }
        if total > MAX.0 {
            return Err(err("longer than the 30 days (720h) a duration may be"));
        }
        Ok(Self(total))
    }
}

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The longest duration accepted anywhere (timeouts, backoffs, flags):
/// 30 days. Longer values are typos or overflow attempts, and timers that
/// long outlive any process that set them.
pub const MAX: Duration = Duration(std::time::Duration::from_secs(30 * 86400));

/// `number` (digits with at most one `.`) times `unit_nanos` nanoseconds.
/// The whole part is exact integer arithmetic (an `f64` would round large
/// values, so that printed durations did not read back the same); only the
/// fraction goes through floating point, below one unit.
fn scaled(number: &str, unit_nanos: u64) -> Result<std::time::Duration, &'static str> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err("bad number");
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse::<u64>().map_err(|_| "out of range")?.into()
    };
    let fraction_nanos: u128 = if fraction.is_empty() {
        0
    } else {
        let fraction: f64 = format!("0.{fraction}").parse().map_err(|_| "bad number")?;
        // In [0, unit_nanos]; `as` saturates, it cannot wrap.
        (fraction * unit_nanos as f64).round() as u128
    };
    let nanos = whole * u128::from(unit_nanos) + fraction_nanos;
    let secs = u64::try_from(nanos / u128::from(NANOS_PER_SEC)).map_err(|_| "out of range")?;
    // The remainder is below 10^9, so it fits a u32.
    let subsec = (nanos % u128::from(NANOS_PER_SEC)) as u32;
    Ok(std::time::Duration::new(secs, subsec))
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        if d.subsec_nanos() != 0 {
            if d.as_secs() == 0 && d.subsec_nanos().is_multiple_of(1_000_000) {
                return write!(f, "{}ms", d.as_millis());
            }
            return write!(f, "{}s", d.as_secs_f64());
        }
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A string, as serde reads and writes it.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration: numbers with units from the largest down \
                (d, h, m, s, ms), e.g. 500ms, 30s, 1h30m; at most 30 days.",
            "pattern": "^([0-9]+(\\.[0-9]+)?(d|h|m|s|ms))+$",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_go_style_durations() {
        for (text, secs_ms, printed) in [
            ("30s", 30_000, "30s"),
            ("1h30m", 5_400_000, "1h30m"),
            ("250ms", 250, "250ms"),
            ("2m5s", 125_000, "2m5s"),
        ] {
            let d: Duration = text.parse().expect(text);
            assert_eq!(d.0.as_millis(), secs_ms, "{text}");
            assert_eq!(d.to_string(), printed);
        }
    }

    #[test]
    fn rejects_garbage_with_the_input_named() {
        for bad in [
            "",
            "10",
            "5x",
            "s",
            "-3s",
            "1h1h",
            "30m1h",
            "99999999999999h",
            "31d",
            "721h",
        ] {
            let e = bad.parse::<Duration>().expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn durations_are_capped_at_thirty_days() {
        assert_eq!("30d".parse::<Duration>(), Ok(MAX));
        assert_eq!("720h".parse::<Duration>(), Ok(MAX));
        let e = "720h1s".parse::<Duration>().expect_err("over");
        assert!(e.to_string().contains("30 days"), "{e}");
        let e = "1h1h".parse::<Duration>().expect_err("twice");
        assert!(e.to_string().contains("largest down"), "{e}");
    }
}
