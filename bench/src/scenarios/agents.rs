//! `agents`: N simulated agents in this process against one apiserver on
//! the embedded store. Each creates its Agent object (status Ready), renews
//! its Lock `sloth-system/agent-NAME` every 10 s by compare-and-swap (as
//! agent/src/heartbeat.rs does; renewals spread evenly over the period) and
//! holds a TaskRun watch with the field selector `spec.agentName=NAME`.
//! Measured over `--duration` once all are set up: the apiserver's RSS and
//! CPU, and the renewal latency.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sloth_proto::v1::resources_client::ResourcesClient;
use sloth_sdk::objects::{Agent, AgentPhase, AgentSpec, AgentStatus, Lock, LockSpec, TaskRunSpec};
use sloth_sdk::{Api, Client, Error, WatchParams};
use tonic::transport::{Channel, Endpoint};

use super::lease_renewal::LeaseTemplate;
use super::summary;
use crate::cluster::{ApiServerOptions, Bins, Cluster, cpu_time, rss_mib};
use crate::stats::{Samples, round3};

/// The renewal period (a 30 s lease renewed every third of it).
const PERIOD: Duration = Duration::from_secs(10);
/// Streams per connection: the server allows a bounded number of
/// concurrent HTTP/2 streams per connection, and watches hold theirs.
const WATCHES_PER_CONNECTION: usize = 100;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Simulated agents.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// How long to measure once every agent is set up (e.g. 60s, 2s).
    #[arg(long, default_value = "60s", value_parser = sloth_sdk::duration::parse_flag)]
    duration: Duration,
    /// Concurrent calls while setting up.
    #[arg(long, default_value_t = 64)]
    setup_concurrency: usize,
    /// Run the apiserver without its in-process controllers.
    #[arg(long)]
    no_controllers: bool,
}

fn agent_name(i: usize) -> String {
    format!("sim-{i:05}")
}

/// Creates the Agent (status Ready) and its Lock; returns the Lock.
async fn register(client: &Client, name: &str) -> Result<Lock, Error> {
    let agents: Api<AgentSpec> = Api::all(client.clone());
    let mut agent = Agent::new(
        name,
        AgentSpec {
            address: "127.0.0.1:1".into(),
            capacity: 4,
            ..AgentSpec::default()
        },
    );
    agent
        .metadata
        .labels
        .insert("sloth.dev/agent".into(), name.into());
    let mut agent = agents.create(&agent).await?;
    // The lifecycle controller may write the status meanwhile: re-read on
    // a conflict, as the agent does.
    for attempt in 0.. {
        agent.status = Some(AgentStatus {
            phase: AgentPhase::Ready,
            allocatable: 4,
            last_heartbeat_time: Some(Utc::now()),
            ..AgentStatus::default()
        });
        match agents.update_status(&agent).await {
            Ok(_) => break,
            Err(Error::Conflict(_)) if attempt < 5 => agent = agents.get(name).await?,
            Err(e) => return Err(e),
        }
    }
    let locks: Api<LockSpec> = Api::namespaced(client.clone(), "sloth-system");
    let now = Utc::now();
    locks
        .create(&Lock::new(
            format!("agent-{name}"),
            LockSpec {
                holder_identity: Some(name.into()),
                lease_duration_seconds: Some(30),
                acquire_time: Some(now),
                renew_time: Some(now),
                lease_transitions: 0,
            },
        ))
        .await
}

/// What the renewal task reports to the scenario.
struct Renewals {
    stop: Arc<AtomicBool>,
    latencies: Arc<Mutex<Vec<f64>>>,
    errors: Arc<AtomicUsize>,
}

/// How often the renewal task looks for agents due to renew.
const RENEWAL_TICK: Duration = Duration::from_millis(5);

/// Renews every agent's Lock once per `PERIOD`, agent k of n at offset
/// `spread * k / n`, from one task: the renewals in flight are futures of
/// this task, not tasks of their own. An agent whose last renewal has not
/// returned when it is due again skips that turn.
async fn renew_all(
    stubs: Vec<ResourcesClient<Channel>>,
    agents: Vec<(usize, LeaseTemplate)>,
    spread: Duration,
    report: Renewals,
) {
    let n = agents.len().max(1);
    let connections = stubs.len().max(1);
    let mut slots: Vec<(usize, Option<LeaseTemplate>)> = agents
        .into_iter()
        .map(|(i, lease)| (i, Some(lease)))
        .collect();
    let begin = tokio::time::Instant::now();
    let due = |round: u32, k: usize| begin + PERIOD * round + spread.mul_f64(k as f64 / n as f64);
    let (mut round, mut next) = (0u32, 0usize);
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let mut tick = tokio::time::interval(RENEWAL_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if report.stop.load(Ordering::SeqCst) {
                    return;
                }
                let now = tokio::time::Instant::now();
                while !slots.is_empty() && due(round, next) <= now {
                    let (i, lease) = &mut slots[next];
                    if let Some(mut lease) = lease.take() {
                        let mut stub = stubs[*i % connections].clone();
                        let k = next;
                        in_flight.push(async move {
                            let t = Instant::now();
                            let result = lease.renew(&mut stub).await;
                            (k, lease, result, t.elapsed())
                        });
                    }
                    next += 1;
                    if next == slots.len() {
                        (round, next) = (round + 1, 0);
                    }
                }
            }
            Some((k, lease, result, took)) = in_flight.next(), if !in_flight.is_empty() => {
                slots[k].1 = Some(lease);
                match result {
                    Ok(()) => report
                        .latencies
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(took.as_secs_f64() * 1000.0),
                    Err(e) => {
                        if report.errors.fetch_add(1, Ordering::SeqCst) < 5 {
                            eprintln!("renew: {e}");
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn run(bins: Bins, args: Args) -> anyhow::Result<Value> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    let mut cluster = Cluster::new(bins)?;
    let server = cluster.start_apiserver(&ApiServerOptions {
        etcd_endpoints: None,
        controllers: !args.no_controllers,
        ..ApiServerOptions::default()
    })?;
    let connections = args.count.div_ceil(WATCHES_PER_CONNECTION).max(2);
    let clients: Vec<Client> = (0..connections)
        .map(|_| Client::new(&[&server.grpc_url]))
        .collect::<Result<_, _>>()
        .context("bad apiserver URL")?;
    let rss_before = rss_mib(server.pid)?;
    eprintln!(
        "setting up {} simulated agents over {connections} connections",
        args.count
    );
    let setup_start = Instant::now();
    let locks: Vec<Result<Lock, Error>> = futures_util::stream::iter(0..args.count)
        .map(|i| {
            let client = clients[i % connections].clone();
            async move { register(&client, &agent_name(i)).await }
        })
        .buffered(args.setup_concurrency.max(1))
        .collect()
        .await;
    let mut setup_errors = 0;
    let mut ok_locks = Vec::with_capacity(args.count);
    for (i, lock) in locks.into_iter().enumerate() {
        match lock {
            Ok(lock) => ok_locks.push((i, LeaseTemplate::new(&lock)?)),
            Err(e) => {
                setup_errors += 1;
                if setup_errors <= 5 {
                    eprintln!("register {}: {e}", agent_name(i));
                }
            }
        }
    }

    // The watches, all drained by one task: no task per simulated agent.
    let open = Arc::new(AtomicUsize::new(0));
    let watch_errors = Arc::new(AtomicUsize::new(0));
    let watch_streams: Vec<_> = futures_util::stream::iter(0..args.count)
        .map(|i| {
            let api: Api<TaskRunSpec> = Api::all(clients[i % connections].clone());
            async move {
                let params = WatchParams {
                    field_selector: format!("spec.agentName={}", agent_name(i)),
                    allow_bookmarks: true,
                    ..WatchParams::default()
                };
                api.watch(&params, "").await
            }
        })
        .buffered(args.setup_concurrency.max(1))
        .collect()
        .await;
    let mut streams = Vec::with_capacity(args.count);
    for stream in watch_streams {
        match stream {
            Ok(stream) => {
                open.fetch_add(1, Ordering::SeqCst);
                // Each stream ends with one None, so its end is counted;
                // an error ends it too.
                let stream = stream
                    .map(|item| item.is_ok())
                    .take_while(|ok| futures_util::future::ready(*ok))
                    .map(|_| false)
                    .chain(futures_util::stream::once(futures_util::future::ready(
                        true,
                    )))
                    .boxed();
                streams.push(stream);
            }
            Err(e) => {
                if watch_errors.fetch_add(1, Ordering::SeqCst) < 5 {
                    eprintln!("watch: {e}");
                }
            }
        }
    }
    let watcher = {
        let open = open.clone();
        let mut merged = futures_util::stream::select_all(streams);
        tokio::spawn(async move {
            while let Some(ended) = merged.next().await {
                if ended {
                    open.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })
    };
    let setup_secs = setup_start.elapsed().as_secs_f64();
    eprintln!(
        "set up in {setup_secs:.1}s ({} watches open, {setup_errors} registration errors); measuring for {:?}",
        open.load(Ordering::SeqCst),
        args.duration
    );

    // Renewals: agent k of n renews at offset k/n of the period (the first
    // round spread over the measurement when it is shorter than a period),
    // all driven by one task.
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let renew_errors = Arc::new(AtomicUsize::new(0));
    // The renewals speak gRPC directly, one stub per connection (see
    // `lease_renewal`); the registrations and watches above use the SDK.
    let mut stubs = Vec::with_capacity(connections);
    for _ in 0..connections {
        let channel = Endpoint::from_shared(server.grpc_url.clone())
            .context("bad apiserver URL")?
            .connect()
            .await
            .context("connecting to the apiserver for the renewals")?;
        stubs.push(ResourcesClient::new(channel));
    }
    let renewals = tokio::spawn(renew_all(
        stubs,
        ok_locks,
        PERIOD.min(args.duration),
        Renewals {
            stop: stop.clone(),
            latencies: latencies.clone(),
            errors: renew_errors.clone(),
        },
    ));
    let cpu_start = cpu_time(server.pid)?;
    let wall = Instant::now();
    let mut rss_peak = rss_mib(server.pid)?;
    let end = wall + args.duration;
    while Instant::now() < end {
        let left = end.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        rss_peak = rss_peak.max(rss_mib(server.pid)?);
    }
    let cpu = cpu_time(server.pid)?.saturating_sub(cpu_start);
    let cpu_percent = cpu.as_secs_f64() / wall.elapsed().as_secs_f64() * 100.0;
    let rss = rss_mib(server.pid)?;
    stop.store(true, Ordering::SeqCst);
    renewals.abort();
    let watch_count = open.load(Ordering::SeqCst);
    let samples = Samples::new(std::mem::take(
        &mut *latencies.lock().unwrap_or_else(|e| e.into_inner()),
    ));
    eprintln!(
        "apiserver RSS {rss:.1} MiB (peak {rss_peak:.1}), CPU {cpu_percent:.1}% of a core, heartbeat p99 {:.1} ms over {} renewals, {watch_count} watches open",
        samples.percentile(99.0),
        samples.len()
    );
    watcher.abort();
    drop(clients);
    tokio::task::block_in_place(|| cluster.shutdown());
    Ok(json!({
        "scenario": "agents",
        "count": args.count,
        "duration_s": args.duration.as_secs_f64(),
        "connections": connections,
        "setup_seconds": round3(setup_secs),
        "apiserver_rss_mib": round3(rss),
        "apiserver_rss_peak_mib": round3(rss_peak),
        "apiserver_rss_before_mib": round3(rss_before),
        "apiserver_cpu_percent": round3(cpu_percent),
        "heartbeat_p50_ms": round3(samples.percentile(50.0)),
        "heartbeat_p99_ms": round3(samples.percentile(99.0)),
        "heartbeats": summary(&samples),
        "watch_count": watch_count,
        "errors": setup_errors + watch_errors.load(Ordering::SeqCst) + renew_errors.load(Ordering::SeqCst),
    }))
}
