//! The in-process controllers of `--controllers` (single-node mode). They
//! are behind the `controllers` cargo feature (on by default) so that an
//! apiserver for a cluster with separate `sloth-controllers` processes can
//! be built without them (`--no-default-features`).

use std::net::SocketAddr;
#[cfg(feature = "controllers")]
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Refuses `--controllers` in a build without the controllers, at startup
/// rather than silently running none.
pub(crate) fn check_available(wanted: bool) -> anyhow::Result<()> {
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
pub(crate) fn register_metrics(registry: &mut Registry) {
    sloth_controllers::metrics::global().register(registry);
}

#[cfg(not(feature = "controllers"))]
pub fn register_metrics(_registry: &mut Registry) {}

/// Starts every controller under leader election, talking to this server
/// through `client`.
#[cfg(feature = "controllers")]
pub(crate) fn spawn(
    client: sloth_sdk::Client,
    grpc_addr: SocketAddr,
    args: &crate::Args,
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
        settings(args),
        shutdown,
    ))
}

/// The controllers' settings from the apiserver's flags.
#[cfg(feature = "controllers")]
fn settings(args: &crate::Args) -> sloth_controllers::Settings {
    sloth_controllers::Settings {
        taskrun_ttl: args.taskrun_ttl,
        agent_gc_after: args.agent_gc.agent_gc_after,
        ..sloth_controllers::Settings::default()
    }
}

/// Never reached: [`check_available`] refused `--controllers` at startup.
#[cfg(not(feature = "controllers"))]
pub fn spawn(
    _client: sloth_sdk::Client,
    _grpc_addr: SocketAddr,
    _args: &crate::Args,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move { shutdown.cancelled().await })
}

#[cfg(all(test, feature = "controllers"))]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn agent_gc_after_reaches_the_in_process_controllers() {
        let parse = |argv: &[&str]| {
            let mut all = vec!["sloth-apiserver"];
            all.extend(argv);
            settings(&crate::Args::try_parse_from(all).expect("parse"))
        };
        let tuned = parse(&["--controllers", "--agent-gc-after", "90s"]);
        assert_eq!(tuned.agent_gc_after, Duration::from_secs(90));
        let default = parse(&["--controllers"]);
        assert_eq!(
            default.agent_gc_after,
            sloth_controllers::agent_gc::DEFAULT_AGENT_GC_AFTER
        );
        assert_eq!(default.agent_gc_after, Duration::from_secs(24 * 3600));
        assert!(
            crate::Args::try_parse_from(["sloth-apiserver", "--agent-gc-after", "soon"]).is_err()
        );
    }
}
