//! `sloth-agent`: runs on each machine. Registration, heartbeats and TaskRun
//! execution arrive with the TaskRun issue; today it registers its Agent object.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use sloth_sdk::objects::{Agent, AgentSpec};
use sloth_sdk::{Api, Error};

#[derive(Parser, Debug)]
#[command(name = "sloth-agent", version, about = "Sloth's agent")]
struct Args {
    /// Unique agent name.
    #[arg(long)]
    name: String,
    /// Apiservers (comma-separated, failover).
    #[arg(
        long,
        env = "SLOTH_SERVER",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50053"
    )]
    server: Vec<String>,
    /// What the apiserver dials to reach this agent.
    #[arg(long, default_value = "")]
    report_address: String,
    /// Max concurrent TaskRuns.
    #[arg(long, default_value_t = 1)]
    capacity: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let client = sloth_sdk::Client::new(&args.server).context("bad --server")?;
    let agents: Api<AgentSpec> = Api::all(client);
    let agent = Agent::new(
        &args.name,
        AgentSpec {
            address: args.report_address,
            capacity: args.capacity,
            ..AgentSpec::default()
        },
    );
    match agents.create(&agent).await {
        Ok(_) | Err(Error::AlreadyExists(_)) => {}
        Err(e) => return Err(e).context("cannot register the Agent object"),
    }
    tracing::info!(name = %args.name, "registered; TaskRun execution is not implemented yet");
    Ok(())
}
