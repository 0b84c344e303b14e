//! What every Sloth server and agent binary shares for being observed: the
//! log format and colours ([`logging`]), and the Prometheus registry with
//! process and build metrics ([`metrics`]) served on `/metrics` ([`serve`]).

pub mod logging;
pub mod metrics;
pub mod process;
pub mod serve;

pub use logging::{LogFlags, LogFormat};
pub use metrics::render;
