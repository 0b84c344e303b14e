//! `agent-rss`: the resident memory of one idle `sloth-agent` once it has
//! registered and become Ready (and settled for a few seconds).

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use sloth_sdk::Client;

use crate::cluster::{ApiServerOptions, Bins, Cluster, rss_mib, wait_agents_ready};
use crate::stats::round3;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How long to let the agent settle after it is Ready.
    #[arg(long, default_value = "3s", value_parser = sloth_sdk::duration::parse_flag)]
    settle: Duration,
}

pub async fn run(bins: Bins, args: Args) -> anyhow::Result<Value> {
    let mut cluster = Cluster::new(bins)?;
    let server = cluster.start_apiserver(&ApiServerOptions {
        etcd_endpoints: None,
        controllers: true,
        ..ApiServerOptions::default()
    })?;
    let pid = cluster.start_agent(&server, "a1", &[])?;
    let client = Client::new(&[&server.grpc_url]).context("bad apiserver URL")?;
    wait_agents_ready(&client, &["a1".to_string()], Duration::from_secs(30)).await?;
    let at_ready = rss_mib(pid)?;
    tokio::time::sleep(args.settle).await;
    let rss = rss_mib(pid)?;
    eprintln!("agent RSS {rss:.2} MiB ({at_ready:.2} MiB when Ready)");
    tokio::task::block_in_place(|| cluster.shutdown());
    Ok(json!({
        "scenario": "agent-rss",
        "agent_rss_mib": round3(rss),
        "agent_rss_at_ready_mib": round3(at_ready),
    }))
}
