//! The agent's metrics, served on `--metrics-address`: TaskRuns running,
//! started and failed here, payload durations, heartbeat renewal latency.
//! One set per process, so the run path reports without a handle threaded
//! through it; every report is a few atomics (no allocation).

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sloth_sdk::objects::TaskRunPhase;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

/// 10 ms to about 5.8 h: payloads range from `true` to long jobs.
fn payload_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 4.0, 12))
}

/// The agent's metrics.
#[derive(Debug)]
pub(crate) struct AgentMetrics {
    running: Gauge,
    started: Counter,
    failed: Counter,
    payload_duration: Family<PhaseLabel, Histogram>,
    renewal_latency: Histogram,
}

impl AgentMetrics {
    fn new() -> Self {
        Self {
            running: Gauge::default(),
            started: Counter::default(),
            failed: Counter::default(),
            payload_duration: Family::new_with_constructor(payload_histogram as fn() -> Histogram),
            // 1 ms to about 16 s.
            renewal_latency: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        }
    }

    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "sloth_agent_taskruns_running",
            "TaskRuns this agent is running now",
            self.running.clone(),
        );
        registry.register(
            "sloth_agent_taskruns_started",
            "TaskRuns this agent claimed and started",
            self.started.clone(),
        );
        registry.register(
            "sloth_agent_taskruns_failed",
            "TaskRuns that ended Failed on this agent (any reason)",
            self.failed.clone(),
        );
        registry.register(
            "sloth_agent_payload_duration_seconds",
            "Time from a TaskRun's start on this agent to its end, by final phase",
            self.payload_duration.clone(),
        );
        registry.register(
            "sloth_agent_heartbeat_renewal_duration_seconds",
            "Time one successful renewal of the heartbeat lease took",
            self.renewal_latency.clone(),
        );
    }

    /// A TaskRun claimed here starts: counted as running until the guard drops.
    pub(crate) fn started(&'static self) -> Running {
        self.started.inc();
        self.running.inc();
        Running(self)
    }

    /// A TaskRun ended in `phase` after `elapsed`.
    pub(crate) fn finished(&self, phase: TaskRunPhase, elapsed: Duration) {
        if phase == TaskRunPhase::Failed {
            self.failed.inc();
        }
        self.payload_duration
            .get_or_create(&PhaseLabel {
                phase: phase.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A TaskRun failed without being started (e.g. no payload).
    pub(crate) fn failed_unstarted(&self) {
        self.failed.inc();
    }

    pub(crate) fn renewed(&self, took: Duration) {
        self.renewal_latency.observe(took.as_secs_f64());
    }
}

/// Counts one TaskRun as running while it lives.
#[must_use]
pub(crate) struct Running(&'static AgentMetrics);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.dec();
    }
}

/// The process's agent metrics.
pub(crate) fn global() -> &'static AgentMetrics {
    static METRICS: OnceLock<AgentMetrics> = OnceLock::new();
    METRICS.get_or_init(AgentMetrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_runs_and_durations() {
        let metrics: &'static AgentMetrics = Box::leak(Box::new(AgentMetrics::new()));
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let running = metrics.started();
        assert!(sloth_sdk::telemetry::render(&registry).contains("sloth_agent_taskruns_running 1"));
        drop(running);
        metrics.finished(TaskRunPhase::Failed, Duration::from_millis(20));
        metrics.renewed(Duration::from_millis(3));
        let text = sloth_sdk::telemetry::render(&registry);
        for line in [
            "sloth_agent_taskruns_running 0",
            "sloth_agent_taskruns_started_total 1",
            "sloth_agent_taskruns_failed_total 1",
            "sloth_agent_payload_duration_seconds_count{phase=\"Failed\"} 1",
            "sloth_agent_heartbeat_renewal_duration_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}
