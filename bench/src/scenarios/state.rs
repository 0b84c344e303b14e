//! `state`: the state store through the client library (`sloth_sdk::state`,
//! what `slothctl state` and Lua's `state` module use) on one apiserver
//! (embedded store): `--keys` keys set by `--concurrency` writers; then
//! `--increments` increments spread over those keys by as many concurrent
//! callers; then every caller incrementing one hot key `--hot` times (the
//! worst case of compare-and-swap retries); then one list of every key.
//! The counters are checked at the end: no increment may be lost.

use std::time::Instant;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use sloth_sdk::Client;
use sloth_sdk::state::StateStore;

use crate::cluster::{ApiServerOptions, Bins, Cluster};
use crate::stats::{Samples, round3};

const NAMESPACE: &str = "bench";

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// Concurrent callers in every phase.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Increments spread over the keys.
    #[arg(long, default_value_t = 10_000)]
    increments: usize,
    /// Increments of the one hot key per caller.
    #[arg(long, default_value_t = 10)]
    hot: usize,
}

fn key(i: usize) -> String {
    format!("bench/key-{i:06}")
}

/// The latencies and wall time of `total` operations run by `workers`
/// concurrent callers; `op(store, i)` is operation number `i`.
async fn phase<F, Fut>(
    store: &StateStore,
    workers: usize,
    total: usize,
    op: F,
) -> anyhow::Result<(Samples, f64)>
where
    F: Fn(StateStore, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (store, op) = (store.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in (w..total).step_by(workers) {
                let t = Instant::now();
                op(store.clone(), i).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await.context("a caller panicked")??);
    }
    Ok((Samples::new(all), start.elapsed().as_secs_f64()))
}

fn report(name: &str, samples: &Samples, seconds: f64) -> Value {
    eprintln!(
        "{name}: {} in {seconds:.2}s ({:.0}/s), p50 {:.1} ms, p99 {:.1} ms",
        samples.len(),
        samples.len() as f64 / seconds,
        samples.percentile(50.0),
        samples.percentile(99.0)
    );
    json!({
        "per_s": round3(samples.len() as f64 / seconds),
        "p50_ms": round3(samples.percentile(50.0)),
        "p99_ms": round3(samples.percentile(99.0)),
        "seconds": round3(seconds),
    })
}

pub(crate) async fn run(bins: Bins, args: Args) -> anyhow::Result<Value> {
    ensure!(args.keys > 0, "--keys must be at least 1");
    let workers = args.concurrency.max(1);
    let mut cluster = Cluster::new(bins)?;
    let server = cluster.start_apiserver(&ApiServerOptions::default())?;
    let client = Client::new(&[&server.grpc_url]).context("bad apiserver URL")?;
    let store = StateStore::new(client, NAMESPACE);

    let (samples, seconds) = phase(&store, workers, args.keys, |s, i| async move {
        s.set(&key(i), &Value::from(0), None)
            .await
            .with_context(|| format!("set {}", key(i)))
    })
    .await?;
    let set = report("set", &samples, seconds);

    let keys = args.keys;
    // A stride coprime with most key counts spreads callers over the keys.
    let (samples, seconds) = phase(&store, workers, args.increments, move |s, i| async move {
        let k = key(i.wrapping_mul(7919) % keys);
        s.increment(&k, 1)
            .await
            .map(|_| ())
            .with_context(|| format!("increment {k}"))
    })
    .await?;
    let spread = report("increment (spread)", &samples, seconds);

    let hot_total = workers * args.hot;
    let (samples, seconds) = phase(&store, workers, hot_total, |s, _| async move {
        s.increment("bench/hot", 1)
            .await
            .map(|_| ())
            .context("increment the hot key")
    })
    .await?;
    let hot = report("increment (one hot key)", &samples, seconds);

    let t = Instant::now();
    let listed = store.list("bench/key-").await.context("list")?;
    let list_ms = t.elapsed().as_secs_f64() * 1000.0;
    eprintln!("list: {} keys in {list_ms:.0} ms", listed.len());

    // No increment lost.
    let sum: i64 = listed
        .iter()
        .map(|e| e.spec.value.as_i64().unwrap_or_default())
        .sum();
    let hot_value = store
        .get("bench/hot")
        .await?
        .and_then(|e| e.spec.value.as_i64())
        .unwrap_or_default();
    tokio::task::block_in_place(|| cluster.shutdown());
    if listed.len() != args.keys
        || sum != i64::try_from(args.increments)?
        || hot_value != i64::try_from(hot_total)?
    {
        bail!(
            "lost updates: {} keys listed (want {}), sum {sum} (want {}), hot {hot_value} \
             (want {hot_total})",
            listed.len(),
            args.keys,
            args.increments
        );
    }
    Ok(json!({
        "scenario": "state",
        "keys": args.keys,
        "concurrency": workers,
        "set": set,
        "increment_spread": spread,
        "increment_hot_key": hot,
        "list_all_ms": round3(list_ms),
    }))
}
