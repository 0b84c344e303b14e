//! The in-process controllers of `--controllers` (single-node mode). They
//! are behind the `controllers` cargo feature (on by default) so that an
//! apiserver for a cluster with separate `sloth-controllers` processes can
//! be built without them (`--no-default-features`).

use std::net::SocketAddr;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Refuses `--controllers` in a build without the controllers, at startup
/// rather than silently running none.
pub fn check_available(wanted: bool) -> anyhow::Result<()> {
    if wanted && !cfg!(feature = "controllers") {
        anyhow::bail!(
            "--controllers: this sloth-apiserver was built without the `controllers` feature; \
             run sloth-controllers separately or rebuild with default features"
        );
    }
    Ok(())
}

/// Adds the controllers' metrics to the apiserver's registry.
#[cfg(feature = "controllers")]
pub fn register_metrics(registry: &mut Registry) {
    sloth_controllers::metrics::global().register(registry);
}

#[cfg(not(feature = "controllers"))]
pub fn register_metrics(_registry: &mut Registry) {}

/// Starts every controller under leader election, talking to this server
/// through `client`.
#[cfg(feature = "controllers")]
pub fn spawn(
    client: sloth_sdk::Client,
    grpc_addr: SocketAddr,
    taskrun_ttl: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let election = sloth_controllers::leader::Election::new(
        // Stable across restarts, so a restarted single-node server
        // takes its own lock back at once instead of waiting out the lease.
        format!(
            "apiserver-{}-{}",
            sloth_controllers::leader::hostname(),
            grpc_addr.port()
        ),
        Duration::from_secs(15),
    );
    tokio::spawn(sloth_controllers::run_elected(
        client,
        election,
        sloth_controllers::Settings {
            taskrun_ttl,
            ..sloth_controllers::Settings::default()
        },
        shutdown,
    ))
}

/// Never reached: [`check_available`] refused `--controllers` at startup.
#[cfg(not(feature = "controllers"))]
pub fn spawn(
    _client: sloth_sdk::Client,
    _grpc_addr: SocketAddr,
    _taskrun_ttl: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move { shutdown.cancelled().await })
}
