//! `workflow`: one Workflow of N `true` tasks in layers W wide, each layer
//! depending on every task of the previous one. The overhead is the wall
//! time (create -> Succeeded, as the bench sees it) minus the critical path
//! of the payloads (per layer, the longest startTime -> completionTime of
//! its TaskRuns, from their status), divided by N.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sloth_sdk::objects::workflow::WorkflowTask;
use sloth_sdk::objects::{Payload, TaskRunSpec, Workflow, WorkflowPhase, WorkflowSpec};
use sloth_sdk::watcher::{Event, watch_objects};
use sloth_sdk::{Api, ListParams, WatchParams};

use super::e2e::{cpu_per_taskrun, cpu_snapshot};
use super::time_ms;
use crate::cluster::{Bins, Cluster};
use crate::stats::round3;

const NAMESPACE: &str = "bench";
const NAME: &str = "bench-wf";

/// A status timestamp.
type Stamp = Option<chrono::DateTime<chrono::Utc>>;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Tasks in the DAG.
    #[arg(long, default_value_t = 100)]
    tasks: usize,
    /// Tasks per layer.
    #[arg(long, default_value_t = 10)]
    width: usize,
    /// Agents to start.
    #[arg(long, default_value_t = 2)]
    agents: usize,
    /// Each agent's --capacity (default: the width, so a layer runs at once).
    #[arg(long)]
    capacity: Option<u32>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

fn task_name(layer: usize, j: usize) -> String {
    format!("l{layer}-t{j}")
}

/// The tasks, layer by layer.
fn layers(tasks: usize, width: usize) -> Vec<Vec<String>> {
    (0..tasks.div_ceil(width))
        .map(|layer| {
            let n = width.min(tasks - layer * width);
            (0..n).map(|j| task_name(layer, j)).collect()
        })
        .collect()
}

fn workflow(layers: &[Vec<String>]) -> Workflow {
    let mut tasks = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        for name in layer {
            tasks.push(WorkflowTask {
                name: name.clone(),
                run: Payload::shell("true"),
                depends_on: if i == 0 {
                    Vec::new()
                } else {
                    layers[i - 1].clone()
                },
                ..WorkflowTask::default()
            });
        }
    }
    let mut wf = Workflow::new(
        NAME,
        WorkflowSpec {
            tasks,
            ..WorkflowSpec::default()
        },
    );
    wf.metadata.namespace = NAMESPACE.into();
    wf
}

pub(crate) async fn run(bins: Bins, args: Args) -> anyhow::Result<Value> {
    if args.tasks == 0 || args.width == 0 || args.agents == 0 {
        bail!("--tasks, --width and --agents must be at least 1");
    }
    let mut cluster = Cluster::new(bins)?;
    let capacity = args.capacity.unwrap_or(args.width as u32).max(1);
    let names: Vec<String> = (1..=args.agents).map(|i| format!("a{i}")).collect();
    let (_server, client, _) = cluster
        .start_with_agents(&names, &["--capacity".into(), capacity.to_string()])
        .await?;

    let layers = layers(args.tasks, args.width);
    let wf = workflow(&layers);
    let api: Api<sloth_sdk::objects::WorkflowSpec> = Api::namespaced(client.clone(), NAMESPACE);
    let params = WatchParams {
        field_selector: format!("metadata.name={NAME}"),
        ..WatchParams::default()
    };
    let mut events = watch_objects(&api, NAMESPACE, params);
    // The first event is the (empty) list: the watch is in place.
    events
        .next()
        .await
        .context("the Workflow watch ended")?
        .context("the Workflow watch failed")?;
    eprintln!(
        "creating workflow {NAME}: {} tasks in {} layers of {}",
        args.tasks,
        layers.len(),
        args.width
    );
    let cpu_before = cpu_snapshot(&cluster);
    let start = Instant::now();
    api.create(&wf).await.context("create the Workflow")?;
    let wait = async {
        while let Some(event) = events.next().await {
            let objects = match event {
                Ok(Event::Restarted(items)) => items,
                Ok(Event::Applied(o)) => vec![o],
                Ok(Event::Deleted(_)) => bail!("the workflow was deleted"),
                Err(e) => {
                    eprintln!("watch: {e} (the watcher retries)");
                    continue;
                }
            };
            for o in objects {
                match o.status_or_default().phase {
                    WorkflowPhase::Succeeded => return Ok(true),
                    WorkflowPhase::Failed | WorkflowPhase::Cancelled => return Ok(false),
                    _ => {}
                }
            }
        }
        bail!("the Workflow watch ended")
    };
    let succeeded = tokio::time::timeout(Duration::from_secs(args.timeout_secs), wait)
        .await
        .context("the workflow did not finish in time")??;
    let wall_ms = start.elapsed().as_secs_f64() * 1000.0;
    // Per task (one TaskRun each): where the overhead's CPU goes.
    let cpu = cpu_per_taskrun(&cpu_before, &cpu_snapshot(&cluster), args.tasks);
    drop(events);

    // Each task's own payload time, from its TaskRun's status.
    let runs: Api<TaskRunSpec> = Api::namespaced(client.clone(), NAMESPACE);
    let list = runs
        .list(&ListParams {
            label_selector: format!("sloth.dev/workflow={NAME}"),
            ..ListParams::default()
        })
        .await
        .context("list the TaskRuns")?;
    let mut by_task: HashMap<String, (f64, Stamp, Stamp)> = HashMap::new();
    for tr in &list.items {
        let Some(task) = tr.metadata.labels.get("sloth.dev/task") else {
            continue;
        };
        let status = tr.status_or_default();
        let exec = time_ms(status.start_time, status.completion_time).unwrap_or(0.0);
        by_task.insert(
            task.clone(),
            (exec, status.start_time, status.completion_time),
        );
    }
    let mut critical_ms = 0.0;
    let mut gaps = Vec::new();
    let mut previous_end: Option<chrono::DateTime<chrono::Utc>> = None;
    for layer in &layers {
        let runs: Vec<_> = layer.iter().filter_map(|t| by_task.get(t)).collect();
        critical_ms += runs.iter().map(|r| r.0).fold(0.0, f64::max);
        let first_start = runs.iter().filter_map(|r| r.1).min();
        if let Some(gap) = time_ms(previous_end, first_start) {
            gaps.push(gap);
        }
        previous_end = runs.iter().filter_map(|r| r.2).max();
    }
    let overhead = (wall_ms - critical_ms).max(0.0) / args.tasks as f64;
    let mean_gap = if gaps.is_empty() {
        0.0
    } else {
        gaps.iter().sum::<f64>() / gaps.len() as f64
    };
    eprintln!(
        "workflow {} in {:.2}s: critical path of the payloads {critical_ms:.1} ms, overhead {overhead:.2} ms/task, mean gap between layers {mean_gap:.1} ms",
        if succeeded { "Succeeded" } else { "FAILED" },
        wall_ms / 1000.0
    );
    tokio::task::block_in_place(|| cluster.shutdown());
    Ok(json!({
        "scenario": "workflow",
        "tasks": args.tasks,
        "width": args.width,
        "succeeded": succeeded,
        "taskruns": list.items.len(),
        "seconds": round3(wall_ms / 1000.0),
        "critical_path_ms": round3(critical_ms),
        "overhead_ms_per_task": round3(overhead),
        "layer_gap_ms_mean": round3(mean_gap),
        "cpu_ms_per_task": cpu,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_cover_every_task_once() {
        let l = layers(7, 3);
        assert_eq!(l.len(), 3);
        assert_eq!(l[2], vec!["l2-t0".to_string()]);
        let wf = workflow(&l);
        assert_eq!(wf.spec.tasks.len(), 7);
        assert!(wf.spec.tasks[0].depends_on.is_empty());
        assert_eq!(wf.spec.tasks[6].depends_on.len(), 3);
    }
}
