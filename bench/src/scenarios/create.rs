//! `create`: TaskRun creation throughput against a running apiserver (the
//! TaskRuns are not run unless something schedules them).

use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};
use sloth_sdk::objects::{TaskRun, TaskRunSpec};
use sloth_sdk::{Api, Client};

use crate::stats::{Samples, round3};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50053")]
    server: String,
    /// How many TaskRuns to create.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Concurrent creators.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<Value> {
    let client = Client::new(&[&args.server]).context("bad --server")?;
    let api: Api<TaskRunSpec> = Api::namespaced(client, "bench");
    let start = Instant::now();
    let workers = args.concurrency.max(1);
    let per_worker = args.count.div_ceil(workers);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker);
            for i in 0..per_worker {
                let tr = TaskRun::new(
                    format!("bench-{w}-{i}-{}", std::process::id()),
                    TaskRunSpec::shell("true"),
                );
                let t = Instant::now();
                api.create(&tr).await.context("create failed")?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.context("creator panicked")??);
    }
    let seconds = start.elapsed().as_secs_f64();
    let samples = Samples::new(all);
    eprintln!("created {} TaskRuns in {seconds:.2}s", samples.len());
    Ok(json!({
        "scenario": "create",
        "creates_per_s": round3(samples.len() as f64 / seconds),
        "p50_ms": round3(samples.percentile(50.0)),
        "p99_ms": round3(samples.percentile(99.0)),
        "seconds": round3(seconds),
    }))
}
