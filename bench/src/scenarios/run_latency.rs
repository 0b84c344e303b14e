//! `run-latency`: the `slothctl run --agent a1 -- true` round trip, through
//! the client library the way slothctl does it (slothctl/src/commands/run.rs
//! and follow.rs): check the Agent exists, create the TaskRun bound to a1
//! (generateName `run-`), follow it with a watch on `metadata.name` until it
//! is terminal, then read its output.
//!
//! Besides the round trip it reports where the time went, as the client
//! sees it (p50 of each step): `get_agent`, `create` (until the create is
//! acknowledged), `to_running` (until the watch shows the agent's claim),
//! `to_terminal` (from there until the watch shows the final status: the
//! payload's start, run and end, and the status write), and `logs`.

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

/// The steps of one round trip, in the order they happen.
const STEPS: [&str; 5] = ["get_agent", "create", "to_running", "to_terminal", "logs"];

/// When each step of one round trip ended, in ms since its start.
#[derive(Default)]
struct Steps {
    ended_ms: [Option<f64>; STEPS.len()],
}

impl Steps {
    fn mark(&mut self, step: usize, start: Instant) {
        if self.ended_ms[step].is_none() {
            self.ended_ms[step] = Some(start.elapsed().as_secs_f64() * 1000.0);
        }
    }

    /// Each step's own duration; a step not seen (a watch that showed
    /// Running and the end in one event) counts as zero.
    fn durations(&self) -> [f64; STEPS.len()] {
        let mut out = [0.0; STEPS.len()];
        let mut previous = 0.0;
        for (i, ended) in self.ended_ms.iter().enumerate() {
            if let Some(ended) = ended {
                out[i] = ended - previous;
                previous = *ended;
            }
        }
        out
    }
}

/// One `slothctl run --agent a1 -- true`; returns the final phase.
async fn round_trip(client: &Client, steps: &mut Steps) -> anyhow::Result<String> {
    let start = Instant::now();
    client
        .get("Agent", "", AGENT)
        .await
        .context("get agent a1")?;
    steps.mark(0, start);
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
    steps.mark(1, start);
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
        if objects.iter().any(|o| phase(o) == "Running") {
            steps.mark(2, start);
        }
        if let Some(done) = objects
            .iter()
            .find(|o| matches!(phase(o), "Succeeded" | "Failed"))
        {
            steps.mark(3, start);
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
    steps.mark(4, start);
    Ok(final_phase)
}

pub(crate) async fn run(bins: Bins, args: Args) -> anyhow::Result<Value> {
    let mut cluster = Cluster::new(bins)?;
    let (_server, client, _) = cluster.start_with_agents(&[AGENT.into()], &[]).await?;
    let mut latencies = Vec::with_capacity(args.n);
    let mut step_samples: Vec<Vec<f64>> = vec![Vec::with_capacity(args.n); STEPS.len()];
    let mut errors = 0;
    for i in 0..args.warmup + args.n {
        let t = Instant::now();
        let mut steps = Steps::default();
        let outcome =
            tokio::time::timeout(Duration::from_secs(30), round_trip(&client, &mut steps)).await;
        let elapsed = t.elapsed().as_secs_f64() * 1000.0;
        match outcome {
            Ok(Ok(phase)) if phase == "Succeeded" => {
                if i >= args.warmup {
                    latencies.push(elapsed);
                    for (samples, took) in step_samples.iter_mut().zip(steps.durations()) {
                        samples.push(took);
                    }
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
    let steps_p50: serde_json::Map<String, Value> = STEPS
        .iter()
        .zip(step_samples)
        .map(|(step, taken)| {
            let p50 = round3(Samples::new(taken).percentile(50.0));
            ((*step).to_string(), json!(p50))
        })
        .collect();
    eprintln!("p50 per step (ms): {}", Value::Object(steps_p50.clone()));
    tokio::task::block_in_place(|| cluster.shutdown());
    Ok(json!({
        "scenario": "run-latency",
        "n": samples.len(),
        "p50_ms": round3(samples.percentile(50.0)),
        "p99_ms": round3(samples.percentile(99.0)),
        "max_ms": round3(samples.max()),
        "steps_p50_ms": steps_p50,
        "errors": errors,
    }))
}
