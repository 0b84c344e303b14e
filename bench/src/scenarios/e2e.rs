//! `e2e`: M TaskRuns with the shell payload `true`, created as fast as
//! possible (bounded concurrency) or at a fixed rate, bound by the scheduler
//! to N real agents; one TaskRun watch times each from its create call to
//! Scheduled, Running and Succeeded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sloth_sdk::objects::{Payload, TaskRun, TaskRunPhase, TaskRunSpec};
use sloth_sdk::watcher::{Event, watch_objects};
use sloth_sdk::{Api, Client, ListParams, WatchParams};
use tokio::sync::{Notify, Semaphore};

use super::{StoreKind, ms, summary, time_ms};
use crate::cluster::{ApiServerOptions, Bins, Cluster, CpuTime, cpu_times, wait_agents_ready};
use crate::stats::{Samples, round3};

const NAMESPACE: &str = "bench";

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[arg(long, value_enum, default_value = "embedded")]
    store: StoreKind,
    /// Agents to start (a1, a2, ...).
    #[arg(long, default_value_t = 2)]
    agents: usize,
    /// TaskRuns to create.
    #[arg(long, default_value_t = 1000)]
    taskruns: usize,
    /// Create at this many per second instead of as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// With --store etcd: use this etcd instead of starting one.
    #[arg(long)]
    etcd_endpoints: Option<String>,
    /// Creates in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Each agent's --capacity (TaskRuns at once).
    #[arg(long, default_value_t = 32)]
    capacity: u32,
    /// Run sloth-controllers as its own process instead of in the apiserver.
    #[arg(long)]
    separate_controllers: bool,
    /// One more flag for sloth-apiserver (repeat for several), e.g.
    /// `--apiserver-arg=--bookmark-interval=50ms`.
    #[arg(long = "apiserver-arg", allow_hyphen_values = true)]
    apiserver_args: Vec<String>,
    /// Give up waiting for the TaskRuns after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// The TaskRuns' payload: `shell` (`bash -c true`) or `command`
    /// (`true` executed directly, no shell).
    #[arg(long, value_enum, default_value = "shell")]
    payload: PayloadArg,
}

/// How the bench's TaskRuns run `true`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PayloadArg {
    Shell,
    Command,
}

/// What the bench saw of one TaskRun (its own clock, one machine).
#[derive(Clone, Debug, Default)]
struct Track {
    created: Option<Instant>,
    /// When the create call returned.
    acked: Option<Instant>,
    create_failed: bool,
    scheduled: Option<Instant>,
    running: Option<Instant>,
    finished: Option<Instant>,
    succeeded: bool,
    /// completionTime - startTime from the status (the agent's own view).
    exec_ms: Option<f64>,
}

struct Shared {
    tracks: Mutex<HashMap<String, Track>>,
    finished: AtomicUsize,
    all_finished: Notify,
    expected: usize,
}

impl Shared {
    fn observe(&self, tr: &TaskRun, now: Instant) {
        let Some(status) = tr.status.as_ref() else {
            return;
        };
        let phase = status.phase;
        let scheduled = tr.spec.agent_name.is_some()
            || status.agent.is_some()
            || phase != TaskRunPhase::Pending;
        let running = matches!(
            phase,
            TaskRunPhase::Running | TaskRunPhase::Succeeded | TaskRunPhase::Failed
        );
        let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        let track = tracks.entry(tr.name().to_string()).or_default();
        if scheduled && track.scheduled.is_none() {
            track.scheduled = Some(now);
        }
        if running && track.running.is_none() {
            track.running = Some(now);
        }
        if phase.is_terminal() && track.finished.is_none() {
            track.finished = Some(now);
            track.succeeded = phase == TaskRunPhase::Succeeded;
            track.exec_ms = time_ms(status.start_time, status.completion_time);
            drop(tracks);
            self.count_finished();
        }
    }

    fn count_finished(&self) {
        if self.finished.fetch_add(1, Ordering::SeqCst) + 1 >= self.expected {
            self.all_finished.notify_one();
        }
    }
}

fn taskrun(name: String, payload: PayloadArg) -> TaskRun {
    let run = match payload {
        PayloadArg::Shell => Payload::shell("true"),
        PayloadArg::Command => Payload {
            command: Some(vec!["true".into()]),
            ..Payload::default()
        },
    };
    let mut tr = TaskRun::new(
        name,
        TaskRunSpec {
            run,
            ..TaskRunSpec::default()
        },
    );
    tr.metadata.namespace = NAMESPACE.into();
    tr
}

pub(crate) async fn run(bins: Bins, args: Args) -> anyhow::Result<Value> {
    if args.taskruns == 0 || args.agents == 0 {
        bail!("--taskruns and --agents must be at least 1");
    }
    let mut cluster = Cluster::new(bins)?;
    let endpoints = match (args.store, &args.etcd_endpoints) {
        (StoreKind::Embedded, _) => None,
        (StoreKind::Etcd, Some(endpoints)) => Some(endpoints.clone()),
        (StoreKind::Etcd, None) => Some(cluster.start_etcd()?),
    };
    let server = cluster.start_apiserver(&ApiServerOptions {
        etcd_endpoints: endpoints,
        controllers: !args.separate_controllers,
        extra_args: args.apiserver_args.clone(),
    })?;
    if args.separate_controllers {
        cluster.start_controllers(&server)?;
    }
    let names: Vec<String> = (1..=args.agents).map(|i| format!("a{i}")).collect();
    let agent_args = vec!["--capacity".to_string(), args.capacity.to_string()];
    for name in &names {
        cluster.start_agent(&server, name, &agent_args)?;
    }
    let client = Client::new(&[&server.grpc_url]).context("bad apiserver URL")?;
    wait_agents_ready(&client, &names, Duration::from_secs(30)).await?;
    eprintln!(
        "{} agents Ready (capacity {} each); creating {} TaskRuns{}",
        args.agents,
        args.capacity,
        args.taskruns,
        args.rate.map(|r| format!(" at {r}/s")).unwrap_or_default()
    );

    let shared = Arc::new(Shared {
        tracks: Mutex::new(HashMap::with_capacity(args.taskruns)),
        finished: AtomicUsize::new(0),
        all_finished: Notify::new(),
        expected: args.taskruns,
    });

    // The watch has its own connection, so creates do not delay events.
    let watch_client = Client::new(&[&server.grpc_url]).context("bad apiserver URL")?;
    let api: Api<TaskRunSpec> = Api::namespaced(watch_client, NAMESPACE);
    let mut stream = watch_objects(&api, NAMESPACE, WatchParams::default());
    let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
    let watcher = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut listed = Some(listed_tx);
            while let Some(item) = stream.next().await {
                let now = Instant::now();
                match item {
                    Ok(Event::Restarted(items)) => {
                        if let Some(tx) = listed.take() {
                            let _ = tx.send(());
                        }
                        for tr in &items {
                            shared.observe(tr, now);
                        }
                    }
                    Ok(Event::Applied(tr)) => shared.observe(&tr, now),
                    Ok(Event::Deleted(_)) => {}
                    Err(e) => eprintln!("watch: {e} (the watcher retries)"),
                }
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(30), listed_rx)
        .await
        .context("the TaskRun watch did not start")?
        .context("the TaskRun watch ended")?;

    let create_api: Api<TaskRunSpec> = Api::namespaced(client.clone(), NAMESPACE);
    let create_errors = Arc::new(AtomicUsize::new(0));
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let cpu_before = cpu_snapshot(&cluster);
    let writes_before = super::writes::snapshot(&server.http_url).await;
    let payload = args.payload;
    let start = Instant::now();
    let mut creators = Vec::with_capacity(args.taskruns);
    let mut ticker = args.rate.filter(|r| *r > 0.0).map(|r| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    for i in 0..args.taskruns {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .context("semaphore closed")?;
        let api = create_api.clone();
        let shared = shared.clone();
        let errors = create_errors.clone();
        creators.push(tokio::spawn(async move {
            let name = format!("e2e-{i}");
            let tr = taskrun(name.clone(), payload);
            let created = Instant::now();
            shared
                .tracks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(name.clone())
                .or_default()
                .created = Some(created);
            let outcome = api.create(&tr).await;
            let acked = Instant::now();
            {
                let mut tracks = shared.tracks.lock().unwrap_or_else(|e| e.into_inner());
                let track = tracks.entry(name).or_default();
                track.acked = Some(acked);
                if outcome.is_err() {
                    track.create_failed = true;
                }
            }
            if let Err(e) = outcome {
                if errors.fetch_add(1, Ordering::SeqCst) < 5 {
                    eprintln!("create e2e-{i}: {e}");
                }
                shared.count_finished();
            }
            drop(permit);
        }));
    }
    for c in creators {
        c.await.context("creator panicked")?;
    }
    let created_secs = start.elapsed().as_secs_f64();
    eprintln!(
        "created {} TaskRuns in {created_secs:.2}s ({:.0}/s); waiting for them to finish",
        args.taskruns,
        args.taskruns as f64 / created_secs
    );
    let deadline = Duration::from_secs(args.timeout_secs);
    let progress = async {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            eprintln!(
                "  {}/{} finished after {:.1}s",
                shared.finished.load(Ordering::SeqCst),
                args.taskruns,
                start.elapsed().as_secs_f64()
            );
        }
    };
    let waited = tokio::select! {
        r = tokio::time::timeout(deadline, async {
            while shared.finished.load(Ordering::SeqCst) < args.taskruns {
                shared.all_finished.notified().await;
            }
        }) => r,
        () = progress => Ok(()),
    };
    if waited.is_err() {
        eprintln!("timed out after {deadline:?}");
    }
    watcher.abort();
    let cpu = cpu_per_taskrun(&cpu_before, &cpu_snapshot(&cluster), args.taskruns);
    let writes = super::writes::per_taskrun(
        writes_before,
        super::writes::snapshot(&server.http_url).await,
        args.taskruns,
    );

    let tracks = shared
        .tracks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut result = analyse(
        &args,
        &tracks,
        start,
        created_secs,
        create_errors.load(Ordering::SeqCst),
    );
    result["cpu_ms_per_taskrun"] = cpu;
    result["writes_per_taskrun"] = writes;
    let unfinished: Vec<&str> = tracks
        .iter()
        .filter(|(_, t)| !t.create_failed && t.created.is_some() && t.finished.is_none())
        .map(|(name, _)| name.as_str())
        .collect();
    if !unfinished.is_empty() {
        result["unfinished_stored"] = stored_state(&create_api, &unfinished).await;
        cluster.keep();
    }
    tokio::task::block_in_place(|| cluster.shutdown());
    Ok(result)
}

/// CPU used so far by every process of the cluster and by the bench.
pub(crate) fn cpu_snapshot(cluster: &Cluster) -> Vec<(String, CpuTime)> {
    let mut all = cluster.cpu_usage();
    if let Ok(own) = cpu_times(std::process::id()) {
        all.push(("bench".into(), own));
    }
    all
}

/// Milliseconds of CPU per TaskRun between two snapshots, by role: the
/// apiserver (with its controllers), etcd, the agents themselves, their
/// payload processes (the children they reaped), and the bench.
pub(crate) fn cpu_per_taskrun(
    before: &[(String, CpuTime)],
    after: &[(String, CpuTime)],
    n: usize,
) -> Value {
    let mut by_role: std::collections::BTreeMap<&str, f64> = Default::default();
    for (name, now) in after {
        let Some((_, then)) = before.iter().find(|(b, _)| b == name) else {
            continue;
        };
        let used = now.saturating_sub(*then);
        let role = name.split('-').next().unwrap_or(name);
        *by_role.entry(role).or_default() += used.own.as_secs_f64();
        if role == "agent" {
            *by_role.entry("payloads").or_default() += used.children.as_secs_f64();
        }
    }
    let per = |secs: f64| round3(secs * 1000.0 / n.max(1) as f64);
    let total: f64 = by_role.values().sum();
    let mut out = serde_json::Map::new();
    for (role, secs) in &by_role {
        out.insert((*role).to_string(), json!(per(*secs)));
    }
    out.insert("total".into(), json!(per(total)));
    Value::Object(out)
}

/// For TaskRuns the watch never saw finish: what the store holds now, so a
/// lost watch event can be told from a TaskRun that really never finished.
async fn stored_state(api: &Api<TaskRunSpec>, names: &[&str]) -> Value {
    let list = match api.list(&ListParams::default()).await {
        Ok(list) => list,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let mut by_state: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for name in names {
        let state = match list.items.iter().find(|tr| tr.name() == *name) {
            None => "missing".to_string(),
            Some(tr) => {
                let status = tr.status_or_default();
                format!(
                    "{} agentName={} status.agent={} reason={}",
                    status.phase.as_str(),
                    tr.spec.agent_name.as_deref().unwrap_or("-"),
                    status.agent.as_deref().unwrap_or("-"),
                    if status.reason.is_empty() {
                        "-"
                    } else {
                        &status.reason
                    },
                )
            }
        };
        by_state.entry(state).or_default().push(name);
    }
    for (state, names) in &by_state {
        eprintln!("unfinished as seen by the watch, stored as {state}: {names:?}");
    }
    json!(by_state)
}

fn analyse(
    args: &Args,
    tracks: &HashMap<String, Track>,
    start: Instant,
    created_secs: f64,
    create_errors: usize,
) -> Value {
    let mut total = Vec::new();
    let mut to_running = Vec::new();
    let mut create_call = Vec::new();
    let mut to_scheduled = Vec::new();
    let mut scheduled_to_running = Vec::new();
    let mut running_to_done = Vec::new();
    let mut exec = Vec::new();
    let (mut failed, mut unfinished, mut succeeded) = (0, 0, 0);
    let mut last = start;
    for t in tracks.values().filter(|t| !t.create_failed) {
        let Some(created) = t.created else { continue };
        if let Some(acked) = t.acked {
            create_call.push(ms(created, acked));
        }
        if let Some(s) = t.scheduled {
            to_scheduled.push(ms(created, s));
        }
        if let (Some(s), Some(r)) = (t.scheduled, t.running) {
            scheduled_to_running.push(ms(s, r));
        }
        if let Some(r) = t.running {
            to_running.push(ms(created, r));
        }
        match t.finished {
            Some(done) if t.succeeded => {
                succeeded += 1;
                total.push(ms(created, done));
                last = last.max(done);
                if let Some(r) = t.running {
                    running_to_done.push(ms(r, done));
                }
            }
            Some(_) => failed += 1,
            None => unfinished += 1,
        }
        if let Some(e) = t.exec_ms {
            exec.push(e);
        }
    }
    let seconds = ms(start, last) / 1000.0;
    let total = Samples::new(total);
    let to_running = Samples::new(to_running);
    let throughput = if seconds > 0.0 {
        succeeded as f64 / seconds
    } else {
        0.0
    };
    let errors = create_errors + failed + unfinished;
    eprintln!(
        "{succeeded} Succeeded in {seconds:.2}s: {throughput:.0}/s, create->Succeeded p50 {:.1} ms p99 {:.1} ms, create->Running p99 {:.1} ms, errors {errors}",
        total.percentile(50.0),
        total.percentile(99.0),
        to_running.percentile(99.0)
    );
    json!({
        "scenario": "e2e",
        "store": args.store.as_str(),
        "agents": args.agents,
        "capacity": args.capacity,
        "taskruns": args.taskruns,
        "rate": args.rate,
        "throughput_per_s": round3(throughput),
        "p50_ms": round3(total.percentile(50.0)),
        "p99_ms": round3(total.percentile(99.0)),
        "p50_start_ms": round3(to_running.percentile(50.0)),
        "p99_start_ms": round3(to_running.percentile(99.0)),
        "seconds": round3(seconds),
        "create_seconds": round3(created_secs),
        "errors": errors,
        "failed": failed,
        "unfinished": unfinished,
        "stages_ms": {
            "create_call": summary(&Samples::new(create_call)),
            "create_to_scheduled": summary(&Samples::new(to_scheduled)),
            "scheduled_to_running": summary(&Samples::new(scheduled_to_running)),
            "running_to_succeeded": summary(&Samples::new(running_to_done)),
            "agent_exec": summary(&Samples::new(exec)),
        },
    })
}
