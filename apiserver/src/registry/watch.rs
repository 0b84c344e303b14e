//! Watches: a store watch turned into object events filtered by selectors.
//! An object that starts matching a selector is ADDED for that watcher, one
//! that stops matching is DELETED, as in Kubernetes.
//!
//! This is the direct path, one store watch per client watch, used when the
//! watch cache (`crate::cache`) is disabled; both share `transition`.

use std::sync::{Arc, OnceLock};

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::Value;
use sloth_sdk::kinds::KindInfo;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::registry::keys::kind_prefix;
use crate::registry::objects;
use crate::registry::resources::{Resources, Selectors, resolve_kind};
use crate::store::{Event, WatchItem};

/// Events buffered per watcher before the watcher is made to wait.
pub(crate) const WATCH_BUFFER: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
}

/// One event for a client.
#[derive(Clone, Debug)]
pub struct ObjectEvent {
    pub event_type: EventType,
    /// None for bookmarks. Shared, not copied, by the watchers of one change.
    pub object: Option<Arc<Value>>,
    /// The object's JSON, encoded by the first watcher that sends it and
    /// reused by the others (the watch cache shares one per change, so a
    /// change seen by 1,000 watchers is encoded once). None: encode
    /// `object` for this watcher alone (e.g. after it was redacted).
    pub json: Option<SharedJson>,
    pub kind: &'static KindInfo,
    pub revision: i64,
}

/// An object's JSON encoding, made at most once and shared.
pub type SharedJson = Arc<OnceLock<Vec<u8>>>;

impl ObjectEvent {
    /// The object's JSON: the shared encoding when there is one (made now
    /// if nobody has yet), else encoded for this event alone.
    pub fn object_json(&self) -> Result<Option<Vec<u8>>, ApiError> {
        let Some(object) = &self.object else {
            return Ok(None);
        };
        if let Some(json) = self.json.as_ref().and_then(|shared| shared.get()) {
            return Ok(Some(json.clone()));
        }
        let json = serde_json::to_vec(&**object)
            .map_err(|e| ApiError::Internal(format!("cannot encode object: {e}")))?;
        if let Some(shared) = &self.json {
            // Two watchers may both encode it first: same bytes either way.
            let _ = shared.set(json.clone());
        }
        Ok(Some(json))
    }

    /// The object for this watcher alone, e.g. to redact it: later
    /// encodings are of the changed object, never the shared one.
    pub fn object_mut(&mut self) -> Option<&mut Value> {
        self.json = None;
        self.object.as_mut().map(Arc::make_mut)
    }
}

/// What a client asked to watch.
#[derive(Clone, Debug)]
pub struct WatchRequest {
    pub kind: String,
    pub namespace: String,
    pub selectors: Selectors,
    /// Events after this revision; None: current state first, as ADDED.
    pub resource_version: Option<i64>,
    pub allow_bookmarks: bool,
    /// How often an allowed BOOKMARK is sent.
    pub bookmark_interval: std::time::Duration,
}

/// Starts a watch. Fails at once (e.g. Expired) when the store refuses it;
/// the stream ends when the client goes away or `shutdown` fires.
pub async fn watch(
    resources: &Resources,
    request: WatchRequest,
    metrics: &Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<BoxStream<'static, Result<ObjectEvent, ApiError>>, ApiError> {
    let kind = resolve_kind(&request.kind)?;
    let namespace = if kind.namespaced {
        request.namespace.clone()
    } else {
        String::new()
    };
    let mut initial = Vec::new();
    let after = match request.resource_version {
        Some(rv) => rv,
        None => {
            // Initial state as ADDED events, then changes after the list.
            let listed = resources
                .list_all(kind.kind, &namespace, &request.selectors)
                .await?;
            initial = listed
                .items
                .into_iter()
                .map(|item| ObjectEvent {
                    event_type: EventType::Added,
                    revision: item.revision,
                    object: Some(Arc::new(item.value)),
                    json: None,
                    kind,
                })
                .collect();
            listed.revision
        }
    };
    let store_stream = resources
        .store()
        .watch(&kind_prefix(kind, &namespace), after)
        .await?;
    let store_watch = metrics.store_watch_started();
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    tokio::spawn(async move {
        let _store_watch = store_watch;
        for event in initial {
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        forward(kind, request, after, store_stream, tx, shutdown).await;
    });
    Ok(ReceiverStream::new(rx).boxed())
}

type Sender = mpsc::Sender<Result<ObjectEvent, ApiError>>;

async fn forward(
    kind: &'static KindInfo,
    request: WatchRequest,
    after: i64,
    mut store_stream: BoxStream<'static, crate::store::StoreResult<WatchItem>>,
    tx: Sender,
    shutdown: CancellationToken,
) {
    // Every store change up to `seen` has been considered for this watcher,
    // whether or not it matched: that is what a BOOKMARK promises.
    let mut seen = after;
    let mut bookmarks = tokio::time::interval(request.bookmark_interval);
    bookmarks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    bookmarks.tick().await;
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tx.closed() => return,
            _ = bookmarks.tick(), if request.allow_bookmarks => {
                let bookmark = ObjectEvent {
                    event_type: EventType::Bookmark,
                    object: None,
                    json: None,
                    kind,
                    revision: seen,
                };
                if tx.send(Ok(bookmark)).await.is_err() {
                    return;
                }
                continue;
            }
            item = store_stream.next() => item,
        };
        let Some(item) = item else { return };
        let events = match item {
            Ok(WatchItem::Events(events)) => events,
            Ok(WatchItem::Progress(revision)) => {
                seen = seen.max(revision);
                continue;
            }
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        for event in events {
            seen = seen.max(event.revision());
            match translate(kind, &request.selectors, &event) {
                Ok(Some(out)) => {
                    if tx.send(Ok(out)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    }
}

/// The event a watcher with `selectors` sees for one store event, if any.
fn translate(
    kind: &'static KindInfo,
    selectors: &Selectors,
    event: &Event,
) -> Result<Option<ObjectEvent>, ApiError> {
    let revision = event.revision();
    let (event_type, object) = match event {
        Event::Put { kv, prev } => {
            let now = objects::from_store(kv)?;
            let before = prev.as_ref().map(objects::from_store).transpose()?;
            match transition(selectors, before.as_ref(), Some(&now)) {
                Some(event_type) => (event_type, now),
                None => return Ok(None),
            }
        }
        Event::Delete { prev, revision } => {
            let mut before = objects::from_store(prev)?;
            if transition(selectors, Some(&before), None).is_none() {
                return Ok(None);
            }
            objects::set_resource_version(&mut before, *revision);
            (EventType::Deleted, before)
        }
    };
    Ok(Some(ObjectEvent {
        event_type,
        object: Some(Arc::new(object)),
        json: None,
        kind,
        revision,
    }))
}

/// What a watcher with `selectors` sees of one change from `before` (None:
/// the object is created) to `now` (None: it is deleted), if anything. An
/// object that starts matching is ADDED, one that stops matching DELETED
/// (the object sent is then `now`, or `before` for a delete).
pub(crate) fn transition(
    selectors: &Selectors,
    before: Option<&Value>,
    now: Option<&Value>,
) -> Option<EventType> {
    let matched_before = before.map(|b| selectors.matches(b));
    match now {
        Some(now) => match (matched_before, selectors.matches(now)) {
            (None | Some(false), true) => Some(EventType::Added),
            (Some(true), true) => Some(EventType::Modified),
            (Some(true), false) => Some(EventType::Deleted),
            (_, false) => None,
        },
        None => (matched_before == Some(true)).then_some(EventType::Deleted),
    }
}
