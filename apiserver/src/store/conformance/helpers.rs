//! What the conformance cases share: building expected values, the common
//! store calls that must succeed, and bounded reads of a watch.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::WAIT;
use crate::store::{
    Event, KeyValue, ListOptions, ListResult, Store, StoreError, StoreResult, WatchItem,
};

pub(super) type WatchStream = BoxStream<'static, StoreResult<WatchItem>>;

pub(super) fn value(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

pub(super) fn kv(key: &str, text: &str, create_revision: i64, mod_revision: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: value(text),
        create_revision,
        mod_revision,
    }
}

pub(super) async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

// The calls below are the steps a case expects to succeed; a failure names
// the step and the key.

pub(super) async fn create(store: &Arc<dyn Store>, key: &str, text: &str) -> i64 {
    match store.create(key, value(text)).await {
        Ok(revision) => revision,
        Err(e) => panic!("create {key}: {e}"),
    }
}

pub(super) async fn update(store: &Arc<dyn Store>, key: &str, text: &str, read: i64) -> i64 {
    match store.update(key, value(text), read).await {
        Ok(revision) => revision,
        Err(e) => panic!("update {key} at {read}: {e}"),
    }
}

/// An unconditional delete: the value it removed and the delete's revision.
pub(super) async fn delete(store: &Arc<dyn Store>, key: &str) -> (KeyValue, i64) {
    match store.delete(key, None).await {
        Ok(deleted) => deleted,
        Err(e) => panic!("delete {key}: {e}"),
    }
}

pub(super) async fn get(store: &Arc<dyn Store>, key: &str) -> Option<KeyValue> {
    match store.get(key).await {
        Ok(found) => found,
        Err(e) => panic!("get {key}: {e}"),
    }
}

/// The mod revision of a key that must exist.
pub(super) async fn mod_revision(store: &Arc<dyn Store>, key: &str) -> i64 {
    match get(store, key).await {
        Some(kv) => kv.mod_revision,
        None => panic!("{key} is missing"),
    }
}

pub(super) async fn current_revision(store: &Arc<dyn Store>) -> i64 {
    store.current_revision().await.expect("current revision")
}

pub(super) async fn compacted_revision(store: &Arc<dyn Store>) -> i64 {
    store
        .compacted_revision()
        .await
        .expect("compacted revision")
}

pub(super) fn at_revision(revision: i64) -> ListOptions {
    ListOptions {
        revision: Some(revision),
        ..ListOptions::default()
    }
}

pub(super) fn limited(limit: usize) -> ListOptions {
    ListOptions {
        limit,
        ..ListOptions::default()
    }
}

pub(super) async fn list_all(store: &Arc<dyn Store>, prefix: &str) -> ListResult {
    store
        .list(prefix, ListOptions::default())
        .await
        .expect("list")
}

pub(super) fn keys(result: &ListResult) -> Vec<&str> {
    result.items.iter().map(|kv| kv.key.as_str()).collect()
}

pub(super) async fn watch(store: &Arc<dyn Store>, prefix: &str, after: i64) -> WatchStream {
    store.watch(prefix, after).await.expect("watch")
}

/// The next item that is not a progress notification.
pub(super) async fn next_events(stream: &mut WatchStream) -> Vec<Event> {
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
pub(super) async fn events_until(stream: &mut WatchStream, key: &str) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    while !out.iter().any(|e| e.key() == key) {
        out.extend(next_events(stream).await);
    }
    out
}

pub(super) fn assert_conflict(
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
