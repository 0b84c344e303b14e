//! The watch cache against the embedded store: replay from a revision,
//! Expired when too old, selector transitions, slow watchers dropped,
//! re-established and relisted store watches, one store watch per kind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use super::{CacheOptions, WatchCache};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::registry::keys::object_key;
use crate::registry::resources::{Selectors, resolve_kind};
use crate::registry::watch::{EventType, ObjectEvent, WatchRequest};
use crate::store::embedded::{EmbeddedOptions, EmbeddedStore};
use crate::store::{KeyValue, ListOptions, ListResult, Store, StoreError, StoreResult, WatchItem};

const WAIT: Duration = Duration::from_secs(10);

type Events = BoxStream<'static, Result<ObjectEvent, ApiError>>;

/// The embedded store, with store watches the test can break, and make
/// the next re-established watch fail with Expired (as after compaction).
#[derive(Debug)]
struct Faulty {
    inner: Arc<EmbeddedStore>,
    breaks: std::sync::Mutex<CancellationToken>,
    expire_next_watch: AtomicBool,
    /// The next events come after a progress notification that claims to
    /// cover them, as etcd before 3.4.31/3.5.13 can send (etcd-io/etcd#15220).
    overtake_next_events: Arc<AtomicBool>,
    /// With `overtake_next_events`: the store watch then fails before it
    /// sends those events.
    fail_after_overtaking: Arc<AtomicBool>,
}

impl Faulty {
    /// Ends every open store watch with a backend error.
    fn break_watches(&self) {
        let mut token = self.breaks.lock().expect("lock");
        token.cancel();
        *token = CancellationToken::new();
    }
}

#[async_trait]
impl Store for Faulty {
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str, options: ListOptions) -> StoreResult<ListResult> {
        self.inner.list(prefix, options).await
    }
    async fn create(&self, key: &str, value: Bytes) -> StoreResult<i64> {
        self.inner.create(key, value).await
    }
    async fn update(&self, key: &str, value: Bytes, expected: i64) -> StoreResult<i64> {
        self.inner.update(key, value, expected).await
    }
    async fn delete(&self, key: &str, expected: Option<i64>) -> StoreResult<(KeyValue, i64)> {
        self.inner.delete(key, expected).await
    }
    async fn watch(
        &self,
        prefix: &str,
        after_revision: i64,
    ) -> StoreResult<BoxStream<'static, StoreResult<WatchItem>>> {
        if self.expire_next_watch.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Expired {
                requested: after_revision,
                compacted: after_revision + 1,
            });
        }
        let broken = self.breaks.lock().expect("lock").clone();
        let overtake = self.overtake_next_events.clone();
        let fail = self.fail_after_overtaking.clone();
        let stream = self
            .inner
            .watch(prefix, after_revision)
            .await?
            .flat_map(move |item| {
                let mut items = Vec::new();
                if let Ok(WatchItem::Events(events)) = &item
                    && let Some(last) = events.iter().map(|e| e.revision()).max()
                    && overtake.swap(false, Ordering::SeqCst)
                {
                    items.push(Ok(WatchItem::Progress(last)));
                    if fail.swap(false, Ordering::SeqCst) {
                        items.push(Err(StoreError::Backend("connection lost (test)".into())));
                        return futures_util::stream::iter(items);
                    }
                }
                items.push(item);
                futures_util::stream::iter(items)
            });
        let failure = futures_util::stream::once(async {
            Err(StoreError::Backend("connection lost (test)".into()))
        });
        Ok(stream
            .take_until(broken.cancelled_owned())
            .chain(failure)
            .boxed())
    }
    async fn compact(&self, revision: i64) -> StoreResult<()> {
        self.inner.compact(revision).await
    }
    async fn current_revision(&self) -> StoreResult<i64> {
        self.inner.current_revision().await
    }
    async fn compacted_revision(&self) -> StoreResult<i64> {
        self.inner.compacted_revision().await
    }
}

struct Fixture {
    store: Arc<Faulty>,
    cache: Arc<WatchCache>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    _dir: TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn fixture(options: CacheOptions) -> Fixture {
    let dir = TempDir::new().expect("temporary directory");
    let inner = EmbeddedStore::open(
        &dir.path().join("sloth.redb"),
        EmbeddedOptions {
            progress_interval: Duration::from_millis(50),
            ..EmbeddedOptions::default()
        },
    )
    .await
    .expect("open the store");
    let store = Arc::new(Faulty {
        inner,
        breaks: std::sync::Mutex::new(CancellationToken::new()),
        expire_next_watch: AtomicBool::new(false),
        overtake_next_events: Arc::default(),
        fail_after_overtaking: Arc::default(),
    });
    let metrics = Arc::new(Metrics::default());
    let shutdown = CancellationToken::new();
    let cache = WatchCache::new(store.clone(), metrics.clone(), options, shutdown.clone());
    Fixture {
        store,
        cache,
        metrics,
        shutdown,
        _dir: dir,
    }
}

fn taskrun(name: &str, agent: &str, team: &str) -> Value {
    json!({
        "apiVersion": "sloth.dev/v1",
        "kind": "TaskRun",
        "metadata": {"name": name, "namespace": "default", "labels": {"team": team}},
        "spec": {"agentName": agent},
    })
}

fn key(name: &str) -> String {
    object_key(resolve_kind("TaskRun").expect("kind"), "default", name)
}

fn bytes(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("json"))
}

impl Fixture {
    async fn create(&self, name: &str, agent: &str, team: &str) -> i64 {
        self.store
            .create(&key(name), bytes(&taskrun(name, agent, team)))
            .await
            .expect("create")
    }

    async fn update(&self, name: &str, agent: &str, team: &str) -> i64 {
        let current = self
            .store
            .get(&key(name))
            .await
            .expect("get")
            .expect("exists");
        self.store
            .update(
                &key(name),
                bytes(&taskrun(name, agent, team)),
                current.mod_revision,
            )
            .await
            .expect("update")
    }

    async fn watch(&self, labels: &str, fields: &str, rv: Option<i64>) -> Result<Events, ApiError> {
        self.cache
            .watch(WatchRequest {
                kind: "TaskRun".into(),
                namespace: "default".into(),
                selectors: Selectors::parse(labels, fields).expect("selectors"),
                resource_version: rv,
                allow_bookmarks: true,
                bookmark_interval: Duration::from_millis(100),
            })
            .await
    }
}

/// The next non-bookmark event: (type, name, revision).
async fn next(events: &mut Events) -> (EventType, String, i64) {
    loop {
        let event = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .expect("not an error");
        if event.event_type == EventType::Bookmark {
            continue;
        }
        let name = event
            .object
            .as_ref()
            .map(|o| o.name().to_string())
            .expect("object name");
        return (event.event_type, name, event.revision);
    }
}

/// The first error the stream ends with, skipping events.
async fn error_of(events: &mut Events) -> ApiError {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => return e,
                None => panic!("stream ended without an error"),
            }
        }
    })
    .await
    .expect("an error in time")
}

/// A bookmark at or beyond `revision` arrives (nothing else before it).
async fn bookmark_reaches(events: &mut Events, revision: i64) {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events
                .next()
                .await
                .expect("stream goes on")
                .expect("no error");
            assert_eq!(
                event.event_type,
                EventType::Bookmark,
                "unexpected event {event:?}"
            );
            if event.revision >= revision {
                return;
            }
        }
    })
    .await
    .expect("a bookmark in time");
}

#[tokio::test]
async fn replays_after_a_revision_then_follows_live() {
    let f = fixture(CacheOptions::default()).await;
    let ra = f.create("a", "x", "t").await;
    f.create("b", "x", "t").await;
    // The cache starts after these writes, yet covers them: a client that
    // listed before it started resumes without relisting.
    let mut events = f.watch("", "", Some(ra)).await.expect("watch");
    assert_eq!(next(&mut events).await.1, "b");
    let rc = f.create("c", "x", "t").await;
    assert_eq!(next(&mut events).await, (EventType::Added, "c".into(), rc));
    // Without a revision: the current objects as ADDED, then live.
    let mut fresh = f.watch("", "", None).await.expect("watch");
    let mut names = vec![next(&mut fresh).await.1, next(&mut fresh).await.1];
    names.push(next(&mut fresh).await.1);
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
    let rd = f.create("d", "x", "t").await;
    assert_eq!(next(&mut fresh).await, (EventType::Added, "d".into(), rd));
    assert_eq!(next(&mut events).await, (EventType::Added, "d".into(), rd));
    // A revision the store has not reached is refused, as by the store.
    match f.watch("", "", Some(rd + 1000)).await {
        Err(ApiError::BadRequest(_)) => {}
        other => panic!("expected a future-revision error, got {:?}", other.err()),
    }
    assert_eq!(f.metrics.store_watch_count(), 1);
}

#[tokio::test]
async fn expired_when_older_than_the_window() {
    let f = fixture(CacheOptions {
        window: 3,
        watcher_buffer: 100,
    })
    .await;
    let first = f.create("a0", "x", "t").await;
    let mut live = f.watch("", "", None).await.expect("watch");
    let mut last = first;
    for i in 1..10 {
        last = f.create(&format!("a{i}"), "x", "t").await;
    }
    // Every event arrived: the cache has applied them all.
    for _ in 0..10 {
        next(&mut live).await;
    }
    let status = f.cache.status("TaskRun").expect("started");
    assert!(
        status.floor > first,
        "window of 3 should not reach back to {first}: {status:?}"
    );
    match f.watch("", "", Some(first)).await {
        Err(ApiError::Expired(_)) => {}
        other => panic!("expected Expired, got {:?}", other.err()),
    }
    // Within the window: replayed.
    let mut recent = f.watch("", "", Some(last - 1)).await.expect("watch");
    assert_eq!(next(&mut recent).await.2, last);
    // Compacted in the store: Expired, as a store watch is, although the
    // window still holds it (once the cached compacted revision is stale).
    f.store.compact(last).await.expect("compact");
    tokio::time::sleep(super::COMPACTED_TTL).await;
    match f.watch("", "", Some(last - 1)).await {
        Err(ApiError::Expired(message)) => assert!(message.contains("compacted"), "{message}"),
        other => panic!("expected Expired, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn selectors_turn_changes_into_added_and_deleted() {
    let f = fixture(CacheOptions::default()).await;
    let mut mine = f.watch("", "spec.agentName=x", None).await.expect("watch");
    let mut team = f.watch("team=blue", "", None).await.expect("watch");
    f.create("a", "y", "red").await; // neither
    let r = f.update("a", "x", "red").await; // starts matching mine
    assert_eq!(next(&mut mine).await, (EventType::Added, "a".into(), r));
    let r = f.update("a", "x", "blue").await; // still mine; starts matching team
    assert_eq!(next(&mut mine).await, (EventType::Modified, "a".into(), r));
    assert_eq!(next(&mut team).await, (EventType::Added, "a".into(), r));
    let r = f.update("a", "z", "blue").await; // stops matching mine
    assert_eq!(next(&mut mine).await, (EventType::Deleted, "a".into(), r));
    assert_eq!(next(&mut team).await, (EventType::Modified, "a".into(), r));
    let (_, r) = f.store.delete(&key("a"), None).await.expect("delete");
    assert_eq!(next(&mut team).await, (EventType::Deleted, "a".into(), r));
    // Nothing more for `mine`: the delete of an object it no longer sees.
    bookmark_reaches(&mut mine, r).await;
    // Another namespace is not seen by a namespaced watch.
    let other = object_key(resolve_kind("TaskRun").expect("kind"), "other", "b");
    let mut value = taskrun("b", "x", "blue");
    value["metadata"]["namespace"] = json!("other");
    let r = f.store.create(&other, bytes(&value)).await.expect("create");
    bookmark_reaches(&mut mine, r).await;
}

#[tokio::test]
async fn a_slow_watcher_is_ended_and_others_go_on() {
    let f = fixture(CacheOptions {
        window: 10_000,
        watcher_buffer: 4,
    })
    .await;
    let mut slow = f.watch("", "", None).await.expect("watch");
    let mut fast = f.watch("", "", None).await.expect("watch");
    // More than the slow watcher's output buffer plus its cache buffer.
    let writes = crate::registry::watch::WATCH_BUFFER + 50;
    let reader = tokio::spawn(async move {
        for _ in 0..writes {
            next(&mut fast).await;
        }
        fast
    });
    for i in 0..writes {
        f.create(&format!("t{i}"), "x", "t").await;
    }
    let mut fast = reader.await.expect("fast watcher kept up");
    match error_of(&mut slow).await {
        ApiError::Expired(reason) => assert!(reason.contains("fell behind"), "{reason}"),
        other => panic!("expected Expired, got {other}"),
    }
    let r = f.create("after", "x", "t").await;
    assert_eq!(next(&mut fast).await, (EventType::Added, "after".into(), r));
    assert_eq!(f.cache.status("TaskRun").expect("started").watchers, 1);
}

#[tokio::test]
async fn a_lost_store_watch_is_resumed_or_relisted() {
    let f = fixture(CacheOptions::default()).await;
    let mut events = watching_after_a(&f).await;
    // Connection lost: re-established from the cache's revision, and the
    // client watch does not notice.
    f.store.break_watches();
    let r = f.create("b", "x", "t").await;
    assert_eq!(next(&mut events).await, (EventType::Added, "b".into(), r));
    assert_eq!(f.metrics.store_watch_count(), 1);
    // Lost again, and the revision is gone from the store: the cache
    // relists, and every client watch ends with Expired.
    f.store.expire_next_watch.store(true, Ordering::SeqCst);
    f.store.break_watches();
    relisted_with_a_and_b(&f, &mut events, "relisted").await;
}

/// A watch of every TaskRun that has seen "a" created.
async fn watching_after_a(f: &Fixture) -> Events {
    let mut events = f.watch("", "", None).await.expect("watch");
    f.create("a", "x", "t").await;
    next(&mut events).await;
    events
}

/// `events` ends with Expired naming `why`; a client that relists (watches
/// without a revision) sees "a" and "b", then follows on, and the cache
/// still holds one store watch.
async fn relisted_with_a_and_b(f: &Fixture, events: &mut Events, why: &str) {
    match error_of(events).await {
        ApiError::Expired(reason) => assert!(reason.contains(why), "{reason}"),
        other => panic!("expected Expired, got {other}"),
    }
    let mut again = f.watch("", "", None).await.expect("watch");
    let mut names = vec![next(&mut again).await.1, next(&mut again).await.1];
    names.sort();
    assert_eq!(names, ["a", "b"]);
    let r = f.create("c", "x", "t").await;
    assert_eq!(next(&mut again).await, (EventType::Added, "c".into(), r));
    assert_eq!(f.metrics.store_watch_count(), 1);
}

#[tokio::test]
async fn events_behind_a_progress_notification_make_the_cache_relist() {
    let f = fixture(CacheOptions::default()).await;
    let mut events = watching_after_a(&f).await;
    // The store claims progress past "b" before it sends "b": the cache
    // cannot tell what it skipped, so it relists and expires client watches.
    f.store.overtake_next_events.store(true, Ordering::SeqCst);
    let rb = f.create("b", "x", "t").await;
    relisted_with_a_and_b(&f, &mut events, "after progress up to revision").await;
    // A client that got a BOOKMARK at the wrong progress revision may not
    // resume there: it relists too.
    match f.watch("", "", Some(rb)).await {
        Err(ApiError::Expired(_)) => {}
        Err(other) => panic!("expected Expired, got {other}"),
        Ok(_) => panic!("resumed at a distrusted revision"),
    }
}

#[tokio::test]
async fn a_store_watch_lost_after_a_wrong_progress_resumes_from_the_last_event() {
    let f = fixture(CacheOptions::default()).await;
    let mut events = watching_after_a(&f).await;
    // Progress past "b", then the store watch fails before "b" comes: the
    // cache resumes from "a" (not from the progress), gets "b" behind the
    // progress, and relists.
    f.store.fail_after_overtaking.store(true, Ordering::SeqCst);
    f.store.overtake_next_events.store(true, Ordering::SeqCst);
    f.create("b", "x", "t").await;
    relisted_with_a_and_b(&f, &mut events, "after progress up to revision").await;
}

#[tokio::test]
async fn one_store_watch_per_kind() {
    let f = fixture(CacheOptions::default()).await;
    let mut streams = Vec::new();
    for i in 0..50 {
        streams.push(
            f.watch("", &format!("spec.agentName=agent-{i}"), None)
                .await
                .expect("watch"),
        );
    }
    assert_eq!(f.metrics.store_watch_count(), 1);
    let agents = f
        .cache
        .watch(WatchRequest {
            kind: "Agent".into(),
            namespace: String::new(),
            selectors: Selectors::default(),
            resource_version: None,
            allow_bookmarks: false,
            bookmark_interval: Duration::from_secs(1),
        })
        .await
        .expect("watch agents");
    assert_eq!(f.metrics.store_watch_count(), 2);
    let r = f.create("t7", "agent-7", "t").await;
    assert_eq!(
        next(&mut streams[7]).await,
        (EventType::Added, "t7".into(), r)
    );
    bookmark_reaches(&mut streams[8], r).await;
    drop(agents);
    drop(streams);
    f.shutdown.cancel();
    let gone = async {
        while f.metrics.store_watch_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, gone)
        .await
        .expect("store watches end at shutdown");
}

#[tokio::test]
async fn agent_watchers_are_woken_only_by_their_own_taskruns() {
    let f = fixture(CacheOptions {
        window: 10_000,
        watcher_buffer: 2,
    })
    .await;
    // Not read while others' TaskRuns pour in: were it sent them, its
    // two-update buffer would overflow and it would be ended.
    let mut quiet = f.watch("", "spec.agentName=a", None).await.expect("watch");
    let mut busy = f.watch("", "spec.agentName=b", None).await.expect("watch");
    let writes = crate::registry::watch::WATCH_BUFFER + 50;
    let reader = tokio::spawn(async move {
        for _ in 0..writes {
            next(&mut busy).await;
        }
        busy
    });
    for i in 0..writes {
        f.create(&format!("b{i}"), "b", "t").await;
    }
    let busy = reader.await.expect("busy watcher kept up");
    let r = f.create("mine", "a", "t").await;
    assert_eq!(next(&mut quiet).await, (EventType::Added, "mine".into(), r));
    // Its BOOKMARKs still move on with the cache.
    let r = f.create("later", "b", "t").await;
    bookmark_reaches(&mut quiet, r).await;
    // Watchers whose clients go away are forgotten.
    assert_eq!(f.cache.status("TaskRun").expect("started").watchers, 2);
    drop(quiet);
    drop(busy);
    let forgotten = async {
        while f.cache.status("TaskRun").expect("started").watchers > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, forgotten)
        .await
        .expect("watchers forgotten");
}

#[tokio::test]
async fn lists_at_any_recent_revision_come_from_the_cache_in_pages_continued_from_the_store() {
    let f = fixture(CacheOptions::default()).await;
    for name in ["a", "b", "c", "d", "e"] {
        f.create(name, "x", if name == "c" { "red" } else { "t" })
            .await;
    }
    let all = Selectors::default();
    // The first list starts the cache, which replays the five creates
    // before it serves lists; the store serves them until then.
    let mut first = None;
    for _ in 0..500 {
        first = f
            .cache
            .list(
                "TaskRun",
                "default",
                &all,
                2,
                crate::registry::paging::MAX_PAGE_BYTES,
            )
            .await
            .expect("list from the cache");
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = first.expect("the cache never caught up with the store");
    let mut names: Vec<String> = first.items.iter().map(|s| s.name().to_string()).collect();
    assert_eq!(names, ["a", "b"]);
    // The cache served it, once it had caught up with the store.
    assert_eq!(f.cache.status("TaskRun").map(|s| s.objects), Some(5));
    // A write after the first page is not in the later ones.
    f.create("f", "x", "t").await;
    let resources = crate::registry::resources::Resources::new(f.store.clone());
    let mut token = first.continue_token.clone();
    while !token.is_empty() {
        let page = resources
            .list("TaskRun", "default", &all, 2, &token)
            .await
            .expect("next page from the store");
        assert_eq!(page.revision, first.revision);
        names.extend(page.items.iter().map(|s| s.name().to_string()));
        token = page.continue_token;
    }
    assert_eq!(names, ["a", "b", "c", "d", "e"]);

    // Selectors and the byte bound apply as in the store: one object per
    // page when the bound is below two.
    let red = Selectors::parse("team=red", "").expect("selector");
    let listed = f
        .cache
        .list(
            "TaskRun",
            "",
            &red,
            0,
            crate::registry::paging::MAX_PAGE_BYTES,
        )
        .await
        .expect("list")
        .expect("current");
    let red_names: Vec<&str> = listed.items.iter().map(|s| s.name()).collect();
    assert_eq!(red_names, ["c"]);
    assert!(listed.continue_token.is_empty());
    let tiny = f
        .cache
        .list("TaskRun", "default", &all, 0, 1)
        .await
        .expect("list")
        .expect("current");
    assert_eq!(tiny.items.len(), 1);
    assert!(!tiny.continue_token.is_empty());
}
