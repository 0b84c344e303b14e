//! `store`: the Store trait of the apiserver crate driven directly, in this
//! process (no gRPC, no admission): sequential compare-and-swap updates of
//! one key, 64-way concurrent updates (each writer its own key), and the
//! latency from an update call to its event on a prefix watch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sloth_apiserver::store::embedded::{EmbeddedOptions, EmbeddedStore};
use sloth_apiserver::store::etcd::{EtcdOptions, EtcdStore};
use sloth_apiserver::store::{Event, Store, WatchItem};

use super::{StoreKind, summary};
use crate::cluster::{Bins, Cluster};
use crate::stats::{Samples, round3};

const PREFIX: &str = "/bench/";

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[arg(long, value_enum, default_value = "embedded")]
    store: StoreKind,
    /// With --store etcd: use this etcd instead of starting one.
    #[arg(long)]
    etcd_endpoints: Option<String>,
    /// Sequential updates (and the total of the concurrent ones).
    #[arg(long, default_value_t = 5000)]
    ops: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Updates timed through the watch.
    #[arg(long, default_value_t = 1000)]
    watch_ops: usize,
}

/// Creates `key` and updates it `n` times by compare-and-swap.
async fn updates(store: &dyn Store, key: &str, n: usize, value: &Bytes) -> anyhow::Result<()> {
    let mut revision = store
        .create(key, value.clone())
        .await
        .with_context(|| format!("create {key}"))?;
    for _ in 0..n {
        revision = store
            .update(key, value.clone(), revision)
            .await
            .with_context(|| format!("update {key}"))?;
    }
    Ok(())
}

pub(crate) async fn run(bins: Bins, args: Args) -> anyhow::Result<Value> {
    if args.ops == 0 || args.concurrency == 0 {
        bail!("--ops and --concurrency must be at least 1");
    }
    let mut cluster = Cluster::new(bins)?;
    let mut embedded = None;
    let store: Arc<dyn Store> = match args.store {
        StoreKind::Embedded => {
            let path = cluster.dir("store")?.join("sloth.redb");
            let s = EmbeddedStore::open(&path, EmbeddedOptions::default())
                .await
                .context("open the embedded store")?;
            embedded = Some(s.clone());
            s
        }
        StoreKind::Etcd => {
            let endpoints = match &args.etcd_endpoints {
                Some(e) => e.clone(),
                None => cluster.start_etcd()?,
            };
            EtcdStore::connect(EtcdOptions {
                endpoints: endpoints.split(',').map(str::to_string).collect(),
                prefix: format!("/sloth-bench-{}", std::process::id()),
                ..EtcdOptions::default()
            })
            .await
            .context("connect to etcd")?
        }
    };
    // A value the size of a small TaskRun.
    let value = Bytes::from(vec![b'x'; 1024]);

    let t = Instant::now();
    updates(store.as_ref(), &format!("{PREFIX}seq"), args.ops, &value).await?;
    let seq_secs = t.elapsed().as_secs_f64();
    let put_seq = args.ops as f64 / seq_secs;
    eprintln!("{} sequential updates: {put_seq:.0}/s", args.ops);

    let per_writer = args.ops.div_ceil(args.concurrency);
    let t = Instant::now();
    let writers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            tokio::spawn(async move {
                updates(
                    store.as_ref(),
                    &format!("{PREFIX}conc-{w}"),
                    per_writer,
                    &value,
                )
                .await
            })
        })
        .collect();
    for w in writers {
        w.await.context("writer panicked")??;
    }
    let conc_secs = t.elapsed().as_secs_f64();
    let put_conc = (per_writer * args.concurrency) as f64 / conc_secs;
    eprintln!(
        "{} updates by {} writers: {put_conc:.0}/s",
        per_writer * args.concurrency,
        args.concurrency
    );

    // Watch latency: each value carries the microseconds since `base` at
    // which its update was called.
    let base = Instant::now();
    let after = store.current_revision().await.context("current revision")?;
    let mut watch = store
        .watch(&format!("{PREFIX}w"), after)
        .await
        .context("watch")?;
    let expected = args.watch_ops + 1;
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(expected);
        while latencies.len() < expected {
            match watch.next().await {
                Some(Ok(WatchItem::Events(events))) => {
                    let now = base.elapsed().as_secs_f64() * 1000.0;
                    for e in events {
                        if let Event::Put { kv, .. } = e {
                            let sent: [u8; 8] = kv
                                .value
                                .get(..8)
                                .and_then(|b| b.try_into().ok())
                                .unwrap_or_default();
                            let sent_ms = u64::from_le_bytes(sent) as f64 / 1000.0;
                            latencies.push(now - sent_ms);
                        }
                    }
                }
                Some(Ok(WatchItem::Progress(_))) => {}
                Some(Err(e)) => return Err(anyhow::anyhow!("watch: {e}")),
                None => break,
            }
        }
        Ok(latencies)
    });
    let stamp = || Bytes::from((base.elapsed().as_micros() as u64).to_le_bytes().to_vec());
    let key = format!("{PREFIX}w");
    let mut revision = store.create(&key, stamp()).await.context("create")?;
    for _ in 0..args.watch_ops {
        revision = store
            .update(&key, stamp(), revision)
            .await
            .context("update")?;
    }
    let latencies = tokio::time::timeout(Duration::from_secs(30), receiver)
        .await
        .context("the watch did not deliver every event within 30s")?
        .context("watch task panicked")??;
    let watch = Samples::new(latencies);
    eprintln!(
        "watch latency p50 {:.2} ms p99 {:.2} ms",
        watch.percentile(50.0),
        watch.percentile(99.0)
    );
    if let Some(e) = embedded {
        e.close().await.context("close the embedded store")?;
    }
    drop(store);
    tokio::task::block_in_place(|| cluster.shutdown());
    Ok(json!({
        "scenario": "store",
        "store": args.store.as_str(),
        "ops": args.ops,
        "concurrency": args.concurrency,
        "put_seq_per_s": round3(put_seq),
        "put_conc_per_s": round3(put_conc),
        "watch_p50_ms": round3(watch.percentile(50.0)),
        "watch_p99_ms": round3(watch.percentile(99.0)),
        "watch": summary(&watch),
    }))
}
