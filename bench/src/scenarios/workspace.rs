//! `workspace`: fan-out of one workspace (default 100 MiB of incompressible
//! bytes) to N tasks on 2 agents. Measures packing, the upload (through
//! the apiserver into its file store), the workflow's wall time with every
//! task starting from the unpacked workspace, how many times each agent
//! fetched the blob (its cache should make it once), and the peak RSS of
//! the apiserver and the agents while it ran.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sloth_sdk::Api;
use sloth_sdk::blob::archive;
use sloth_sdk::objects::workflow::WorkflowTask;
use sloth_sdk::objects::{BlobRef, Payload, Workflow, WorkflowPhase, WorkflowSpec};

use crate::cluster::{Bins, Cluster, rss_mib};
use crate::stats::round3;

const NAMESPACE: &str = "bench";
const NAME: &str = "bench-ws";

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Size of the workspace's one file, in MiB.
    #[arg(long, default_value_t = 100)]
    mib: u64,
    /// Tasks reading it (no dependencies between them).
    #[arg(long, default_value_t = 20)]
    tasks: usize,
    /// Each of the 2 agents' --capacity.
    #[arg(long, default_value_t = 4)]
    capacity: u32,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
}

/// `mib` MiB of xorshift bytes: zstd cannot shrink them.
fn write_incompressible(path: &Path, mib: u64) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
    );
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for word in chunk.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        out.write_all(&chunk)?;
    }
    out.flush()?;
    Ok(())
}

fn workflow(tasks: usize, workspace: BlobRef, bytes: u64) -> Workflow {
    let tasks = (0..tasks)
        .map(|i| WorkflowTask {
            name: format!("t{i}"),
            run: Payload::shell(format!("test \"$(stat -c %s data.bin)\" = {bytes}")),
            ..WorkflowTask::default()
        })
        .collect();
    let mut wf = Workflow::new(
        NAME,
        WorkflowSpec {
            tasks,
            workspace: Some(workspace),
            ..WorkflowSpec::default()
        },
    );
    wf.metadata.namespace = NAMESPACE.into();
    wf
}

/// Samples the peak RSS (MiB) of each pid until stopped.
fn sample_rss(
    pids: Vec<u32>,
    stop: Arc<AtomicBool>,
) -> (Vec<Arc<AtomicU64>>, std::thread::JoinHandle<()>) {
    let peaks: Vec<Arc<AtomicU64>> = pids.iter().map(|_| Arc::default()).collect();
    let seen = peaks.clone();
    let thread = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            for (pid, peak) in pids.iter().zip(&seen) {
                if let Ok(mib) = rss_mib(*pid) {
                    peak.fetch_max((mib * 1024.0) as u64, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    (peaks, thread)
}

/// Blobs in an agent's cache.
fn cached_blobs(work_dir: &Path) -> usize {
    std::fs::read_dir(work_dir.join(".sloth-blobs"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().len() == 64)
                .count()
        })
        .unwrap_or(0)
}

pub(crate) async fn run(bins: Bins, args: Args) -> anyhow::Result<Value> {
    if args.tasks == 0 || args.mib == 0 {
        bail!("--tasks and --mib must be at least 1");
    }
    let mut cluster = Cluster::new(bins)?;
    let names = ["a1".to_string(), "a2".to_string()];
    let (server, client, agent_pids) = cluster
        .start_with_agents(&names, &["--capacity".into(), args.capacity.to_string()])
        .await?;
    let pids: Vec<u32> = std::iter::once(server.pid).chain(agent_pids).collect();
    let idle: Vec<f64> = pids.iter().map(|p| rss_mib(*p).unwrap_or(0.0)).collect();

    let ws = cluster.dir("workspace")?;
    write_incompressible(&ws.join("data.bin"), args.mib)?;
    let archive_path = cluster.dir("scratch")?.join("ws.tar.zst");
    let stop = Arc::new(AtomicBool::new(false));
    let (peaks, sampler) = sample_rss(pids.clone(), stop.clone());

    let start = Instant::now();
    let (source, out) = (ws.clone(), archive_path.clone());
    let packed = tokio::task::spawn_blocking(move || archive::pack_workspace(&source, &out))
        .await
        .context("the pack task")??;
    let pack_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    client
        .put_blob(&archive_path, &packed.digest, packed.size, None, None)
        .await
        .context("upload the workspace")?;
    let upload_s = start.elapsed().as_secs_f64();
    eprintln!(
        "workspace {} MiB packed in {pack_s:.2}s, uploaded in {upload_s:.2}s; running {} tasks",
        args.mib, args.tasks
    );

    let bytes = args.mib * 1024 * 1024;
    let blob = BlobRef {
        digest: packed.digest.to_string(),
        size: packed.size,
    };
    let api: Api<WorkflowSpec> = Api::namespaced(client.clone(), NAMESPACE);
    let start = Instant::now();
    api.create(&workflow(args.tasks, blob, bytes))
        .await
        .context("create the Workflow")?;
    let deadline = start + Duration::from_secs(args.timeout_secs);
    let phase = loop {
        let wf = api.get(NAME).await.context("read the Workflow")?;
        let phase = wf.status_or_default().phase;
        if matches!(
            phase,
            WorkflowPhase::Succeeded | WorkflowPhase::Failed | WorkflowPhase::Cancelled
        ) {
            break phase;
        }
        if Instant::now() > deadline {
            bail!("the workflow did not finish in {}s", args.timeout_secs);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wall_s = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let peaks: Vec<f64> = peaks
        .iter()
        .map(|p| p.load(Ordering::Relaxed) as f64 / 1024.0)
        .collect();
    let fetched: Vec<usize> = names
        .iter()
        .map(|n| {
            cluster
                .dir(&format!("agent-{n}"))
                .map_or(0, |d| cached_blobs(&d))
        })
        .collect();
    eprintln!(
        "workflow {phase:?} in {wall_s:.2}s; blobs cached per agent {fetched:?}; peak RSS MiB {peaks:?} (idle {idle:?})"
    );
    tokio::task::block_in_place(|| cluster.shutdown());
    let mib = args.mib as f64;
    Ok(json!({
        "scenario": "workspace",
        "mib": args.mib,
        "tasks": args.tasks,
        "succeeded": phase == WorkflowPhase::Succeeded,
        "archive_bytes": packed.size,
        "pack_seconds": round3(pack_s),
        "pack_mib_per_s": round3(mib / pack_s.max(0.001)),
        "upload_seconds": round3(upload_s),
        "upload_mib_per_s": round3(mib / upload_s.max(0.001)),
        "workflow_seconds": round3(wall_s),
        "blobs_cached_per_agent": fetched,
        "rss_idle_mib": idle.iter().map(|v| round3(*v)).collect::<Vec<_>>(),
        "rss_peak_mib": peaks.iter().map(|v| round3(*v)).collect::<Vec<_>>(),
    }))
}
