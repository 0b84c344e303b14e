//! The apiserver's metrics (prometheus-client): requests by verb, kind and
//! code with their latency, open client and store watches, the store's
//! revision, plus the build and process metrics every binary has.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sloth_sdk::telemetry;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: &'static str,
    kind: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: &'static str,
    kind: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS.iter().copied())
}

/// The apiserver's metrics and the registry they are rendered from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    watches: Gauge,
    store_watches: Gauge,
    store_revision: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(telemetry::metrics::registry("apiserver"))
    }
}

/// Decrements the open-store-watch gauge when the store watch ends.
#[derive(Debug)]
pub struct StoreWatchGuard(Arc<Metrics>);

impl Drop for StoreWatchGuard {
    fn drop(&mut self) {
        self.0.store_watches.dec();
    }
}

/// Decrements the open-watch gauge when the watch ends.
#[derive(Debug)]
pub struct WatchGuard(Arc<Metrics>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.watches.dec();
    }
}

impl Metrics {
    /// Registers the apiserver's metrics on `registry`, which may already
    /// hold others (the in-process controllers').
    pub fn new(mut registry: Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let watches = Gauge::default();
        let store_watches = Gauge::default();
        let store_revision = Gauge::default();
        registry.register(
            "sloth_apiserver_requests",
            "API requests by verb, kind and result code",
            requests.clone(),
        );
        registry.register(
            "sloth_apiserver_request_duration_seconds",
            "API request latency by verb and kind",
            latency.clone(),
        );
        registry.register(
            "sloth_apiserver_watches",
            "Open client watch streams",
            watches.clone(),
        );
        registry.register(
            "sloth_store_watches",
            "Open store (etcd or embedded) watches",
            store_watches.clone(),
        );
        registry.register(
            "sloth_apiserver_store_revision",
            "The store's current revision",
            store_revision.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            watches,
            store_watches,
            store_revision,
        }
    }

    /// Records one finished request. `kind` is a known kind's name (or
    /// one fixed word), never a client's string: labels stay bounded and
    /// recording allocates nothing once a label set exists.
    pub fn observe(
        &self,
        verb: &'static str,
        kind: &'static str,
        code: tonic::Code,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                verb,
                kind,
                code: code_name(code),
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels { verb, kind })
            .observe(elapsed.as_secs_f64());
    }

    pub fn watch_started(self: &Arc<Self>) -> WatchGuard {
        self.watches.inc();
        WatchGuard(Arc::clone(self))
    }

    pub fn watch_count(&self) -> i64 {
        self.watches.get()
    }

    /// Counts one open store watch (the watch cache's, or a client's own
    /// when the cache is off) until the guard is dropped.
    pub fn store_watch_started(self: &Arc<Self>) -> StoreWatchGuard {
        self.store_watches.inc();
        StoreWatchGuard(Arc::clone(self))
    }

    pub fn store_watch_count(&self) -> i64 {
        self.store_watches.get()
    }

    /// Prometheus text exposition format; `store_revision` when the store
    /// answered.
    pub fn render(&self, store_revision: Option<i64>) -> String {
        if let Some(revision) = store_revision {
            self.store_revision.set(revision);
        }
        telemetry::render(&self.registry)
    }
}

/// The name of a gRPC code as tonic's Debug prints it, without allocating.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "Ok",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
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
        assert!(text.contains("sloth_store_watches 1"), "{text}");
        drop(store_guard);
        assert!(m.render(None).contains("sloth_store_watches 0"));
        assert!(text.contains(
            "sloth_apiserver_requests_total{verb=\"create\",kind=\"TaskRun\",code=\"Ok\"} 1"
        ));
        assert!(text.contains(
            "sloth_apiserver_request_duration_seconds_bucket{verb=\"create\",kind=\"TaskRun\",le=\"0.005\"} 2"
        ), "{text}");
        assert!(text.contains("sloth_apiserver_watches 1"));
        assert!(text.contains("sloth_apiserver_store_revision 42"));
        assert!(text.contains("sloth_build_info{component=\"apiserver\""));
        drop(guard);
        assert!(m.render(None).contains("sloth_apiserver_watches 0"));
    }

    #[test]
    fn one_watch_gauge_only() {
        let text = Metrics::default().render(None);
        assert!(!text.contains("sloth_client_watches"), "{text}");
    }
}
