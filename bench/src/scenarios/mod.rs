//! One module per scenario; each returns its JSON result.

pub mod agent_rss;
pub mod agents;
pub mod create;
pub mod e2e;
pub mod http_watch;
pub mod restart;
pub mod run_latency;
pub mod state;
pub mod store;
pub mod workflow;
pub mod workspace;
pub mod writes;

use std::time::Instant;

/// The storage backend a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    Embedded,
    Etcd,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Etcd => "etcd",
        }
    }
}

/// Milliseconds from `from` to `to` (0 when `to` is earlier).
pub fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

/// Milliseconds between two status timestamps, when both are there.
pub fn time_ms(
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<f64> {
    let (from, to) = (from?, to?);
    Some((to - from).num_microseconds()? as f64 / 1000.0)
}

/// `{"p50": .., "p99": .., "max": ..}` of samples in ms.
pub fn summary(samples: &crate::stats::Samples) -> serde_json::Value {
    use crate::stats::round3;
    serde_json::json!({
        "p50": round3(samples.percentile(50.0)),
        "p99": round3(samples.percentile(99.0)),
        "max": round3(samples.max()),
        "n": samples.len(),
    })
}
