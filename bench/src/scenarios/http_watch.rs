//! `http-watch`: many REST watchers (`?watch=true`, NDJSON over HTTP/1.1)
//! on one apiserver. Measures the apiserver's RSS idle, with the watchers
//! connected, and after the events; and the latency of each event from the
//! start of its write (a REST POST) to its line arriving at each watcher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::cluster::{ApiServerOptions, Bins, Cluster, rss_mib};
use crate::scenarios::{ms, summary};
use crate::stats::{Samples, round3};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Concurrent HTTP watchers.
    #[arg(long, default_value_t = 1_000)]
    watchers: usize,
    /// Objects created (each one event for every watcher).
    #[arg(long, default_value_t = 50)]
    events: usize,
    /// Pause between two writes.
    #[arg(long, default_value = "100ms", value_parser = sloth_sdk::duration::parse_flag)]
    interval: Duration,
    /// How long every watcher may take to see every event.
    #[arg(long, default_value = "120s", value_parser = sloth_sdk::duration::parse_flag)]
    deadline: Duration,
}

const COLLECTION: &str = "/apis/sloth.dev/v1/namespaces/default/locks";

/// When each object's write started, by name.
type Started = Arc<Mutex<HashMap<String, Instant>>>;

pub(crate) async fn run(bins: Bins, args: Args) -> anyhow::Result<Value> {
    let mut cluster = Cluster::new(bins)?;
    let server = cluster.start_apiserver(&ApiServerOptions {
        // One client opens every watch: lift the per-client limit.
        extra_args: vec!["--max-watches-per-client".into(), "0".into()],
        ..ApiServerOptions::default()
    })?;
    let base = server.http_url.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .context("HTTP client")?;
    let list: Value = client
        .get(format!("{base}{COLLECTION}"))
        .send()
        .await?
        .json_value()
        .await?;
    let from = list["metadata"]["resourceVersion"]
        .as_str()
        .context("no resourceVersion in the list")?
        .to_string();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = rss_mib(server.pid)?;

    let started: Started = Arc::default();
    let url = format!("{base}{COLLECTION}?watch=true&resourceVersion={from}");
    let mut opened = Vec::with_capacity(args.watchers);
    let open_start = Instant::now();
    for chunk in (0..args.watchers).collect::<Vec<_>>().chunks(100) {
        let batch = chunk.iter().map(|_| client.get(&url).send());
        for response in join_all(batch).await {
            let response = response.context("opening a watch")?;
            if !response.status().is_success() {
                bail!("a watch answered {}", response.status());
            }
            opened.push(response);
        }
    }
    let open_ms = ms(open_start, Instant::now());
    eprintln!("{} watches open in {open_ms:.0} ms", opened.len());
    let watchers: Vec<_> = opened
        .into_iter()
        .map(|response| {
            tokio::spawn(receive(
                response,
                args.events,
                started.clone(),
                args.deadline,
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = rss_mib(server.pid)?;

    for i in 0..args.events {
        let name = format!("ev-{i}");
        let body = json!({"metadata": {"name": name}, "spec": {"holderIdentity": "bench"}});
        started
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .insert(name, Instant::now());
        let response = client
            .post(format!("{base}{COLLECTION}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        if response.status().as_u16() != 201 {
            bail!("create answered {}", response.status());
        }
        tokio::time::sleep(args.interval).await;
    }
    let mut samples = Vec::with_capacity(args.watchers * args.events);
    let mut short = 0;
    for watcher in watchers {
        let got = watcher.await.context("a watcher panicked")?;
        if got.len() < args.events {
            short += 1;
        }
        samples.extend(got);
    }
    let rss_after = rss_mib(server.pid)?;
    let latency = Samples::new(samples);
    eprintln!(
        "event latency p50 {:.1} ms p99 {:.1} ms over {} receipts; apiserver RSS {rss_idle:.1} -> {rss_connected:.1} -> {rss_after:.1} MiB",
        latency.percentile(50.0),
        latency.percentile(99.0),
        latency.len()
    );
    tokio::task::block_in_place(|| cluster.shutdown());
    Ok(json!({
        "scenario": "http-watch",
        "watchers": args.watchers,
        "events": args.events,
        "watchers_missing_events": short,
        "open_ms": round3(open_ms),
        "apiserver_rss_idle_mib": round3(rss_idle),
        "apiserver_rss_connected_mib": round3(rss_connected),
        "apiserver_rss_after_mib": round3(rss_after),
        "event_latency_ms": summary(&latency),
    }))
}

/// Reads one watch until it saw `events` ADDED lines or `deadline`; the
/// latency of each in ms.
async fn receive(
    mut response: reqwest::Response,
    events: usize,
    started: Started,
    deadline: Duration,
) -> Vec<f64> {
    let end = Instant::now() + deadline;
    let mut buffer = Vec::new();
    let mut latencies = Vec::with_capacity(events);
    while latencies.len() < events {
        let left = end.saturating_duration_since(Instant::now());
        let chunk = match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            _ => break,
        };
        let now = Instant::now();
        buffer.extend_from_slice(&chunk);
        while let Some(at) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=at).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if event["type"] != "ADDED" {
                continue;
            }
            let name = event["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or_default();
            let start = started.lock().ok().and_then(|s| s.get(name).copied());
            if let Some(start) = start {
                latencies.push(ms(start, now));
            }
        }
    }
    latencies
}

/// `Response::json` needs reqwest's `json` feature; this does without.
trait JsonValue {
    async fn json_value(self) -> anyhow::Result<Value>;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> anyhow::Result<Value> {
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes).context("not JSON")
    }
}
