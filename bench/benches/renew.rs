//! Micro-benchmarks of a heartbeat renewal on the apiserver: a Lock update
//! with a new `spec.renewTime`, compare-and-swap on its resourceVersion.
//!
//! - `lock_renew_checks`: the CPU-only part of the update path (merge onto
//!   the stored object, admission, update checks, encoding for the store).
//! - `lock_renew_update`: the whole `Resources::update` on the embedded
//!   store (read, checks, durable write): put the store on tmpfs with
//!   `TMPDIR=/dev/shm`, as the `agents` scenario does.
//!
//! `cargo bench -p sloth-bench --bench renew`

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use sloth_apiserver::registry::objects;
use sloth_apiserver::registry::resources::Resources;
use sloth_apiserver::store::embedded::{EmbeddedOptions, EmbeddedStore};
use sloth_sdk::objects::{Lock, LockSpec};

fn lock(renewed: DateTime<Utc>) -> Lock {
    let mut lock = Lock::new(
        "agent-build-0042",
        LockSpec {
            holder_identity: Some("build-0042-6f1c0e52".into()),
            lease_duration_seconds: Some(30),
            acquire_time: Some(renewed),
            renew_time: Some(renewed),
            lease_transitions: 0,
        },
    );
    lock.metadata.namespace = "sloth-system".into();
    lock
}

/// The request of a renewal at `now` of `stored` (as the agent sends it).
fn renewal(stored: &Value, now: DateTime<Utc>) -> Value {
    let mut next = stored.clone();
    next["spec"]["renewTime"] = serde_json::to_value(now).expect("time");
    next
}

fn checks(c: &mut Criterion) {
    let kind = sloth_sdk::kinds::by_kind("Lock").expect("Lock kind");
    let mut stored = serde_json::to_value(lock(Utc::now())).expect("to value");
    stored["metadata"]["uid"] = "6f1c0e52-7a43-4d0e-9d53-3d4f2f6a9a10".into();
    stored["metadata"]["resourceVersion"] = "123456".into();
    let requested = renewal(&stored, Utc::now());
    c.bench_function("lock_renew_checks", |b| {
        b.iter(|| {
            let merged = objects::merge_update(black_box(&stored), black_box(&requested));
            let mut admitted = (kind.admit)(merged).expect("admitted");
            assert!(!objects::same_but_resource_version(&admitted, &stored));
            (kind.check_update)(&stored, &admitted).expect("checked");
            black_box(objects::to_store(&mut admitted).expect("encoded"))
        })
    });
}

fn update(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let resources = runtime.block_on(async {
        let store = EmbeddedStore::open(&dir.path().join("sloth.redb"), EmbeddedOptions::default())
            .await
            .expect("open the store");
        Resources::new(store)
    });
    let created = runtime
        .block_on(resources.create(
            "Lock",
            &serde_json::to_vec(&lock(Utc::now())).expect("json"),
        ))
        .expect("created");
    let mut stored = created.value;
    c.bench_function("lock_renew_update", |b| {
        b.iter(|| {
            let json = serde_json::to_vec(&renewal(&stored, Utc::now())).expect("json");
            let written = runtime
                .block_on(resources.update("Lock", &json, ""))
                .expect("renewed");
            stored = written.value;
        })
    });
}

criterion_group!(benches, checks, update);
criterion_main!(benches);
