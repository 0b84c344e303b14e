//! `agent-rss`: the resident memory of one idle `sloth-agent` once it has
//! registered and become Ready (and settled for a few seconds).

use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{Bins, Cluster, rss_mib};
use crate::stats::round3;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// How long to let the agent settle after it is Ready.
    #[arg(long, default_value = "3s", value_parser = sloth_sdk::duration::parse_flag)]
    settle: Duration,
}

pub(crate) async fn run(bins: Bins, args: Args) -> anyhow::Result<Value> {
    let mut cluster = Cluster::new(bins)?;
    let (_server, _client, pids) = cluster.start_with_agents(&["a1".into()], &[]).await?;
    let pid = pids[0];
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
