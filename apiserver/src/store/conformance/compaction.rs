//! Compaction: old revisions expire for lists and watches, the latest
//! values stay readable and writable, and the compacted revision only
//! moves forward.

use std::sync::Arc;

use futures_util::StreamExt;

use super::helpers::{
    at_revision, bounded, compacted_revision, create, current_revision, delete, get, kv, list_all,
    next_events, update, watch,
};
use crate::store::{Event, Store, StoreError, WatchItem};

pub async fn compaction_expires_old_revisions(store: Arc<dyn Store>) {
    let a1 = create(&store, "/k/a", "one").await;
    let a2 = update(&store, "/k/a", "two", a1).await;
    create(&store, "/k/b", "b").await;
    let (_, at) = delete(&store, "/k/b").await;
    store.compact(at).await.expect("compact");
    assert_eq!(compacted_revision(&store).await, at);

    match store.list("/k/", at_revision(a2)).await {
        Err(StoreError::Expired {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (a2, at)),
        other => panic!("expected Expired for a list at {a2}, got {other:?}"),
    }
    assert_watch_expired(&store, "/k/", 0, at).await;

    // From the compacted revision on, history is whole again.
    let mut stream = watch(&store, "/k/", at).await;
    let a3 = update(&store, "/k/a", "three", a2).await;
    assert_eq!(
        next_events(&mut stream).await,
        [Event::Put {
            kv: kv("/k/a", "three", a1, a3),
            prev: Some(kv("/k/a", "two", a1, a2))
        }]
    );
}

pub async fn compaction_keeps_latest_values(store: Arc<dyn Store>) {
    let a1 = create(&store, "/k/a", "one").await;
    let a2 = update(&store, "/k/a", "two", a1).await;
    create(&store, "/k/b", "b").await;
    delete(&store, "/k/b").await;
    let c = create(&store, "/k/c", "c").await;
    store
        .compact(c)
        .await
        .expect("compact to the current revision");
    assert_eq!(get(&store, "/k/a").await, Some(kv("/k/a", "two", a1, a2)));
    assert_eq!(get(&store, "/k/b").await, None);
    let listed = list_all(&store, "/k/").await;
    assert_eq!(
        listed.items,
        [kv("/k/a", "two", a1, a2), kv("/k/c", "c", c, c)]
    );
    // The kept version still answers compare-and-swap.
    let a3 = update(&store, "/k/a", "three", a2).await;
    assert_eq!(get(&store, "/k/a").await, Some(kv("/k/a", "three", a1, a3)));
    let again = create(&store, "/k/b", "b2").await;
    assert!(again > a3);
}

pub async fn compact_rejects_future_and_ignores_older(store: Arc<dyn Store>) {
    for key in ["/x/a", "/x/b", "/x/c"] {
        create(&store, key, "x").await;
    }
    let current = current_revision(&store).await;
    store.compact(current - 1).await.expect("compact");
    store
        .compact(current - 2)
        .await
        .expect("compacting below is a no-op");
    assert_eq!(compacted_revision(&store).await, current - 1);
    match store.compact(current + 5).await {
        Err(StoreError::FutureRevision { requested, .. }) => assert_eq!(requested, current + 5),
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    assert_eq!(compacted_revision(&store).await, current - 1);
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
