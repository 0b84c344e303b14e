//! The store conformance suite: every promise of the `Store` trait, as
//! async functions that each take a fresh, empty store that nothing else
//! writes to (the cases check exact revisions). Backends run all of them
//! with one line:
//!
//! ```ignore
//! sloth_apiserver::store_conformance_tests!(fresh_store);
//! ```
//!
//! where `fresh_store` is an async fn (or closure) returning a [`Fixture`]:
//! the store itself, or `(store, guard)` with a guard (a temporary
//! directory, a server) that must outlive the test. Factories should set a
//! progress interval of at most a few seconds: `watch_sends_progress_when_idle`
//! waits at most `WAIT` for one.
//!
//! Every wait is bounded, so a broken backend fails a test instead of
//! hanging it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::Barrier;

use super::{Event, KeyValue, ListOptions, ListResult, Store, StoreError, StoreResult, WatchItem};

/// Generous, because CI machines are small and busy: a correct backend
/// answers in milliseconds, so this only bounds how long a broken one hangs.
pub const WAIT: Duration = Duration::from_secs(30);

/// What a conformance factory returns: the store, plus whatever has to live
/// as long as the test does.
pub trait Fixture {
    fn store(&self) -> Arc<dyn Store>;
}

impl Fixture for Arc<dyn Store> {
    fn store(&self) -> Arc<dyn Store> {
        self.clone()
    }
}

impl<G> Fixture for (Arc<dyn Store>, G) {
    fn store(&self) -> Arc<dyn Store> {
        self.0.clone()
    }
}

/// One `#[tokio::test]` per conformance case, each on a fresh store from
/// `$factory().await`. Expand it inside a module of its own if the names
/// could clash with other tests.
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!(@cases $factory;
            create_then_get,
            create_existing_is_already_exists,
            get_missing_is_none,
            update_with_current_revision_succeeds,
            update_with_stale_revision_conflicts,
            update_missing_is_not_found,
            delete_without_expected_revision,
            delete_with_expected_revision,
            recreate_after_delete_starts_a_new_life,
            revisions_strictly_increase,
            list_isolates_prefixes,
            list_pages_share_one_revision,
            list_limit_sets_next_key_only_when_more_remain,
            list_at_old_revision,
            list_at_future_revision_fails,
            concurrent_cas_has_one_winner,
            concurrent_increments_are_exact,
            watch_reports_live_changes_with_prev,
            watch_replays_history_then_continues_live,
            watch_filters_by_prefix,
            watch_sees_every_revision_under_concurrent_writes,
            compaction_expires_old_revisions,
            compaction_keeps_latest_values,
            compact_rejects_future_and_ignores_older,
            watch_sends_progress_when_idle,
        );
    };
    (@cases $factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = ($factory)().await;
                let store = $crate::store::conformance::Fixture::store(&fixture);
                $crate::store::conformance::$case(store).await;
            }
        )+
    };
}

type WatchStream = BoxStream<'static, StoreResult<WatchItem>>;

fn value(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn kv(key: &str, text: &str, create_revision: i64, mod_revision: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: value(text),
        create_revision,
        mod_revision,
    }
}

async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

async fn list_all(store: &Arc<dyn Store>, prefix: &str) -> ListResult {
    store
        .list(prefix, ListOptions::default())
        .await
        .expect("list")
}

fn keys(result: &ListResult) -> Vec<&str> {
    result.items.iter().map(|kv| kv.key.as_str()).collect()
}

async fn watch(store: &Arc<dyn Store>, prefix: &str, after: i64) -> WatchStream {
    store.watch(prefix, after).await.expect("watch")
}

/// The next item that is not a progress notification.
async fn next_events(stream: &mut WatchStream) -> Vec<Event> {
    bounded("watch events", async {
        loop {
            match stream.next().await {
                Some(Ok(WatchItem::Events(events))) => {
                    assert!(!events.is_empty(), "a watch sent an empty batch of events");
                    return events;
                }
                Some(Ok(WatchItem::Progress(_))) => {}
                Some(Err(e)) => panic!("watch failed: {e}"),
                None => panic!("watch ended"),
            }
        }
    })
    .await
}

/// Every event up to and including the first one on `key`. Writing a
/// sentinel key last and reading up to it shows that nothing extra (a
/// duplicate) came before it.
async fn events_until(stream: &mut WatchStream, key: &str) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    while !out.iter().any(|e| e.key() == key) {
        out.extend(next_events(stream).await);
    }
    out
}

fn assert_conflict(
    result: StoreResult<impl std::fmt::Debug>,
    key: &str,
    expected: i64,
    actual: i64,
) {
    match result {
        Err(StoreError::Conflict {
            key: k,
            expected: e,
            actual: a,
        }) => assert_eq!((k.as_str(), e, a), (key, expected, actual)),
        other => panic!("expected a conflict on {key:?}, got {other:?}"),
    }
}

pub async fn create_then_get(store: Arc<dyn Store>) {
    let rev = store.create("/c/a", value("one")).await.expect("create");
    assert!(rev > 0, "revisions start above 0, got {rev}");
    let got = store.get("/c/a").await.expect("get");
    assert_eq!(got, Some(kv("/c/a", "one", rev, rev)));
    assert_eq!(store.current_revision().await.expect("revision"), rev);
}

pub async fn create_existing_is_already_exists(store: Arc<dyn Store>) {
    let rev = store.create("/c/a", value("one")).await.expect("create");
    match store.create("/c/a", value("two")).await {
        Err(StoreError::AlreadyExists(key)) => assert_eq!(key, "/c/a"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store.get("/c/a").await.expect("get"),
        Some(kv("/c/a", "one", rev, rev))
    );
    assert_eq!(
        store.current_revision().await.expect("revision"),
        rev,
        "a refused write used a revision"
    );
}

pub async fn get_missing_is_none(store: Arc<dyn Store>) {
    assert_eq!(store.get("/c/missing").await.expect("get"), None);
    store.create("/c/gone", value("x")).await.expect("create");
    store.delete("/c/gone", None).await.expect("delete");
    assert_eq!(store.get("/c/gone").await.expect("get"), None);
}

pub async fn update_with_current_revision_succeeds(store: Arc<dyn Store>) {
    let created = store.create("/u/a", value("one")).await.expect("create");
    let updated = store
        .update("/u/a", value("two"), created)
        .await
        .expect("update");
    assert!(updated > created);
    assert_eq!(
        store.get("/u/a").await.expect("get"),
        Some(kv("/u/a", "two", created, updated))
    );
}

pub async fn update_with_stale_revision_conflicts(store: Arc<dyn Store>) {
    let created = store.create("/u/a", value("one")).await.expect("create");
    let updated = store
        .update("/u/a", value("two"), created)
        .await
        .expect("update");
    assert_conflict(
        store.update("/u/a", value("three"), created).await,
        "/u/a",
        created,
        updated,
    );
    assert_eq!(
        store.get("/u/a").await.expect("get"),
        Some(kv("/u/a", "two", created, updated))
    );
    assert_eq!(
        store.current_revision().await.expect("revision"),
        updated,
        "a conflict used a revision"
    );
}

pub async fn update_missing_is_not_found(store: Arc<dyn Store>) {
    match store.update("/u/missing", value("x"), 1).await {
        Err(StoreError::NotFound(key)) => assert_eq!(key, "/u/missing"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let created = store.create("/u/gone", value("x")).await.expect("create");
    store.delete("/u/gone", None).await.expect("delete");
    let result = store.update("/u/gone", value("y"), created).await;
    assert!(
        matches!(result, Err(StoreError::NotFound(_))),
        "update of a deleted key: {result:?}"
    );
}

pub async fn delete_without_expected_revision(store: Arc<dyn Store>) {
    let created = store.create("/d/a", value("one")).await.expect("create");
    let (prev, rev) = store.delete("/d/a", None).await.expect("delete");
    assert_eq!(prev, kv("/d/a", "one", created, created));
    assert!(rev > created);
    assert_eq!(store.current_revision().await.expect("revision"), rev);
    assert_eq!(store.get("/d/a").await.expect("get"), None);
    let again = store.delete("/d/a", None).await;
    assert!(
        matches!(again, Err(StoreError::NotFound(_))),
        "second delete: {again:?}"
    );
}

pub async fn delete_with_expected_revision(store: Arc<dyn Store>) {
    let created = store.create("/d/a", value("one")).await.expect("create");
    let updated = store
        .update("/d/a", value("two"), created)
        .await
        .expect("update");
    assert_conflict(
        store.delete("/d/a", Some(created)).await,
        "/d/a",
        created,
        updated,
    );
    assert_eq!(
        store.get("/d/a").await.expect("get"),
        Some(kv("/d/a", "two", created, updated))
    );
    let (prev, rev) = store.delete("/d/a", Some(updated)).await.expect("delete");
    assert_eq!(prev, kv("/d/a", "two", created, updated));
    assert!(rev > updated);
    assert_eq!(store.get("/d/a").await.expect("get"), None);
}

pub async fn recreate_after_delete_starts_a_new_life(store: Arc<dyn Store>) {
    store.create("/d/a", value("one")).await.expect("create");
    store.delete("/d/a", None).await.expect("delete");
    let again = store
        .create("/d/a", value("two"))
        .await
        .expect("create again");
    assert_eq!(
        store.get("/d/a").await.expect("get"),
        Some(kv("/d/a", "two", again, again))
    );
}

/// resourceVersion is the mod revision, so it must grow with every write
/// and never with a refused one.
pub async fn revisions_strictly_increase(store: Arc<dyn Store>) {
    let mut last = store.current_revision().await.expect("revision");
    for i in 0..5 {
        let key = format!("/r/{i}");
        let created = store.create(&key, value("a")).await.expect("create");
        assert!(created > last, "create got {created} after {last}");
        let _ = store.create(&key, value("again")).await;
        let updated = store
            .update(&key, value("b"), created)
            .await
            .expect("update");
        assert!(updated > created);
        let _ = store.update(&key, value("stale"), created).await;
        let got = store.get(&key).await.expect("get").expect("present");
        assert_eq!((got.create_revision, got.mod_revision), (created, updated));
        last = updated;
        assert_eq!(store.current_revision().await.expect("revision"), last);
    }
    let (_, deleted) = store.delete("/r/0", None).await.expect("delete");
    assert!(deleted > last);
    assert_eq!(store.current_revision().await.expect("revision"), deleted);
}

pub async fn list_isolates_prefixes(store: Arc<dyn Store>) {
    for key in ["/a", "/a/1", "/a/2", "/ab/1", "/b/1", "/a/0/nested"] {
        store.create(key, value(key)).await.expect("create");
    }
    let listed = list_all(&store, "/a/").await;
    assert_eq!(keys(&listed), ["/a/0/nested", "/a/1", "/a/2"]);
    assert_eq!(
        listed.revision,
        store.current_revision().await.expect("revision")
    );
    assert_eq!(listed.next_key, None);
    assert_eq!(
        Some(listed.items[1].clone()),
        store.get("/a/1").await.expect("get")
    );
    assert_eq!(keys(&list_all(&store, "/ab/").await), ["/ab/1"]);
    assert!(list_all(&store, "/c/").await.items.is_empty());
}

/// Later pages read at the first page's revision: writes in between, in
/// front of or behind the cursor, must not show up.
pub async fn list_pages_share_one_revision(store: Arc<dyn Store>) {
    for i in 0..10 {
        store
            .create(&format!("/p/{i:02}"), value("v1"))
            .await
            .expect("create");
    }
    let first = store
        .list(
            "/p/",
            ListOptions {
                limit: 3,
                ..ListOptions::default()
            },
        )
        .await
        .expect("first page");
    assert_eq!(keys(&first), ["/p/00", "/p/01", "/p/02"]);
    assert_eq!(first.next_key.as_deref(), Some("/p/02"));
    let at = first.revision;

    let current = store
        .get("/p/04")
        .await
        .expect("get")
        .expect("present")
        .mod_revision;
    store
        .update("/p/04", value("v2"), current)
        .await
        .expect("update");
    store.delete("/p/05", None).await.expect("delete");
    store
        .create("/p/03a", value("new"))
        .await
        .expect("create between");
    store
        .create("/p/10", value("new"))
        .await
        .expect("create after");
    store.delete("/p/00", None).await.expect("delete behind");

    let mut all = first.items.clone();
    let mut next = first.next_key.clone();
    while let Some(after) = next {
        let page = store
            .list(
                "/p/",
                ListOptions {
                    limit: 3,
                    start_after: Some(after),
                    revision: Some(at),
                },
            )
            .await
            .expect("next page");
        assert_eq!(page.revision, at, "a later page moved to another revision");
        assert!(page.items.len() <= 3);
        all.extend(page.items);
        next = page.next_key;
    }
    let expected: Vec<String> = (0..10).map(|i| format!("/p/{i:02}")).collect();
    assert_eq!(
        all.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(
        all.iter()
            .all(|kv| kv.value == value("v1") && kv.mod_revision <= at)
    );

    let now = list_all(&store, "/p/").await;
    assert_eq!(
        keys(&now),
        [
            "/p/01", "/p/02", "/p/03", "/p/03a", "/p/04", "/p/06", "/p/07", "/p/08", "/p/09",
            "/p/10"
        ]
    );
}

pub async fn list_limit_sets_next_key_only_when_more_remain(store: Arc<dyn Store>) {
    for key in ["/l/a", "/l/b", "/l/c", "/l/d"] {
        store.create(key, value("x")).await.expect("create");
    }
    store.delete("/l/d", None).await.expect("delete");
    let limited = |limit| ListOptions {
        limit,
        ..ListOptions::default()
    };
    let exact = store.list("/l/", limited(3)).await.expect("list");
    assert_eq!(keys(&exact), ["/l/a", "/l/b", "/l/c"]);
    assert_eq!(exact.next_key, None, "only a deleted key remains");
    let short = store.list("/l/", limited(2)).await.expect("list");
    assert_eq!(short.next_key.as_deref(), Some("/l/b"));
    let all = store.list("/l/", limited(0)).await.expect("list");
    assert_eq!(all.items.len(), 3);
}

pub async fn list_at_old_revision(store: Arc<dyn Store>) {
    let a1 = store.create("/o/a", value("one")).await.expect("create");
    let a2 = store
        .update("/o/a", value("two"), a1)
        .await
        .expect("update");
    let b = store.create("/o/b", value("b")).await.expect("create");
    let (_, gone) = store.delete("/o/a", None).await.expect("delete");
    let at = |revision| ListOptions {
        revision: Some(revision),
        ..ListOptions::default()
    };
    let check = |listed: ListResult, revision: i64, expected: Vec<KeyValue>| {
        assert_eq!(listed.revision, revision);
        assert_eq!(listed.items, expected, "list at revision {revision}");
    };
    check(
        store.list("/o/", at(a1)).await.expect("list"),
        a1,
        vec![kv("/o/a", "one", a1, a1)],
    );
    check(
        store.list("/o/", at(a2)).await.expect("list"),
        a2,
        vec![kv("/o/a", "two", a1, a2)],
    );
    check(
        store.list("/o/", at(b)).await.expect("list"),
        b,
        vec![kv("/o/a", "two", a1, a2), kv("/o/b", "b", b, b)],
    );
    check(
        store.list("/o/", at(gone)).await.expect("list"),
        gone,
        vec![kv("/o/b", "b", b, b)],
    );
}

pub async fn list_at_future_revision_fails(store: Arc<dyn Store>) {
    let rev = store.create("/f/a", value("x")).await.expect("create");
    let result = store
        .list(
            "/f/",
            ListOptions {
                revision: Some(rev + 10),
                ..ListOptions::default()
            },
        )
        .await;
    match result {
        Err(StoreError::FutureRevision { requested, current }) => {
            assert_eq!((requested, current), (rev + 10, rev))
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
}

/// Writers racing from the same read: exactly one may win each round.
pub async fn concurrent_cas_has_one_winner(store: Arc<dyn Store>) {
    const WRITERS: usize = 16;
    let mut read = store
        .create("/cas/k", value("start"))
        .await
        .expect("create");
    for round in 0..5 {
        let barrier = Arc::new(Barrier::new(WRITERS));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|i| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .update("/cas/k", value(&format!("{round}-{i}")), read)
                        .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut conflicts = Vec::new();
        for task in tasks {
            match bounded("a CAS writer", task).await.expect("writer task") {
                Ok(rev) => winners.push(rev),
                Err(StoreError::Conflict {
                    expected, actual, ..
                }) => conflicts.push((expected, actual)),
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let won = winners[0];
        assert!(
            conflicts.iter().all(|&c| c == (read, won)),
            "round {round}: {conflicts:?}"
        );
        assert_eq!(
            store
                .get("/cas/k")
                .await
                .expect("get")
                .expect("present")
                .mod_revision,
            won
        );
        read = won;
    }
}

/// Read-modify-write loops retrying on conflict lose no increment, and
/// conflicts use no revisions.
pub async fn concurrent_increments_are_exact(store: Arc<dyn Store>) {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let created = store.create("/inc/n", value("0")).await.expect("create");
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..EACH {
                    loop {
                        let current = store.get("/inc/n").await.expect("get").expect("present");
                        let n: usize = std::str::from_utf8(&current.value)
                            .expect("utf-8")
                            .parse()
                            .expect("a number");
                        match store
                            .update("/inc/n", value(&(n + 1).to_string()), current.mod_revision)
                            .await
                        {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(e) => panic!("unexpected error: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        bounded("an incrementing task", task)
            .await
            .expect("incrementing task");
    }
    let total = TASKS * EACH;
    let last = store.get("/inc/n").await.expect("get").expect("present");
    assert_eq!(last.value, value(&total.to_string()));
    assert_eq!(last.create_revision, created);
    assert_eq!(
        last.mod_revision,
        created + total as i64,
        "conflicts must not use revisions"
    );
}

pub async fn watch_reports_live_changes_with_prev(store: Arc<dyn Store>) {
    let start = store.current_revision().await.expect("revision");
    let mut stream = watch(&store, "/w/", start).await;
    let r1 = store.create("/w/a", value("one")).await.expect("create");
    let r2 = store
        .update("/w/a", value("two"), r1)
        .await
        .expect("update");
    let (_, r3) = store.delete("/w/a", None).await.expect("delete");
    let end = store
        .create("/w/end", value("end"))
        .await
        .expect("sentinel");
    assert_eq!(
        events_until(&mut stream, "/w/end").await,
        [
            Event::Put {
                kv: kv("/w/a", "one", r1, r1),
                prev: None
            },
            Event::Put {
                kv: kv("/w/a", "two", r1, r2),
                prev: Some(kv("/w/a", "one", r1, r1))
            },
            Event::Delete {
                prev: kv("/w/a", "two", r1, r2),
                revision: r3
            },
            Event::Put {
                kv: kv("/w/end", "end", end, end),
                prev: None
            },
        ]
    );
}

/// The handover from history to live events must neither lose nor repeat
/// a change.
pub async fn watch_replays_history_then_continues_live(store: Arc<dyn Store>) {
    let a1 = store.create("/h/a", value("a1")).await.expect("create");
    let b1 = store.create("/h/b", value("b1")).await.expect("create");
    let a2 = store.update("/h/a", value("a2"), a1).await.expect("update");
    let (_, b_gone) = store.delete("/h/b", None).await.expect("delete");
    let mut stream = watch(&store, "/h/", a1).await;
    let c1 = store
        .create("/h/c", value("c1"))
        .await
        .expect("create live");
    let a3 = store
        .update("/h/a", value("a3"), a2)
        .await
        .expect("update live");
    let end = store
        .create("/h/end", value("end"))
        .await
        .expect("sentinel");
    let events = events_until(&mut stream, "/h/end").await;
    assert_eq!(
        events,
        [
            Event::Put {
                kv: kv("/h/b", "b1", b1, b1),
                prev: None
            },
            Event::Put {
                kv: kv("/h/a", "a2", a1, a2),
                prev: Some(kv("/h/a", "a1", a1, a1))
            },
            Event::Delete {
                prev: kv("/h/b", "b1", b1, b1),
                revision: b_gone
            },
            Event::Put {
                kv: kv("/h/c", "c1", c1, c1),
                prev: None
            },
            Event::Put {
                kv: kv("/h/a", "a3", a1, a3),
                prev: Some(kv("/h/a", "a2", a1, a2))
            },
            Event::Put {
                kv: kv("/h/end", "end", end, end),
                prev: None
            },
        ]
    );
}

pub async fn watch_filters_by_prefix(store: Arc<dyn Store>) {
    let start = store.current_revision().await.expect("revision");
    let mut stream = watch(&store, "/a/", start).await;
    let early = store.create("/a/x", value("x")).await.expect("create");
    for key in ["/ab/x", "/b/x", "/a", "/A/x"] {
        store.create(key, value("other")).await.expect("create");
    }
    let late = store.create("/a/y", value("y")).await.expect("create");
    let events = events_until(&mut stream, "/a/y").await;
    let seen: Vec<(&str, i64)> = events.iter().map(|e| (e.key(), e.revision())).collect();
    assert_eq!(seen, [("/a/x", early), ("/a/y", late)]);
}

/// Many writers, a watch started in the middle of them: every revision
/// arrives once, in order, whether it came from history or live.
pub async fn watch_sees_every_revision_under_concurrent_writes(store: Arc<dyn Store>) {
    const WRITERS: usize = 4;
    const EACH: usize = 50;
    let start = store.current_revision().await.expect("revision");
    let barrier = Arc::new(Barrier::new(WRITERS + 1));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                for i in 0..EACH {
                    store
                        .create(&format!("/cw/{w}/{i}"), value("x"))
                        .await
                        .expect("create");
                }
            })
        })
        .collect();
    barrier.wait().await;
    tokio::task::yield_now().await;
    let mut stream = watch(&store, "/cw/", start).await;
    let mut events = Vec::new();
    while events.len() < WRITERS * EACH {
        events.extend(next_events(&mut stream).await);
    }
    for task in tasks {
        bounded("a writer", task).await.expect("writer task");
    }
    let end = store
        .create("/cw/end", value("end"))
        .await
        .expect("sentinel");
    events.extend(events_until(&mut stream, "/cw/end").await);
    let revisions: Vec<i64> = events.iter().map(Event::revision).collect();
    let expected: Vec<i64> = (start + 1..=end).collect();
    assert_eq!(revisions, expected, "gaps, duplicates or disorder");
}

pub async fn compaction_expires_old_revisions(store: Arc<dyn Store>) {
    let a1 = store.create("/k/a", value("one")).await.expect("create");
    let a2 = store
        .update("/k/a", value("two"), a1)
        .await
        .expect("update");
    store.create("/k/b", value("b")).await.expect("create");
    let (_, at) = store.delete("/k/b", None).await.expect("delete");
    store.compact(at).await.expect("compact");
    assert_eq!(store.compacted_revision().await.expect("compacted"), at);

    let old = ListOptions {
        revision: Some(a2),
        ..ListOptions::default()
    };
    match store.list("/k/", old).await {
        Err(StoreError::Expired {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (a2, at)),
        other => panic!("expected Expired for a list at {a2}, got {other:?}"),
    }
    assert_watch_expired(&store, "/k/", 0, at).await;

    // From the compacted revision on, history is whole again.
    let mut stream = watch(&store, "/k/", at).await;
    let a3 = store
        .update("/k/a", value("three"), a2)
        .await
        .expect("update");
    assert_eq!(
        next_events(&mut stream).await,
        [Event::Put {
            kv: kv("/k/a", "three", a1, a3),
            prev: Some(kv("/k/a", "two", a1, a2))
        }]
    );
}

pub async fn compaction_keeps_latest_values(store: Arc<dyn Store>) {
    let a1 = store.create("/k/a", value("one")).await.expect("create");
    let a2 = store
        .update("/k/a", value("two"), a1)
        .await
        .expect("update");
    store.create("/k/b", value("b")).await.expect("create");
    store.delete("/k/b", None).await.expect("delete");
    let c = store.create("/k/c", value("c")).await.expect("create");
    store
        .compact(c)
        .await
        .expect("compact to the current revision");
    assert_eq!(
        store.get("/k/a").await.expect("get"),
        Some(kv("/k/a", "two", a1, a2))
    );
    assert_eq!(store.get("/k/b").await.expect("get"), None);
    let listed = list_all(&store, "/k/").await;
    assert_eq!(
        listed.items,
        [kv("/k/a", "two", a1, a2), kv("/k/c", "c", c, c)]
    );
    // The kept version still answers compare-and-swap.
    let a3 = store
        .update("/k/a", value("three"), a2)
        .await
        .expect("update after compaction");
    assert_eq!(
        store.get("/k/a").await.expect("get"),
        Some(kv("/k/a", "three", a1, a3))
    );
    let again = store
        .create("/k/b", value("b2"))
        .await
        .expect("recreate a compacted delete");
    assert!(again > a3);
}

pub async fn compact_rejects_future_and_ignores_older(store: Arc<dyn Store>) {
    for key in ["/x/a", "/x/b", "/x/c"] {
        store.create(key, value("x")).await.expect("create");
    }
    let current = store.current_revision().await.expect("revision");
    store.compact(current - 1).await.expect("compact");
    store
        .compact(current - 2)
        .await
        .expect("compacting below is a no-op");
    assert_eq!(
        store.compacted_revision().await.expect("compacted"),
        current - 1
    );
    match store.compact(current + 5).await {
        Err(StoreError::FutureRevision { requested, .. }) => assert_eq!(requested, current + 5),
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    assert_eq!(
        store.compacted_revision().await.expect("compacted"),
        current - 1
    );
    assert_eq!(list_all(&store, "/x/").await.items.len(), 3);
}

/// A backend may refuse the watch at once or end the stream with the
/// error (etcd reports compaction on the watch stream); both say "relist".
async fn assert_watch_expired(store: &Arc<dyn Store>, prefix: &str, after: i64, compacted_at: i64) {
    let error = match store.watch(prefix, after).await {
        Err(e) => e,
        Ok(mut stream) => {
            bounded("the watch to expire", async {
                loop {
                    match stream.next().await {
                        Some(Ok(WatchItem::Progress(_))) => {}
                        Some(Ok(WatchItem::Events(events))) => {
                            panic!("expired watch sent {events:?}")
                        }
                        Some(Err(e)) => return e,
                        None => panic!("expired watch ended without an error"),
                    }
                }
            })
            .await
        }
    };
    match error {
        StoreError::Expired { compacted, .. } => assert_eq!(compacted, compacted_at),
        e => panic!("expected Expired for a watch after {after}, got {e}"),
    }
}

/// Progress lets an idle watcher learn that the store moved on without
/// anything for it, so that it can resume from a recent revision (a
/// bookmark) rather than an old one that may be compacted by then.
pub async fn watch_sends_progress_when_idle(store: Arc<dyn Store>) {
    let start = store.current_revision().await.expect("revision");
    let before = store.create("/other/a", value("x")).await.expect("create");
    let mut live = watch(&store, "/idle/", before).await;
    let mut behind = watch(&store, "/idle/", start).await;
    let elsewhere = store.create("/other/b", value("x")).await.expect("create");
    progress_at_least(&mut live, elsewhere).await;
    progress_at_least(&mut behind, elsewhere).await;
}

/// Waits for a progress notification at or after `revision`, failing on
/// any event: the watch is meant to be idle.
async fn progress_at_least(stream: &mut WatchStream, revision: i64) -> i64 {
    bounded("a progress notification", async {
        loop {
            match stream.next().await {
                Some(Ok(WatchItem::Progress(rev))) if rev >= revision => return rev,
                Some(Ok(WatchItem::Progress(_))) => {}
                Some(Ok(WatchItem::Events(events))) => panic!("an idle watch got {events:?}"),
                Some(Err(e)) => panic!("watch failed: {e}"),
                None => panic!("watch ended"),
            }
        }
    })
    .await
}
