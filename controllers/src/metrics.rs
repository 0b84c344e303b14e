//! The controllers' metrics: per controller, reconcile durations, errors
//! and queue depth; for the scheduler, binds and how long TaskRuns waited
//! for one. One set per process (like Prometheus' default registry), so
//! that every controller reports without threading a handle through each.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sloth_sdk::runtime::ReconcileObserver;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: &'static str,
}

/// 1 ms to about 65 s.
fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every controller's metrics in this process.
#[derive(Debug)]
pub struct ControllerMetrics {
    reconcile_duration: Family<ControllerLabel, Histogram>,
    reconcile_errors: Family<ControllerLabel, Counter>,
    queue_depth: Family<ControllerLabel, Gauge>,
    binds: Counter,
    scheduling_latency: Histogram,
}

impl ControllerMetrics {
    fn new() -> Self {
        Self {
            reconcile_duration: Family::new_with_constructor(
                reconcile_histogram as fn() -> Histogram,
            ),
            reconcile_errors: Family::default(),
            queue_depth: Family::default(),
            binds: Counter::default(),
            // 10 ms to about 330 s.
            scheduling_latency: Histogram::new(exponential_buckets(0.01, 2.0, 16)),
        }
    }

    /// Adds these metrics to `registry` (the /metrics of sloth-controllers,
    /// or of an apiserver running them in process).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sloth_controller_reconcile_duration_seconds",
            "Time one reconcile took, by controller",
            self.reconcile_duration.clone(),
        );
        registry.register(
            "sloth_controller_reconcile_errors",
            "Reconciles that failed (error or panic), by controller",
            self.reconcile_errors.clone(),
        );
        registry.register(
            "sloth_controller_queue_depth",
            "Objects waiting in a controller's work queue",
            self.queue_depth.clone(),
        );
        registry.register(
            "sloth_scheduler_binds",
            "TaskRuns the scheduler bound to an agent",
            self.binds.clone(),
        );
        registry.register(
            "sloth_scheduler_latency_seconds",
            "Time from a TaskRun's creation to its binding to an agent",
            self.scheduling_latency.clone(),
        );
    }

    /// The observer the runtime controller named `controller` reports to;
    /// its metrics show up at once (zero) rather than at the first event.
    pub fn controller(&self, controller: &'static str) -> Arc<dyn ReconcileObserver> {
        let label = ControllerLabel { controller };
        Arc::new(Observer {
            duration: self.reconcile_duration.get_or_create_owned(&label),
            errors: self.reconcile_errors.get_or_create_owned(&label),
            depth: self.queue_depth.get_or_create_owned(&label),
        })
    }

    /// One TaskRun bound, `waited` after its creation (when it has one).
    pub fn bound(&self, waited: Option<Duration>) {
        self.binds.inc();
        if let Some(waited) = waited {
            self.scheduling_latency.observe(waited.as_secs_f64());
        }
    }
}

/// The process's controller metrics.
pub fn global() -> &'static ControllerMetrics {
    static METRICS: OnceLock<ControllerMetrics> = OnceLock::new();
    METRICS.get_or_init(ControllerMetrics::new)
}

/// One controller's handles, resolved once: reporting is a few atomics.
struct Observer {
    duration: Histogram,
    errors: Counter,
    depth: Gauge,
}

impl ReconcileObserver for Observer {
    fn reconciled(&self, elapsed: Duration, failed: bool) {
        self.duration.observe(elapsed.as_secs_f64());
        if failed {
            self.errors.inc();
        }
    }

    fn queue_depth(&self, depth: usize) {
        self.depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_per_controller_and_scheduler_metrics() {
        let metrics = ControllerMetrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let observer = metrics.controller("test");
        observer.reconciled(Duration::from_millis(5), false);
        observer.reconciled(Duration::from_millis(5), true);
        observer.queue_depth(3);
        metrics.bound(Some(Duration::from_millis(50)));
        let text = sloth_sdk::telemetry::render(&registry);
        for line in [
            "sloth_controller_reconcile_duration_seconds_count{controller=\"test\"} 2",
            "sloth_controller_reconcile_errors_total{controller=\"test\"} 1",
            "sloth_controller_queue_depth{controller=\"test\"} 3",
            "sloth_scheduler_binds_total 1",
            "sloth_scheduler_latency_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}
