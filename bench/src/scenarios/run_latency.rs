//! `run-latency`: the `slothctl run --agent a1 -- true` round trip, through
//! the client library the way slothctl does it (slothctl/src/commands/run.rs
//! and follow.rs): check the Agent exists, create the TaskRun bound to a1
//! (generateName `run-`), follow it with a watch on `metadata.name` until it
//! is terminal, then read its output.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sloth_sdk::objects::TaskRunSpec;
use sloth_sdk::watcher::{Event, watcher};
use sloth_sdk::{API_VERSION, Client, DynamicObject, WatchParams};

use crate::cluster::{Bins, Cluster};
use crate::stats::{Samples, round3};

const NAMESPACE: &str = "default";
const AGENT: &str = "a1";

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Round trips to time (one after the other).
    #[arg(long, default_value_t = 100)]
    n: usize,
    /// Untimed round trips first (connections, caches).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
}

fn phase(tr: &DynamicObject) -> &str {
    tr.status.get("phase").and_then(Value::as_str).unwrap_or("")
}

/// One `slothctl run --agent a1 -- true`; returns the final phase.
async fn round_trip(client: &Client) -> anyhow::Result<String> {
    client
        .get("Agent", "", AGENT)
        .await
        .context("get agent a1")?;
    let spec = TaskRunSpec {
        agent_name: Some(AGENT.into()),
        ..TaskRunSpec::shell("true")
    };
    let object = json!({
        "apiVersion": API_VERSION,
        "kind": "TaskRun",
        "metadata": {"generateName": "run-", "namespace": NAMESPACE},
        "spec": serde_json::to_value(&spec).context("encode the TaskRun")?,
    });
    let created = client.create(&object).await.context("create the TaskRun")?;
    let name = created.metadata.name.clone();
    let params = WatchParams {
        field_selector: format!("metadata.name={name}"),
        ..WatchParams::default()
    };
    let mut events = watcher(client.clone(), "TaskRun", NAMESPACE, params);
    let mut final_phase = String::new();
    while let Some(event) = events.next().await {
        let objects = match event.context("watch the TaskRun")? {
            Event::Restarted(items) => items,
            Event::Applied(o) => vec![o],
            Event::Deleted(_) => bail!("taskrun {name} was deleted"),
        };
        if let Some(done) = objects
            .iter()
            .find(|o| matches!(phase(o), "Succeeded" | "Failed"))
        {
            final_phase = phase(done).to_string();
            break;
        }
    }
    drop(events);
    // The output, as slothctl prints it at the end.
    let mut output = client
        .logs(NAMESPACE, &name, false, 0)
        .await
        .context("read the output")?;
    while let Some(chunk) = output.next().await {
        chunk.context("read the output")?;
    }
    Ok(final_phase)
}

pub(crate) async fn run(bins: Bins, args: Args) -> anyhow::Result<Value> {
    let mut cluster = Cluster::new(bins)?;
    let (_server, client, _) = cluster.start_with_agents(&[AGENT.into()], &[]).await?;
    let mut latencies = Vec::with_capacity(args.n);
    let mut errors = 0;
    for i in 0..args.warmup + args.n {
        let t = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(30), round_trip(&client)).await;
        let elapsed = t.elapsed().as_secs_f64() * 1000.0;
        match outcome {
            Ok(Ok(phase)) if phase == "Succeeded" => {
                if i >= args.warmup {
                    latencies.push(elapsed);
                }
            }
            Ok(Ok(phase)) => {
                errors += 1;
                eprintln!("run {i}: ended {phase:?}");
            }
            Ok(Err(e)) => {
                errors += 1;
                eprintln!("run {i}: {e:#}");
            }
            Err(_) => {
                errors += 1;
                eprintln!("run {i}: no result within 30s");
            }
        }
    }
    let samples = Samples::new(latencies);
    eprintln!(
        "{} round trips: p50 {:.1} ms, p99 {:.1} ms, errors {errors}",
        samples.len(),
        samples.percentile(50.0),
        samples.percentile(99.0)
    );
    if samples.is_empty() {
        eprintln!("no round trip succeeded");
    }
    tokio::task::block_in_place(|| cluster.shutdown());
    Ok(json!({
        "scenario": "run-latency",
        "n": samples.len(),
        "p50_ms": round3(samples.percentile(50.0)),
        "p99_ms": round3(samples.percentile(99.0)),
        "max_ms": round3(samples.max()),
        "errors": errors,
    }))
}
