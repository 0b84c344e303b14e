//! `sloth-controllers`: reconciles desired state (scheduler, workflow,
//! agent-lifecycle, lock, gc). The controllers themselves arrive with the
//! TaskRun and Workflow issues; today the binary checks its servers and exits.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;

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
    /// Identity for leader election.
    #[arg(long)]
    id: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let client = sloth_sdk::Client::new(&args.server).context("bad --server")?;
    client
        .list("Agent", "", &sloth_sdk::ListParams::default())
        .await
        .with_context(|| format!("cannot reach {}", client.endpoints()))?;
    anyhow::bail!("no controllers are implemented yet; run `sloth-apiserver` alone for now")
}
