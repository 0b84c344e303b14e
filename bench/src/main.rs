//! `sloth-bench`: load scenarios against real Sloth processes. Each scenario
//! (except `create`, which targets a running apiserver) starts the binaries
//! it needs itself, on loopback with OS-picked ports and temporary
//! directories, and stops them at the end. Progress goes to stderr; the
//! result is one JSON object, the last line on stdout.

mod cluster;
mod scenarios;
mod stats;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use cluster::Bins;

#[derive(Parser, Debug)]
#[command(name = "sloth-bench", version, about = "Sloth benchmarks")]
struct Args {
    /// Where sloth-apiserver, sloth-agent and sloth-controllers are
    /// (default: the directory of this executable).
    #[arg(long, global = true)]
    bin_dir: Option<PathBuf>,
    /// Keep the temporary directory (data and every process's log) after
    /// the run; its path is printed on stderr.
    #[arg(long, global = true)]
    keep: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// TaskRuns (shell `true`) created -> Succeeded through the scheduler
    /// and real agents.
    E2e(scenarios::e2e::Args),
    /// The `slothctl run --agent a1 -- true` round trip.
    RunLatency(scenarios::run_latency::Args),
    /// A Workflow DAG of `true` tasks in layers.
    Workflow(scenarios::workflow::Args),
    /// Many simulated agents (Agent object, Lock renewals, TaskRun watch).
    Agents(scenarios::agents::Args),
    /// Raw Store throughput and watch latency, in process.
    Store(scenarios::store::Args),
    /// Idle RSS of one sloth-agent after registration.
    AgentRss(scenarios::agent_rss::Args),
    /// TaskRun creation against a running apiserver (`--server`).
    Create(scenarios::create::Args),
    /// The state store: set N keys, concurrent increments (spread and on
    /// one hot key), list.
    State(scenarios::state::Args),
    /// One workspace (100 MiB) fanned out to N tasks on 2 agents.
    Workspace(scenarios::workspace::Args),
    /// N finished TaskRuns stored, then the apiserver and controllers
    /// restarted: time until ready and a new TaskRun ran, and memory.
    Restart(scenarios::restart::Args),
    /// Many REST watchers (`?watch=true`) on one apiserver: its RSS and
    /// the event latency from write to receipt.
    HttpWatch(scenarios::http_watch::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bins = Bins::new(args.bin_dir)?;
    if args.keep {
        cluster::keep_temp_dirs();
    }
    let result = match args.scenario {
        Scenario::E2e(a) => scenarios::e2e::run(bins, a).await?,
        Scenario::RunLatency(a) => scenarios::run_latency::run(bins, a).await?,
        Scenario::Workflow(a) => scenarios::workflow::run(bins, a).await?,
        Scenario::Agents(a) => scenarios::agents::run(bins, a).await?,
        Scenario::Store(a) => scenarios::store::run(bins, a).await?,
        Scenario::AgentRss(a) => scenarios::agent_rss::run(bins, a).await?,
        Scenario::Create(a) => scenarios::create::run(a).await?,
        Scenario::State(a) => scenarios::state::run(bins, a).await?,
        Scenario::Workspace(a) => scenarios::workspace::run(bins, a).await?,
        Scenario::Restart(a) => scenarios::restart::run(bins, a).await?,
        Scenario::HttpWatch(a) => scenarios::http_watch::run(bins, a).await?,
    };
    println!("{result}");
    Ok(())
}
