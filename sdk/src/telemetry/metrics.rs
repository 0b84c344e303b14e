//! The registry every binary starts from: `sloth_build_info` and the
//! `process_*` metrics, rendered in the Prometheus text format.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::process::ProcessCollector;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A registry holding `sloth_build_info{component,version}` and the
/// process metrics; each binary registers its own metrics on it.
pub fn registry(component: &'static str) -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "sloth_build",
        "The component and version of this binary (always 1)",
        Info::new([
            ("component", component),
            ("version", env!("CARGO_PKG_VERSION")),
        ]),
    );
    registry.register_collector(Box::new(ProcessCollector));
    registry
}

/// The Prometheus text exposition (version 0.0.4) of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_text::encode(&mut out, registry) {
        tracing::warn!(error = %e, "cannot encode the metrics");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_build_info_and_process_metrics() {
        let text = render(&registry("test"));
        assert!(
            text.contains(&format!(
                "sloth_build_info{{component=\"test\",version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(
            text.contains("# TYPE process_resident_memory_bytes gauge"),
            "{text}"
        );
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
        assert!(text.contains("process_open_fds "), "{text}");
    }
}
