//! Watches: live changes with their previous values, the handover from
//! history to live, prefix filtering, no gaps under concurrent writers, and
//! progress notifications for an idle watch.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::Barrier;

use super::helpers::{
    WatchStream, bounded, create, current_revision, delete, events_until, kv, next_events, update,
    watch,
};
use crate::store::{Event, Store, WatchItem};

pub async fn watch_reports_live_changes_with_prev(store: Arc<dyn Store>) {
    let start = current_revision(&store).await;
    let mut stream = watch(&store, "/w/", start).await;
    let r1 = create(&store, "/w/a", "one").await;
    let r2 = update(&store, "/w/a", "two", r1).await;
    let (_, r3) = delete(&store, "/w/a").await;
    let end = create(&store, "/w/end", "end").await;
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
    let a1 = create(&store, "/h/a", "a1").await;
    let b1 = create(&store, "/h/b", "b1").await;
    let a2 = update(&store, "/h/a", "a2", a1).await;
    let (_, b_gone) = delete(&store, "/h/b").await;
    let mut stream = watch(&store, "/h/", a1).await;
    let c1 = create(&store, "/h/c", "c1").await;
    let a3 = update(&store, "/h/a", "a3", a2).await;
    let end = create(&store, "/h/end", "end").await;
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
    let start = current_revision(&store).await;
    let mut stream = watch(&store, "/a/", start).await;
    let early = create(&store, "/a/x", "x").await;
    for key in ["/ab/x", "/b/x", "/a", "/A/x"] {
        create(&store, key, "other").await;
    }
    let late = create(&store, "/a/y", "y").await;
    let events = events_until(&mut stream, "/a/y").await;
    let seen: Vec<(&str, i64)> = events.iter().map(|e| (e.key(), e.revision())).collect();
    assert_eq!(seen, [("/a/x", early), ("/a/y", late)]);
}

/// Many writers, a watch started in the middle of them: every revision
/// arrives once, in order, whether it came from history or live.
pub async fn watch_sees_every_revision_under_concurrent_writes(store: Arc<dyn Store>) {
    const WRITERS: usize = 4;
    const EACH: usize = 50;
    let start = current_revision(&store).await;
    let barrier = Arc::new(Barrier::new(WRITERS + 1));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                for i in 0..EACH {
                    create(&store, &format!("/cw/{w}/{i}"), "x").await;
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
    let end = create(&store, "/cw/end", "end").await;
    events.extend(events_until(&mut stream, "/cw/end").await);
    let revisions: Vec<i64> = events.iter().map(Event::revision).collect();
    let expected: Vec<i64> = (start + 1..=end).collect();
    assert_eq!(revisions, expected, "gaps, duplicates or disorder");
}

/// Progress lets an idle watcher learn that the store moved on without
/// anything for it, so that it can resume from a recent revision (a
/// bookmark) rather than an old one that may be compacted by then.
pub async fn watch_sends_progress_when_idle(store: Arc<dyn Store>) {
    let start = current_revision(&store).await;
    let before = create(&store, "/other/a", "x").await;
    let mut live = watch(&store, "/idle/", before).await;
    let mut behind = watch(&store, "/idle/", start).await;
    let elsewhere = create(&store, "/other/b", "x").await;
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
