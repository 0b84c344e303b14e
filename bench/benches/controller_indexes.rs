//! Micro-benchmarks of the controllers' indexes that replaced whole-object
//! caches in issue 22: the expiry controllers' due-time index (`DueQueue`)
//! and the workflow controller's TaskRuns-per-workflow index.
//!
//! `cargo bench -p sloth-bench --bench controller_indexes`.

use std::hint::black_box;

use chrono::{Duration, TimeZone, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use sloth_controllers::due_queue::{Due, DueQueue};
use sloth_controllers::workflow::index::TaskRunIndex;
use sloth_sdk::meta::OwnerReference;
use sloth_sdk::objects::{TaskRun, TaskRunSpec, Workflow, WorkflowSpec};
use sloth_sdk::runtime::ObjectRef;
use sloth_sdk::watcher::Event;
use sloth_sdk::well_known::WORKFLOW_LABEL;

const STORED: usize = 100_000;

fn due_queue(c: &mut Criterion) {
    let start = Utc
        .with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
        .single()
        .expect("a valid time");
    let entries: Vec<(ObjectRef, Due)> = (0..STORED)
        .map(|i| {
            let due = Due {
                at: start + Duration::seconds((i * 7919 % STORED) as i64),
                resource_version: i.to_string(),
            };
            (ObjectRef::new("default", format!("tr-{i}")), due)
        })
        .collect();
    // A restart: every stored TaskRun with a TTL tracked once.
    c.bench_function("due_queue_track_100k", |b| {
        b.iter_batched(
            || entries.clone(),
            |entries| {
                let mut queue = DueQueue::new();
                for (key, due) in entries {
                    queue.set(key, Some(due));
                }
                queue
            },
            BatchSize::LargeInput,
        )
    });
    let mut full = DueQueue::new();
    for (key, due) in entries.iter().cloned() {
        full.set(key, Some(due));
    }
    // The steady state: one object changes (its due time moves).
    c.bench_function("due_queue_update_one_of_100k", |b| {
        let key = ObjectRef::new("default", "tr-4242");
        let mut shift = 0;
        b.iter(|| {
            shift += 1;
            full.set(
                key.clone(),
                Some(Due {
                    at: start + Duration::seconds(shift),
                    resource_version: "1".into(),
                }),
            );
        })
    });
    // What a tick does: pop the one entry that is due.
    c.bench_function("due_queue_pop_due_of_100k", |b| {
        b.iter_batched(
            || {
                let mut queue = DueQueue::new();
                queue.set(
                    ObjectRef::new("default", "due"),
                    Some(Due {
                        at: start - Duration::seconds(1),
                        resource_version: "1".into(),
                    }),
                );
                queue
            },
            |mut queue| black_box(queue.pop_due(start)),
            BatchSize::SmallInput,
        )
    });
}

fn workflow(name: &str, uid: &str) -> Workflow {
    let mut wf = Workflow::new(name, WorkflowSpec::default());
    wf.metadata.namespace = "default".into();
    wf.metadata.uid = uid.into();
    wf
}

fn owned_taskrun(wf: &Workflow, i: usize) -> TaskRun {
    let mut tr = TaskRun::new(format!("{}-t{i}-1", wf.name()), TaskRunSpec::shell("true"));
    tr.metadata.namespace = "default".into();
    tr.metadata
        .labels
        .insert(WORKFLOW_LABEL.into(), wf.name().into());
    tr.metadata.owner_references.push(OwnerReference {
        kind: "Workflow".into(),
        name: wf.name().into(),
        uid: wf.metadata.uid.clone(),
        ..OwnerReference::default()
    });
    tr
}

fn taskrun_index(c: &mut Criterion) {
    // 100 workflows of 1,000 TaskRuns each are stored; one reconcile reads
    // its own workflow's 1,000.
    let workflows: Vec<Workflow> = (0..100)
        .map(|w| workflow(&format!("wf-{w}"), &format!("uid-{w}")))
        .collect();
    let runs: Vec<TaskRun> = workflows
        .iter()
        .flat_map(|wf| (0..1_000).map(move |i| owned_taskrun(wf, i)))
        .collect();
    let index = TaskRunIndex::default();
    index.apply(&Event::Restarted(runs.clone()));
    c.bench_function("taskrun_index_owned_1000_of_100k", |b| {
        b.iter(|| black_box(index.owned(black_box(&workflows[42]))))
    });
    let changed = runs[42_000].clone();
    let event = Event::Applied(changed);
    c.bench_function("taskrun_index_apply_one_of_100k", |b| {
        b.iter(|| index.apply(black_box(&event)))
    });
}

criterion_group!(benches, due_queue, taskrun_index);
criterion_main!(benches);
