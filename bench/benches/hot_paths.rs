//! Micro-benchmarks of Sloth's hot paths: object JSON encode/decode, label
//! selector matching, the scheduler's filter and scoring over 10,000 agents,
//! the workflow planner over a 1,000-task DAG, that DAG's graph and the
//! Workflow admission check.
//!
//! `cargo bench -p sloth-bench --bench hot_paths` (add `-- NAME` to filter).

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use sloth_apiserver::registry::resources::Resources;
use sloth_apiserver::store::embedded::{EmbeddedOptions, EmbeddedStore};
use sloth_controllers::scheduler::filter::{Candidate, feasible};
use sloth_controllers::scheduler::policy::Placer;
use sloth_controllers::workflow::plan::{plan, plan_with};
use sloth_controllers::workflow::status_batch::progress_only;
use sloth_sdk::client::to_typed;
use sloth_sdk::dag::{Dag, Section};
use sloth_sdk::objects::workflow::{
    TaskPhase, TaskStatus, WorkflowPhase, WorkflowStatus, WorkflowTask,
};
use sloth_sdk::objects::{
    Agent, AgentPhase, AgentSpec, AgentStatus, LabelSelector, Payload, PlacementPolicy, TaskRun,
    TaskRunPhase, TaskRunSpec, TaskRunStatus, Workflow, WorkflowSpec,
};
use sloth_sdk::resource::DynamicObject;
use sloth_sdk::selector::Labels;
use sloth_sdk::validation::Validate;

fn sample_taskrun() -> TaskRun {
    let mut tr = TaskRun::new(
        "build-1234",
        TaskRunSpec {
            run: Payload::shell("make -j4 && make test"),
            agent_selector: Some(LabelSelector {
                match_labels: BTreeMap::from([("role".into(), "build".into())]),
                ..LabelSelector::default()
            }),
            env: BTreeMap::from([("CI".into(), "1".into()), ("TARGET".into(), "x86".into())])
                .into(),
            ..TaskRunSpec::default()
        },
    );
    tr.metadata.namespace = "default".into();
    tr.metadata.uid = "6f1c0e52-7a43-4d0e-9d53-3d4f2f6a9a10".into();
    tr.metadata.resource_version = "123456".into();
    tr.metadata
        .labels
        .insert("sloth.dev/workflow".into(), "release".into());
    tr.status = Some(TaskRunStatus {
        phase: TaskRunPhase::Running,
        agent: Some("build-1".into()),
        start_time: Some(Utc::now()),
        ..TaskRunStatus::default()
    });
    tr
}

fn objects(c: &mut Criterion) {
    let tr = sample_taskrun();
    let bytes = serde_json::to_vec(&tr).expect("encode");
    c.bench_function("taskrun_encode_json", |b| {
        b.iter(|| serde_json::to_vec(black_box(&tr)).expect("encode"))
    });
    c.bench_function("taskrun_decode_json", |b| {
        b.iter(|| serde_json::from_slice::<TaskRun>(black_box(&bytes)).expect("decode"))
    });
    let value = serde_json::to_value(&tr).expect("to value");
    c.bench_function("taskrun_value_to_typed", |b| {
        b.iter(|| serde_json::from_value::<TaskRun>(black_box(value.clone())).expect("typed"))
    });
    // What every typed watch does with an event's JSON.
    let workflow = serde_json::to_vec(&dag()).expect("encode");
    for (name, json) in [("taskrun", &bytes), ("workflow_1000_tasks", &workflow)] {
        c.bench_function(&format!("watch_event_to_typed_{name}"), |b| {
            b.iter(|| {
                let dynamic: DynamicObject =
                    serde_json::from_slice(black_box(json)).expect("decode");
                if name == "taskrun" {
                    to_typed::<TaskRunSpec>(dynamic).map(drop).expect("typed");
                } else {
                    to_typed::<WorkflowSpec>(dynamic).map(drop).expect("typed");
                }
            })
        });
    }
}

fn labels(i: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("sloth.dev/agent".into(), format!("agent-{i:05}")),
        ("role".into(), ["build", "test", "deploy"][i % 3].into()),
        (
            "zone".into(),
            ["eu-west", "eu-east", "us-east", "ap-south"][i % 4].into(),
        ),
        ("arch".into(), ["amd64", "arm64"][i % 2].into()),
    ])
}

fn selectors(c: &mut Criterion) {
    let text = "role=build,zone in (eu-west,eu-east),arch!=arm64,!gpu";
    c.bench_function("selector_parse", |b| {
        b.iter(|| Labels::parse(black_box(text)).expect("parse"))
    });
    let selector = Labels::parse(text).expect("parse");
    let matching = labels(0);
    let other = labels(1);
    c.bench_function("selector_match", |b| {
        b.iter(|| {
            black_box(selector.matches(black_box(&matching)))
                | black_box(selector.matches(black_box(&other)))
        })
    });
}

fn agents(n: usize) -> Vec<Arc<Agent>> {
    (0..n)
        .map(|i| {
            let mut a = Agent::new(
                format!("agent-{i:05}"),
                AgentSpec {
                    address: format!("10.0.{}.{}:50051", i / 256, i % 256),
                    capacity: 8,
                    ..AgentSpec::default()
                },
            );
            a.metadata.labels = labels(i);
            a.status = Some(AgentStatus {
                phase: AgentPhase::Ready,
                allocatable: 8,
                ..AgentStatus::default()
            });
            Arc::new(a)
        })
        .collect()
}

fn scheduler(c: &mut Criterion) {
    let agents = agents(10_000);
    let running: HashMap<String, u32> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name().to_string(), (i % 9) as u32))
        .collect();
    let mut any = sample_taskrun();
    any.spec.agent_selector = None;
    let build = sample_taskrun();
    c.bench_function("scheduler_feasible_10k_agents_no_selector", |b| {
        b.iter(|| feasible(black_box(&any), &agents, &running).expect("feasible"))
    });
    c.bench_function("scheduler_feasible_10k_agents_selector", |b| {
        b.iter(|| feasible(black_box(&build), &agents, &running).expect("feasible"))
    });
    let candidates: Vec<Candidate> = feasible(&any, &agents, &running).expect("feasible");
    let groups = HashMap::new();
    for (name, policy) in [
        ("least_loaded", PlacementPolicy::LeastLoaded),
        ("round_robin", PlacementPolicy::RoundRobin),
        ("spread", PlacementPolicy::Spread),
    ] {
        let mut placer = Placer::default();
        c.bench_function(&format!("scheduler_pick_{name}_10k_agents"), |b| {
            b.iter(|| {
                placer
                    .pick(policy, "", black_box(&candidates), &groups)
                    .map(|c| c.running)
            })
        });
    }
}

/// 1,000 tasks in 20 layers of 50, each depending on the whole layer before.
fn dag() -> Workflow {
    let (tasks, width) = (1000, 50);
    let name = |layer: usize, j: usize| format!("l{layer}-t{j}");
    let mut list = Vec::new();
    for layer in 0..tasks / width {
        for j in 0..width {
            list.push(WorkflowTask {
                name: name(layer, j),
                run: Payload::shell("true"),
                depends_on: if layer == 0 {
                    Vec::new()
                } else {
                    (0..width).map(|k| name(layer - 1, k)).collect()
                },
                ..WorkflowTask::default()
            });
        }
    }
    let mut wf = Workflow::new(
        "wf",
        WorkflowSpec {
            tasks: list,
            ..WorkflowSpec::default()
        },
    );
    wf.metadata.namespace = "default".into();
    wf.metadata.uid = "uid-1".into();
    wf.metadata.generation = 1;
    wf
}

fn workflow_plan(c: &mut Criterion) {
    let now = Utc
        .with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
        .single()
        .expect("a valid time");
    let fresh = dag();
    c.bench_function("plan_1000_tasks_fresh", |b| {
        b.iter(|| plan(black_box(&fresh), &[], now))
    });
    // Half way: the first 10 layers Succeeded, the 11th just created.
    let mut wf = dag();
    let mut runs: BTreeMap<String, TaskRun> = BTreeMap::new();
    for _ in 0..11 {
        let current: Vec<&TaskRun> = runs.values().collect();
        let p = plan(&wf, &current, now);
        wf.status = Some(p.status.clone());
        let finish = runs.len() < 500;
        for new in p.create {
            let mut tr = new.taskrun;
            if finish {
                tr.status = Some(TaskRunStatus {
                    phase: TaskRunPhase::Succeeded,
                    reason: "Completed".into(),
                    start_time: Some(now),
                    completion_time: Some(now),
                    exit_code: Some(0),
                    ..TaskRunStatus::default()
                });
            }
            runs.insert(tr.name().to_string(), tr);
        }
    }
    let current: Vec<&TaskRun> = runs.values().collect();
    c.bench_function("plan_1000_tasks_half_done", |b| {
        b.iter(|| plan(black_box(&wf), &current, now))
    });
    // As the controller plans: the graph kept from the previous reconcile.
    let graph = Dag::of(&wf.spec);
    c.bench_function("plan_1000_tasks_half_done_cached_dag", |b| {
        b.iter(|| plan_with(black_box(&wf), &graph, &current, now))
    });
}

/// The workflow's graph (built once per spec) and the admission check every
/// write of the Workflow, status writes included, goes through.
fn workflow_dag(c: &mut Criterion) {
    let wf = dag();
    c.bench_function("dag_build_1000_tasks", |b| {
        b.iter(|| Dag::of(black_box(&wf.spec)))
    });
    let graph = Dag::of(&wf.spec);
    c.bench_function("dag_topological_1000_tasks", |b| {
        b.iter(|| black_box(&graph).topological(Section::Tasks))
    });
    c.bench_function("validate_workflow_1000_tasks", |b| {
        b.iter(|| WorkflowSpec::validate(black_box(&wf)))
    });
}

/// A status write of the 1,000-task Workflow half way through (500 tasks
/// done): admission as the apiserver did it for every write (decode and
/// validate the whole object, then the update check, which decodes the
/// stored and the new object), admission of the status alone, and the
/// whole write path in process (parse, read, merge, admit, encode, store
/// on the embedded store).
fn workflow_status_write(c: &mut Criterion) {
    let mut wf = dag();
    let mut status = WorkflowStatus {
        phase: WorkflowPhase::Running,
        ..WorkflowStatus::default()
    };
    for task in wf.spec.tasks.iter().take(500) {
        status.tasks.insert(
            task.name.clone(),
            TaskStatus {
                phase: TaskPhase::Succeeded,
                task_run: Some(format!("wf-{}-1", task.name)),
                attempt: 1,
                ..TaskStatus::default()
            },
        );
    }
    let stored = serde_json::to_value(&wf).expect("to value");
    wf.status = Some(status);
    let merged = serde_json::to_value(&wf).expect("to value");
    let kind = sloth_sdk::kinds::by_kind("Workflow").expect("Workflow kind");
    c.bench_function("workflow_status_admit_whole_1000_tasks", |b| {
        b.iter(|| {
            let admitted = (kind.admit)(black_box(merged.clone())).expect("admitted");
            (kind.check_update)(&stored, &admitted).expect("update allowed");
        })
    });
    c.bench_function("workflow_status_admit_status_only_1000_tasks", |b| {
        b.iter(|| {
            sloth_sdk::kinds::admit_status(kind, &stored, black_box(merged.clone()))
                .expect("admitted")
        })
    });
    c.bench_function("workflow_clone_1000_tasks", |b| {
        b.iter(|| black_box(&merged).clone())
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let resources = runtime.block_on(async {
        let store = EmbeddedStore::open(&dir.path().join("bench.redb"), EmbeddedOptions::default())
            .await
            .expect("open the embedded store");
        let resources = Resources::new(store);
        let mut fresh = wf.clone();
        fresh.status = None;
        let json = serde_json::to_vec(&fresh).expect("encode");
        resources.create("Workflow", &json).await.expect("create");
        resources
    });
    // Two statuses taking turns, so that every write changes the object.
    let mut other = wf.clone();
    if let Some(status) = other.status.as_mut() {
        status.phase = WorkflowPhase::Pending;
    }
    let bodies = [&wf, &other].map(|w| serde_json::to_vec(w).expect("encode"));
    let mut turn = 0;
    c.bench_function("workflow_status_write_in_process_1000_tasks", |b| {
        b.iter(|| {
            turn += 1;
            let body = &bodies[turn % 2];
            runtime
                .block_on(resources.update_status("Workflow", body, ""))
                .expect("written")
        })
    });
    // The controller's check, per status change, whether the change may
    // wait for the next write: 1,000 task entries, half of them moving.
    let old = wf.status_or_default();
    let mut moved = old.clone();
    for task in moved.tasks.values_mut() {
        task.phase = TaskPhase::Succeeded;
    }
    c.bench_function("workflow_status_progress_only_1000_tasks", |b| {
        b.iter(|| progress_only(black_box(&old), black_box(&moved)))
    });
}

criterion_group!(
    benches,
    objects,
    selectors,
    scheduler,
    workflow_plan,
    workflow_dag,
    workflow_status_write
);
criterion_main!(benches);
