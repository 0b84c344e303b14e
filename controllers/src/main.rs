//! `sloth-controllers`: runs the scheduler and the agent-lifecycle
//! controller against one or more apiservers until SIGTERM.
#![forbid(unsafe_code)]

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
    /// Identity for leader election (leader election arrives with the
    /// workflow controller; today every process acts).
    #[arg(long)]
    id: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let client = sloth_sdk::Client::new(&args.server).context("bad --server")?;
    let shutdown = CancellationToken::new();
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
    tracing::info!(servers = %client.endpoints(), "controllers starting");
    sloth_controllers::run_all(client, shutdown).await;
    tracing::info!("controllers stopped");
    Ok(())
}
