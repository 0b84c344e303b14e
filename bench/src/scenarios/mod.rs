//! One module per scenario; each returns its JSON result.

pub(crate) mod agent_rss;
pub(crate) mod agents;
pub(crate) mod create;
pub(crate) mod e2e;
pub(crate) mod http_watch;
pub(crate) mod lease_renewal;
pub(crate) mod restart;
pub(crate) mod run_latency;
pub(crate) mod state;
pub(crate) mod store;
pub(crate) mod workflow;
pub(crate) mod workspace;
pub(crate) mod writes;

use std::time::Instant;

/// The storage backend a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StoreKind {
    Embedded,
    Etcd,
}

impl StoreKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Etcd => "etcd",
        }
    }
}

/// Milliseconds from `from` to `to` (0 when `to` is earlier).
pub(crate) fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

/// Milliseconds between two status timestamps, when both are there.
pub(crate) fn time_ms(
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<f64> {
    let (from, to) = (from?, to?);
    Some((to - from).num_microseconds()? as f64 / 1000.0)
}

/// `{"p50": .., "p99": .., "max": ..}` of samples in ms.
pub(crate) fn summary(samples: &crate::stats::Samples) -> serde_json::Value {
    use crate::stats::round3;
    serde_json::json!({
        "p50": round3(samples.percentile(50.0)),
        "p99": round3(samples.percentile(99.0)),
        "max": round3(samples.max()),
        "n": samples.len(),
    })
}
