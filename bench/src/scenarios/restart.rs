//! `restart`: N finished TaskRuns stored through the API, then the
//! apiserver and its controllers stopped and started again on the same
//! data; reports how long until the restarted apiserver is ready
//! (`/readyz`) and a new TaskRun has been scheduled and run by an agent,
//! and the apiserver's resident memory then.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sloth_sdk::objects::{TaskRun, TaskRunPhase, TaskRunSpec, TaskRunStatus};
use sloth_sdk::{Api, Client, Error as SdkError};

use crate::cluster::{
    ApiServer, ApiServerOptions, Bins, Cluster, apiserver_ready, cpu_time, rss_mib,
    wait_agents_ready,
};
use crate::stats::round3;

const NAMESPACE: &str = "bench";
/// The agent the stored TaskRuns name: it never exists, so neither the
/// scheduler nor a real agent takes them while their status is written.
const RETIRED_AGENT: &str = "retired";
/// Attempts at one stored TaskRun's status when something else wrote it
/// first (a compare-and-swap conflict).
const STATUS_ATTEMPTS: usize = 5;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Finished TaskRuns stored before the restart.
    #[arg(long, default_value_t = 10_000)]
    taskruns: usize,
    /// Creates (and status writes) in flight at once while storing them.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Run sloth-controllers as its own process (restarted too) instead of
    /// in the apiserver.
    #[arg(long)]
    separate_controllers: bool,
    /// Give up waiting for readiness and the new TaskRun after this many
    /// seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

pub(crate) async fn run(bins: Bins, args: Args) -> anyhow::Result<Value> {
    if args.taskruns == 0 {
        bail!("--taskruns must be at least 1");
    }
    let options = ApiServerOptions {
        etcd_endpoints: None,
        controllers: !args.separate_controllers,
        extra_args: Vec::new(),
    };
    let mut cluster = Cluster::new(bins)?;
    let server = cluster.start_apiserver(&options)?;
    if args.separate_controllers {
        cluster.start_controllers(&server)?;
    }
    let client = Client::new(&[&server.grpc_url]).context("bad apiserver URL")?;
    let api: Api<TaskRunSpec> = Api::namespaced(client.clone(), NAMESPACE);

    eprintln!("storing {} finished TaskRuns", args.taskruns);
    let fill_start = Instant::now();
    store_finished(&api, args.taskruns, args.concurrency).await?;
    let fill_s = fill_start.elapsed().as_secs_f64();
    eprintln!(
        "stored {} TaskRuns in {fill_s:.1}s ({:.0}/s)",
        args.taskruns,
        args.taskruns as f64 / fill_s
    );
    cluster.start_agent(&server, "a1", &[])?;
    wait_agents_ready(&client, &["a1".to_string()], Duration::from_secs(60)).await?;
    let rss_before_mib = rss_mib(server.pid)?;

    eprintln!("restarting the apiserver and controllers");
    let stop_start = Instant::now();
    tokio::task::block_in_place(|| {
        if args.separate_controllers {
            cluster.stop_controllers();
        }
        cluster.stop_apiserver();
    });
    let stop_s = stop_start.elapsed().as_secs_f64();
    let cpu_before = cluster.cpu_usage();
    let restart_start = Instant::now();
    let restarted = tokio::task::block_in_place(|| cluster.restart_apiserver(&options, &server))?;
    if args.separate_controllers {
        cluster.start_controllers(&restarted)?;
    }
    let timeout = Duration::from_secs(args.timeout_secs);
    let ready_at = wait_ready(&restarted, restart_start + timeout).await?;
    let readyz_s = ready_at.duration_since(restart_start).as_secs_f64();
    eprintln!("/readyz passes {readyz_s:.2}s after the restart");
    let bound_at = run_one(&api, "after-restart", restart_start + timeout).await?;
    let ready_after_restart_s = restart_start.elapsed().as_secs_f64();
    let scheduled_s = bound_at.duration_since(restart_start).as_secs_f64();
    let apiserver_rss_mib = rss_mib(restarted.pid)?;
    let reconciles = if args.separate_controllers {
        Value::Null
    } else {
        reconciles_so_far(&restarted.http_url).await
    };
    eprintln!("reconciles per controller since the restart: {reconciles}");
    let apiserver_cpu_s = cpu_time(restarted.pid)?.as_secs_f64();
    // CPU seconds each process spent from the restart until the new
    // TaskRun ran (the restarted ones: all they have spent).
    let cpu_s_until_ready: serde_json::Map<String, Value> = cluster
        .cpu_usage()
        .into_iter()
        .map(|(name, now)| {
            let before = cpu_before
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.own)
                .unwrap_or_default();
            let own = now.own.saturating_sub(before).as_secs_f64();
            (name, json!(round3(own)))
        })
        .collect();
    eprintln!("CPU seconds per process until then: {cpu_s_until_ready:?}");
    eprintln!(
        "a new TaskRun ran {ready_after_restart_s:.2}s after the restart; apiserver RSS \
         {apiserver_rss_mib:.0} MiB, {apiserver_cpu_s:.2} CPU s"
    );
    tokio::task::block_in_place(|| cluster.shutdown());
    Ok(json!({
        "scenario": "restart",
        "store": "embedded",
        "taskruns": args.taskruns,
        "fill_s": round3(fill_s),
        "stop_s": round3(stop_s),
        "readyz_s": round3(readyz_s),
        "scheduled_s": round3(scheduled_s),
        "ready_after_restart_s": round3(ready_after_restart_s),
        "apiserver_rss_mib": round3(apiserver_rss_mib),
        "apiserver_rss_before_restart_mib": round3(rss_before_mib),
        "apiserver_cpu_s_until_ready": round3(apiserver_cpu_s),
        "cpu_s_until_ready": cpu_s_until_ready,
        "reconciles_until_ready": reconciles,
    }))
}

/// Reconciles each in-process controller has run, from the apiserver's
/// `/metrics` (null when it cannot be read): what the controllers worked
/// through between the restart and now.
async fn reconciles_so_far(http_url: &str) -> Value {
    let Some(address) = http_url.strip_prefix("http://").map(str::to_string) else {
        return Value::Null;
    };
    let page = tokio::task::spawn_blocking(move || super::writes::get_metrics(&address)).await;
    let Ok(Some(page)) = page else {
        return Value::Null;
    };
    let prefix = "sloth_controller_reconcile_duration_seconds_count{controller=\"";
    let counts: serde_json::Map<String, Value> = page
        .lines()
        .filter_map(|line| {
            let (name, count) = line.strip_prefix(prefix)?.split_once("\"} ")?;
            Some((name.to_string(), json!(count.trim().parse::<f64>().ok()?)))
        })
        .collect();
    Value::Object(counts)
}

/// Creates `count` TaskRuns bound to [`RETIRED_AGENT`] and marks each
/// Succeeded, `concurrency` at a time.
async fn store_finished(
    api: &Api<TaskRunSpec>,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.clamp(1, count) {
        let api = api.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                store_one(&api, &format!("done-{i}")).await?;
                if (i + 1).is_multiple_of(10_000) {
                    eprintln!("  {} stored", i + 1);
                }
            }
        }));
    }
    for worker in workers {
        worker.await.context("a storing task panicked")??;
    }
    Ok(())
}

async fn store_one(api: &Api<TaskRunSpec>, name: &str) -> anyhow::Result<()> {
    let mut tr = taskrun(name);
    tr.spec.agent_name = Some(RETIRED_AGENT.into());
    let mut tr = api
        .create(&tr)
        .await
        .with_context(|| format!("cannot create TaskRun {name}"))?;
    let now = chrono::Utc::now();
    for _ in 0..STATUS_ATTEMPTS {
        tr.status = Some(TaskRunStatus {
            phase: TaskRunPhase::Succeeded,
            agent: Some(RETIRED_AGENT.into()),
            start_time: Some(now),
            completion_time: Some(now),
            exit_code: Some(0),
            ..TaskRunStatus::default()
        });
        match api.update_status(&tr).await {
            Ok(_) => return Ok(()),
            Err(SdkError::Conflict(_)) => {
                tr = api
                    .get(name)
                    .await
                    .with_context(|| format!("cannot read TaskRun {name}"))?;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot finish TaskRun {name}")),
        }
    }
    bail!("TaskRun {name}: its status kept changing under the bench")
}

fn taskrun(name: &str) -> TaskRun {
    TaskRun::new(name, TaskRunSpec::shell("true"))
}

/// When `/readyz` first passed (polled every 10ms until `deadline`).
async fn wait_ready(server: &ApiServer, deadline: Instant) -> anyhow::Result<Instant> {
    loop {
        let url = server.http_url.clone();
        if tokio::task::spawn_blocking(move || apiserver_ready(&url)).await? {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("the restarted apiserver was not ready in time");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Creates TaskRun `name` (for any agent) and waits until it succeeded;
/// returns when it was first seen bound to an agent.
async fn run_one(api: &Api<TaskRunSpec>, name: &str, deadline: Instant) -> anyhow::Result<Instant> {
    loop {
        match api.create(&taskrun(name)).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("create {name}: {e} (retrying)");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create TaskRun {name}")),
        }
    }
    let mut bound = None;
    loop {
        if let Ok(tr) = api.get(name).await {
            if tr.spec.agent_name.is_some() && bound.is_none() {
                bound = Some(Instant::now());
            }
            if let Some(status) = &tr.status
                && !status.conditions.is_empty()
                && bound.is_none()
            {
                eprintln!("{name}: {:?}", status.conditions);
            }
            match tr.status.map(|s| s.phase) {
                Some(TaskRunPhase::Succeeded) => return Ok(bound.unwrap_or_else(Instant::now)),
                Some(phase) if phase.is_terminal() => bail!("TaskRun {name} ended {phase:?}"),
                _ => {}
            }
        }
        if Instant::now() > deadline {
            bail!("TaskRun {name} did not succeed in time after the restart");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
