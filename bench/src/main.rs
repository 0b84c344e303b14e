//! `sloth-bench`: load scenarios against real Sloth processes. The scenarios
//! arrive with the benchmark issue; today `create` measures object creation
//! against a running apiserver.
#![forbid(unsafe_code)]

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use sloth_sdk::objects::{Payload, TaskRun, TaskRunSpec};
use sloth_sdk::{Api, Client};

#[derive(Parser, Debug)]
#[command(name = "sloth-bench", version, about = "Sloth benchmarks")]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50053")]
    server: String,
    /// How many TaskRuns to create.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Concurrent creators.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = Client::new(&[&args.server]).context("bad --server")?;
    let api: Api<TaskRunSpec> = Api::namespaced(client, "bench");
    let start = Instant::now();
    let per_worker = args.count.div_ceil(args.concurrency.max(1));
    let mut workers = Vec::new();
    for w in 0..args.concurrency.max(1) {
        let api = api.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker);
            for i in 0..per_worker {
                let tr = TaskRun::new(
                    format!("bench-{w}-{i}-{}", std::process::id()),
                    TaskRunSpec {
                        run: Payload {
                            shell: Some("true".into()),
                            lua: None,
                        },
                        ..TaskRunSpec::default()
                    },
                );
                let t = Instant::now();
                api.create(&tr).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    let seconds = start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    eprintln!("created {} TaskRuns in {seconds:.2}s", all.len());
    println!(
        "{}",
        serde_json::json!({
            "scenario": "create",
            "creates_per_s": all.len() as f64 / seconds,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "seconds": seconds,
        })
    );
    Ok(())
}
