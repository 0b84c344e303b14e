//! The embedded store after an I/O error: read-only (reads keep working,
//! writes get `ReadOnly`), then writable again by itself once the disk
//! takes writes. The disk "fills" through the store's fault switch, which
//! makes every write to the data file fail with ENOSPC while a file exists.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use sloth_apiserver::store::embedded::{EmbeddedOptions, EmbeddedStore};
use sloth_apiserver::store::{Event, ListOptions, Store, StoreError, WatchItem};
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(30);

struct Faulty {
    dir: TempDir,
    switch: PathBuf,
}

impl Faulty {
    fn new() -> Self {
        let dir = TempDir::new().expect("temporary directory");
        let switch = dir.path().join("disk-full");
        Self { dir, switch }
    }

    async fn open(&self) -> Arc<EmbeddedStore> {
        EmbeddedStore::open(
            &self.dir.path().join("sloth.redb"),
            EmbeddedOptions {
                progress_interval: Duration::from_millis(100),
                fault_switch: Some(self.switch.clone()),
                ..EmbeddedOptions::default()
            },
        )
        .await
        .expect("open the store")
    }

    fn fill_disk(&self) {
        std::fs::write(&self.switch, "").expect("switch the fault on");
    }

    fn free_disk(&self) {
        std::fs::remove_file(&self.switch).expect("switch the fault off");
    }
}

fn value(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

async fn wait_until_writable(store: &EmbeddedStore) {
    let deadline = Instant::now() + WAIT;
    while store.fault().is_some() {
        assert!(
            Instant::now() < deadline,
            "the store was still read-only {WAIT:?} after the disk was freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_read_only(result: Result<i64, StoreError>) {
    match result {
        Err(e @ StoreError::ReadOnly(_)) => {
            let text = e.to_string();
            assert!(
                text.contains("No space left on device")
                    && text.contains("writes resume once the disk accepts them"),
                "{text}"
            );
        }
        other => panic!("expected a ReadOnly error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_the_store_read_only_until_it_takes_writes_again() {
    let disk = Faulty::new();
    let store = disk.open().await;
    let first = store.create("/a", value("1")).await.expect("create a");
    let mut watch = store.watch("/", 0).await.expect("watch");
    assert_eq!(store.fault(), None);

    disk.fill_disk();
    assert_read_only(store.create("/b", value("2")).await);
    let fault = store.fault().expect("the store reports its fault");
    assert!(fault.contains("No space left on device"), "{fault}");
    // Refused at once, while the writer waits to retry.
    assert_read_only(store.create("/c", value("3")).await);
    assert_read_only(store.update("/a", value("x"), first).await.map(|_| 0));

    // Reads keep working from what was committed.
    let a = store.get("/a").await.expect("get a").expect("a exists");
    assert_eq!(a.value, value("1"));
    assert_eq!(store.get("/b").await.expect("get b"), None);
    let listed = store.list("/", ListOptions::default()).await.expect("list");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(store.current_revision().await.expect("revision"), first);

    disk.free_disk();
    wait_until_writable(&store).await;
    let next = store.create("/d", value("4")).await.expect("create d");
    assert_eq!(next, first + 1, "refused writes took no revision");

    let mut keys = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while keys.len() < 2 {
        let item = tokio::time::timeout_at(deadline, watch.next())
            .await
            .expect("watch events in time")
            .expect("the watch goes on")
            .expect("no watch error");
        if let WatchItem::Events(events) = item {
            keys.extend(events.iter().map(|e| match e {
                Event::Put { kv, .. } => kv.key.clone(),
                Event::Delete { prev, .. } => prev.key.clone(),
            }));
        }
    }
    assert_eq!(keys, ["/a", "/d"], "the watch survived the fault");

    store.close().await.expect("close");
    let reopened = disk.open().await;
    let listed = reopened
        .list("/", ListOptions::default())
        .await
        .expect("list after reopen");
    let keys: Vec<_> = listed.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/a", "/d"]);
    reopened.close().await.expect("close again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_read_only_store_succeeds_and_keeps_its_data() {
    let disk = Faulty::new();
    let store = disk.open().await;
    store.create("/a", value("1")).await.expect("create a");
    disk.fill_disk();
    assert_read_only(store.create("/b", value("2")).await);
    store
        .close()
        .await
        .expect("a read-only store closes cleanly");

    disk.free_disk();
    let reopened = disk.open().await;
    assert!(reopened.get("/a").await.expect("get").is_some());
    assert_eq!(reopened.fault(), None);
    reopened.create("/b", value("2")).await.expect("writable");
    reopened.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_opened_on_a_full_disk_starts_read_only_and_recovers() {
    let disk = Faulty::new();
    let store = disk.open().await;
    store.create("/a", value("1")).await.expect("create a");
    store.close().await.expect("close");

    disk.fill_disk();
    let store = disk.open().await;
    let fault = store.fault().expect("opened read-only");
    assert!(fault.contains("No space left on device"), "{fault}");
    assert!(store.get("/a").await.expect("get a").is_some());
    assert_read_only(store.create("/b", value("2")).await);

    disk.free_disk();
    wait_until_writable(&store).await;
    assert_eq!(store.create("/b", value("2")).await.expect("create b"), 2);
    store.close().await.expect("close");
}
