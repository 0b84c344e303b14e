//! Fixtures shared by the controllers' unit tests.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// One day, the unit the expiry controllers' defaults are written in.
pub(crate) const DAY: Duration = Duration::from_secs(86_400);

/// A fixed instant plus `secs`: tests name times relative to it.
pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("time")
}
