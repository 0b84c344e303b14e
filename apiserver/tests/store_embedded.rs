//! The embedded store: the shared conformance suite, plus what only this
//! backend promises (restart, group commit, catching up after lagging).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sloth_apiserver::store::embedded::{EmbeddedOptions, EmbeddedStore};
use sloth_apiserver::store::{Event, ListOptions, Store, StoreError, StoreResult, WatchItem};
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(30);

fn options() -> EmbeddedOptions {
    EmbeddedOptions {
        progress_interval: Duration::from_millis(100),
        ..EmbeddedOptions::default()
    }
}

async fn open(dir: &Path, options: EmbeddedOptions) -> Arc<EmbeddedStore> {
    EmbeddedStore::open(&dir.join("sloth.redb"), options)
        .await
        .expect("open the store")
}

/// The directory must outlive the store, so it travels with it.
async fn fresh_store() -> (Arc<dyn Store>, TempDir) {
    let dir = TempDir::new().expect("temporary directory");
    let store: Arc<dyn Store> = open(dir.path(), options()).await;
    (store, dir)
}

mod conformance {
    sloth_apiserver::store_conformance_tests!(super::fresh_store);
}

fn value(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

async fn bounded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Events (progress skipped) until `count` have arrived.
async fn collect(
    stream: &mut BoxStream<'static, StoreResult<WatchItem>>,
    count: usize,
) -> Vec<Event> {
    bounded("watch events", async {
        let mut events = Vec::new();
        while events.len() < count {
            match stream.next().await {
                Some(Ok(WatchItem::Events(batch))) => events.extend(batch),
                Some(Ok(WatchItem::Progress(_))) => {}
                Some(Err(e)) => panic!("watch failed: {e}"),
                None => panic!("watch ended"),
            }
        }
        events
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_revisions_survive_reopen() {
    let dir = TempDir::new().expect("temporary directory");
    let store = open(dir.path(), options()).await;
    let a = store.create("/r/a", value("one")).await.expect("create");
    let a2 = store.update("/r/a", value("two"), a).await.expect("update");
    store.create("/r/b", value("b")).await.expect("create");
    let (_, last) = store.delete("/r/b", None).await.expect("delete");
    store.close().await.expect("close");
    assert!(matches!(store.get("/r/a").await, Err(StoreError::Closed)));
    assert!(matches!(
        store.create("/r/c", value("c")).await,
        Err(StoreError::Closed)
    ));

    let store = open(dir.path(), options()).await;
    assert_eq!(store.current_revision().await.expect("revision"), last);
    let got = store.get("/r/a").await.expect("get").expect("present");
    assert_eq!(
        (got.value, got.create_revision, got.mod_revision),
        (value("two"), a, a2)
    );
    assert_eq!(store.get("/r/b").await.expect("get"), None);
    let next = store.create("/r/c", value("c")).await.expect("create");
    assert_eq!(next, last + 1, "revisions continue after a restart");

    // History survives too: a watch can resume from before the restart.
    let mut stream = store.watch("/r/", a).await.expect("watch");
    let revisions: Vec<i64> = collect(&mut stream, 4)
        .await
        .iter()
        .map(Event::revision)
        .collect();
    assert_eq!(revisions, [a2, a2 + 1, last, next]);
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_compaction_keeps_compacted_revision() {
    let dir = TempDir::new().expect("temporary directory");
    let store = open(dir.path(), options()).await;
    let a = store.create("/c/a", value("one")).await.expect("create");
    let a2 = store.update("/c/a", value("two"), a).await.expect("update");
    store.create("/c/b", value("b")).await.expect("create");
    store.compact(a2).await.expect("compact");
    store.close().await.expect("close");

    let store = open(dir.path(), options()).await;
    assert_eq!(store.compacted_revision().await.expect("compacted"), a2);
    assert!(matches!(
        store.watch("/c/", a - 1).await,
        Err(StoreError::Expired { .. })
    ));
    let old = ListOptions {
        revision: Some(a),
        ..ListOptions::default()
    };
    assert!(matches!(
        store.list("/c/", old).await,
        Err(StoreError::Expired { .. })
    ));
    let listed = store
        .list("/c/", ListOptions::default())
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 2);
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits() {
    const WRITES: usize = 200;
    let dir = TempDir::new().expect("temporary directory");
    let store = open(dir.path(), options()).await;
    let before = store.commit_count();
    let writes: Vec<_> = (0..WRITES)
        .map(|i| {
            let store = store.clone();
            async move { store.create(&format!("/g/{i:04}"), value("x")).await }
        })
        .collect();
    let results = bounded("the writes", futures_util::future::join_all(writes)).await;
    let mut revisions: Vec<i64> = results.into_iter().map(|r| r.expect("create")).collect();
    revisions.sort_unstable();
    assert_eq!(revisions, (1..=WRITES as i64).collect::<Vec<_>>());
    let commits = store.commit_count() - before;
    assert!(
        commits < WRITES as u64,
        "{WRITES} writes took {commits} commits"
    );
    store.close().await.expect("close");
}

/// A live watch (its first event read) whose consumer stops reading while
/// more batches than the broadcast buffer holds are committed.
async fn lagging_watch(
    store: &EmbeddedStore,
    writes: usize,
) -> BoxStream<'static, StoreResult<WatchItem>> {
    let mut stream = store.watch("/lag/", 0).await.expect("watch");
    store
        .create("/lag/first", value("x"))
        .await
        .expect("create");
    collect(&mut stream, 1).await;
    // Sequential writes are separate batches, so the buffer overflows.
    for i in 0..writes {
        store
            .create(&format!("/lag/{i:02}"), value("x"))
            .await
            .expect("create");
    }
    stream
}

fn small_buffer() -> EmbeddedOptions {
    EmbeddedOptions {
        watch_buffer: 2,
        ..options()
    }
}

/// A watcher slower than the broadcast buffer catches up from history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_watch_catches_up_from_history() {
    let dir = TempDir::new().expect("temporary directory");
    let store = open(dir.path(), small_buffer()).await;
    let mut stream = lagging_watch(&store, 50).await;
    let revisions: Vec<i64> = collect(&mut stream, 50)
        .await
        .iter()
        .map(Event::revision)
        .collect();
    assert_eq!(revisions, (2..=51).collect::<Vec<_>>());
    store.create("/lag/live", value("x")).await.expect("create");
    let live = collect(&mut stream, 1).await;
    assert_eq!(live[0].key(), "/lag/live");
    store.close().await.expect("close");
}

/// A watcher that lags past a compaction cannot be given a complete
/// history any more: it must be told to relist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_watch_past_compaction_expires() {
    let dir = TempDir::new().expect("temporary directory");
    let store = open(dir.path(), small_buffer()).await;
    let mut stream = lagging_watch(&store, 20).await;
    store.compact(10).await.expect("compact");
    let outcome = bounded("the expiry", async {
        loop {
            match stream.next().await {
                Some(Ok(WatchItem::Progress(_))) => {}
                Some(Ok(WatchItem::Events(events))) => panic!("got {events:?} after compaction"),
                Some(Err(e)) => return e,
                None => panic!("watch ended without an error"),
            }
        }
    })
    .await;
    assert!(
        matches!(outcome, StoreError::Expired { compacted: 10, .. }),
        "{outcome}"
    );
    assert!(
        bounded("the end of the watch", stream.next())
            .await
            .is_none()
    );
    store.close().await.expect("close");
}

/// An idle store costs idle watches nothing: progress only reports news.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_progress_without_news() {
    let dir = TempDir::new().expect("temporary directory");
    let store = open(dir.path(), options()).await;
    let rev = store.create("/other/a", value("x")).await.expect("create");
    let mut stream = store.watch("/idle/", rev).await.expect("watch");
    let quiet = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(
        quiet.is_err(),
        "an idle watch on an idle store got {quiet:?}"
    );
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_watches_and_refuses_work() {
    let dir = TempDir::new().expect("temporary directory");
    let store = open(dir.path(), options()).await;
    store.create("/e/a", value("x")).await.expect("create");
    let mut stream = store.watch("/e/", 0).await.expect("watch");
    collect(&mut stream, 1).await;
    store.close().await.expect("close");
    let rest = bounded("the end of the watch", async {
        let mut rest = Vec::new();
        while let Some(item) = stream.next().await {
            rest.push(item);
        }
        rest
    })
    .await;
    assert!(
        rest.iter()
            .all(|item| matches!(item, Ok(WatchItem::Progress(_)))),
        "{rest:?}"
    );
    assert!(matches!(
        store.watch("/e/", 0).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        store.current_revision().await,
        Err(StoreError::Closed)
    ));
    store.close().await.expect("closing twice");
    // The file is free again.
    let store = open(dir.path(), options()).await;
    assert_eq!(store.current_revision().await.expect("revision"), 1);
    store.close().await.expect("close");
}
