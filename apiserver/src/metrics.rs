//! Request counts and latencies by verb and kind, rendered as Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct Requests {
    /// (verb, kind, code) -> count
    counts: BTreeMap<(&'static str, String, String), u64>,
    /// (verb, kind) -> latency
    latency: BTreeMap<(&'static str, String), Histogram>,
}

/// The apiserver's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<Requests>,
    watches: AtomicI64,
    store_watches: AtomicI64,
}

/// Decrements the open-store-watch gauge when the store watch ends.
#[derive(Debug)]
pub struct StoreWatchGuard(Arc<Metrics>);

impl Drop for StoreWatchGuard {
    fn drop(&mut self) {
        self.0.store_watches.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decrements the open-watch gauge when the watch ends.
#[derive(Debug)]
pub struct WatchGuard(Arc<Metrics>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.watches.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Records one finished request; `code` is the gRPC code's name.
    pub fn observe(&self, verb: &'static str, kind: &str, code: tonic::Code, elapsed: Duration) {
        let Ok(mut requests) = self.requests.lock() else {
            return;
        };
        *requests
            .counts
            .entry((verb, kind.to_string(), format!("{code:?}")))
            .or_default() += 1;
        requests
            .latency
            .entry((verb, kind.to_string()))
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    pub fn watch_started(self: &Arc<Self>) -> WatchGuard {
        self.watches.fetch_add(1, Ordering::Relaxed);
        WatchGuard(Arc::clone(self))
    }

    pub fn watch_count(&self) -> i64 {
        self.watches.load(Ordering::Relaxed)
    }

    /// Counts one open store watch (the watch cache's, or a client's own
    /// when the cache is off) until the guard is dropped.
    pub fn store_watch_started(self: &Arc<Self>) -> StoreWatchGuard {
        self.store_watches.fetch_add(1, Ordering::Relaxed);
        StoreWatchGuard(Arc::clone(self))
    }

    pub fn store_watch_count(&self) -> i64 {
        self.store_watches.load(Ordering::Relaxed)
    }

    /// Prometheus text exposition format.
    pub fn render(&self, store_revision: Option<i64>) -> String {
        let mut out = String::new();
        let Ok(requests) = self.requests.lock() else {
            return out;
        };
        out.push_str(
            "# HELP sloth_apiserver_requests_total API requests by verb, kind and result code.\n",
        );
        out.push_str("# TYPE sloth_apiserver_requests_total counter\n");
        for ((verb, kind, code), n) in &requests.counts {
            let _ = writeln!(
                out,
                "sloth_apiserver_requests_total{{verb=\"{verb}\",kind=\"{kind}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP sloth_apiserver_request_duration_seconds API request latency by verb and kind.\n");
        out.push_str("# TYPE sloth_apiserver_request_duration_seconds histogram\n");
        for ((verb, kind), h) in &requests.latency {
            let labels = format!("verb=\"{verb}\",kind=\"{kind}\"");
            for (bound, n) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(
                    out,
                    "sloth_apiserver_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "sloth_apiserver_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "sloth_apiserver_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "sloth_apiserver_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out.push_str("# HELP sloth_apiserver_watches Open watch streams.\n");
        out.push_str("# TYPE sloth_apiserver_watches gauge\n");
        let _ = writeln!(out, "sloth_apiserver_watches {}", self.watch_count());
        out.push_str("# HELP sloth_client_watches Open client watch streams.\n");
        out.push_str("# TYPE sloth_client_watches gauge\n");
        let _ = writeln!(out, "sloth_client_watches {}", self.watch_count());
        out.push_str("# HELP sloth_store_watches Open store (etcd or embedded) watches.\n");
        out.push_str("# TYPE sloth_store_watches gauge\n");
        let _ = writeln!(out, "sloth_store_watches {}", self.store_watch_count());
        if let Some(revision) = store_revision {
            out.push_str("# HELP sloth_apiserver_store_revision The store's current revision.\n");
            out.push_str("# TYPE sloth_apiserver_store_revision gauge\n");
            let _ = writeln!(out, "sloth_apiserver_store_revision {revision}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_histograms_and_gauges() {
        let m = Arc::new(Metrics::default());
        m.observe(
            "create",
            "TaskRun",
            tonic::Code::Ok,
            Duration::from_millis(3),
        );
        m.observe(
            "create",
            "TaskRun",
            tonic::Code::AlreadyExists,
            Duration::from_millis(1),
        );
        let guard = m.watch_started();
        let store_guard = m.store_watch_started();
        let text = m.render(Some(42));
        assert!(text.contains("sloth_client_watches 1"));
        assert!(text.contains("sloth_store_watches 1"));
        drop(store_guard);
        assert!(m.render(None).contains("sloth_store_watches 0"));
        assert!(text.contains(
            "sloth_apiserver_requests_total{verb=\"create\",kind=\"TaskRun\",code=\"Ok\"} 1"
        ));
        assert!(text.contains(
            "sloth_apiserver_request_duration_seconds_bucket{verb=\"create\",kind=\"TaskRun\",le=\"0.005\"} 2"
        ));
        assert!(text.contains("sloth_apiserver_watches 1"));
        assert!(text.contains("sloth_apiserver_store_revision 42"));
        drop(guard);
        assert!(m.render(None).contains("sloth_apiserver_watches 0"));
    }
}
