//! Micro-benchmark of the watch cache's fan-out: what the apiserver spends
//! to send one change to 100 watchers of its kind, and to bring one stored
//! change into the cache.
//!
//! - `watch_fanout_100_per_watcher`: as before the shared encoding: each
//!   watcher copies the decoded object and encodes it to JSON itself.
//! - `watch_fanout_100_cached`: the cache's form: the change is encoded
//!   once into a `CachedObject` and each watcher sends its bytes.
//! - `watch_cache_decode_value`: the old cached form of one stored change
//!   (a decoded `serde_json::Value`, encoded later by the first watcher).
//! - `watch_cache_decode_cached`: the compact form (decode, encode once,
//!   keep the JSON and the selector fields).
//!
//! `cargo bench -p sloth-bench --bench watch_fanout`

use std::hint::black_box;
use std::sync::Arc;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use sloth_apiserver::api::grpc::event_to_proto;
use sloth_apiserver::cache::CachedObject;
use sloth_apiserver::registry::objects::{decode_stored, to_store};
use sloth_apiserver::registry::watch::{EventObject, EventType, ObjectEvent};
use sloth_sdk::objects::{TaskRun, TaskRunPhase, TaskRunSpec, TaskRunStatus};

const WATCHERS: usize = 100;
const REVISION: i64 = 123_456;

fn taskrun() -> Value {
    let mut tr = TaskRun::new(
        "build-1234",
        TaskRunSpec {
            agent_name: Some("build-1".into()),
            ..TaskRunSpec::shell("make -j4 && make test")
        },
    );
    tr.metadata.namespace = "default".into();
    tr.metadata.uid = "6f1c0e52-7a43-4d0e-9d53-3d4f2f6a9a10".into();
    tr.metadata.resource_version = REVISION.to_string();
    tr.status = Some(TaskRunStatus {
        phase: TaskRunPhase::Running,
        agent: Some("build-1".into()),
        start_time: Some(Utc::now()),
        ..TaskRunStatus::default()
    });
    serde_json::to_value(&tr).expect("to value")
}

fn fanout(c: &mut Criterion) {
    let kind = sloth_sdk::kinds::by_kind("TaskRun").expect("TaskRun kind");
    let object = Arc::new(taskrun());
    let event = |object: EventObject| ObjectEvent {
        event_type: EventType::Modified,
        object: Some(object),
        kind,
        revision: REVISION,
    };
    c.bench_function("watch_fanout_100_per_watcher", |b| {
        b.iter(|| {
            for _ in 0..WATCHERS {
                let copy = Arc::new(Value::clone(black_box(&object)));
                black_box(event_to_proto(event(EventObject::Decoded(copy))).expect("encode"));
            }
        })
    });
    c.bench_function("watch_fanout_100_cached", |b| {
        b.iter(|| {
            let cached = Arc::new(CachedObject::new(black_box(&object)).expect("cache"));
            for _ in 0..WATCHERS {
                let e = event(EventObject::Cached(cached.clone()));
                black_box(event_to_proto(e).expect("encode"));
            }
        })
    });
}

fn cached_form(c: &mut Criterion) {
    let stored = to_store(&mut taskrun()).expect("store bytes");
    c.bench_function("watch_cache_decode_value", |b| {
        b.iter(|| black_box(decode_stored(black_box(&stored), REVISION).expect("decode")))
    });
    c.bench_function("watch_cache_decode_cached", |b| {
        b.iter(|| {
            let value = decode_stored(black_box(&stored), REVISION).expect("decode");
            black_box(CachedObject::new(&value).expect("cache"))
        })
    });
}

criterion_group!(benches, fanout, cached_form);
criterion_main!(benches);
