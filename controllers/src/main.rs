//! `sloth-controllers`: runs the scheduler and the agent-lifecycle
//! controller against one or more apiservers until SIGTERM. Several
//! processes may run; a Lock elects the one that acts.

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(name = "sloth-controllers", version, about = "Sloth's controllers")]
struct Args {
    /// One or more apiservers (comma-separated, failover).
    #[arg(
        long,
        env = "SLOTH_SERVER",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50053"
    )]
    server: Vec<String>,
    /// Identity for leader election (default: hostname-pid).
    #[arg(long)]
    id: Option<String>,
    /// How long a leader's term lasts without renewal; another process
    /// takes over within about this long after the leader dies.
    #[arg(long, default_value = "15s", value_parser = sloth_sdk::duration::parse_flag)]
    lease_duration: std::time::Duration,
    /// How long after an agent's heartbeat lease ran out its unfinished
    /// TaskRuns fail with reason AgentLost (and are retried by policy).
    #[arg(long, default_value = "10s", value_parser = sloth_sdk::duration::parse_flag)]
    agent_lost_grace: std::time::Duration,
    /// How long finished ad-hoc TaskRuns (ones no Workflow owns) are kept
    /// before they are deleted; a TaskRun's spec.ttlAfterFinished overrides it.
    #[arg(long, default_value = "24h", value_parser = sloth_sdk::duration::parse_flag)]
    taskrun_ttl: std::time::Duration,
    #[command(flatten)]
    agent_gc: sloth_controllers::agent_gc::AgentGcFlag,
    /// Credentials towards the apiservers (the controllers need role admin).
    #[command(flatten)]
    credentials: sloth_sdk::credentials::CredentialFlags,
    /// Serve Prometheus metrics (plain HTTP, no authentication) on
    /// http://ADDR/metrics; port 0 picks one. Off when not given.
    #[arg(long, value_name = "ADDR")]
    metrics_address: Option<std::net::SocketAddr>,
    #[command(flatten)]
    log: sloth_sdk::telemetry::LogFlags,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = sloth_sdk::env_flags::parse();
    args.log.init();
    let options = args
        .credentials
        .options(&sloth_sdk::credentials::CredentialFlags::default())
        .context("bad credential flags")?;
    let client = sloth_sdk::Client::with_options(&args.server, &options).context("bad --server")?;
    let shutdown = CancellationToken::new();
    if let Some(addr) = args.metrics_address {
        let register = |registry: &mut _| sloth_controllers::metrics::global().register(registry);
        sloth_sdk::telemetry::serve::serve_metrics("controllers", addr, register, shutdown.clone())
            .await
            .with_context(|| format!("cannot listen on --metrics-address {addr}"))?;
    }
    let signals = shutdown.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; stop with Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        signals.cancel();
    });
    let identity = args
        .id
        .unwrap_or_else(sloth_controllers::leader::default_identity);
    tracing::info!(servers = %client.endpoints(), %identity, "controllers starting");
    // systemd's Type=notify: the flags and credentials were good.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!("cannot tell systemd the controllers are ready: {e}");
    }
    let election = sloth_controllers::leader::Election::new(identity, args.lease_duration);
    let settings = sloth_controllers::Settings {
        agent_lost_grace: args.agent_lost_grace,
        taskrun_ttl: args.taskrun_ttl,
        agent_gc_after: args.agent_gc.agent_gc_after,
    };
    sloth_controllers::run_elected(client, election, settings, shutdown).await;
    tracing::info!("controllers stopped");
    Ok(())
}
