//! Watches: a store watch turned into object events filtered by selectors.
//! An object that starts matching a selector is ADDED for that watcher, one
//! that stops matching is DELETED, as in Kubernetes.
//!
//! This is the direct path, one store watch per client watch, used when the
//! watch cache (`crate::cache`) is disabled; both share `transition`.

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::Value;
use sloth_sdk::kinds::KindInfo;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::cache::CachedObject;
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
    /// None for bookmarks.
    pub object: Option<EventObject>,
    pub kind: &'static KindInfo,
    pub revision: i64,
}

/// The object of an event.
#[derive(Clone, Debug)]
pub enum EventObject {
    /// Decoded for this watcher alone (a direct store watch, or a copy
    /// redacted for this watcher): encoded when sent.
    Decoded(Arc<Value>),
    /// The watch cache's, shared by every watcher of the change: sent as
    /// the JSON the cache encoded once (a change seen by 1,000 watchers is
    /// encoded once, when the cache applies it).
    Cached(Arc<CachedObject>),
}

impl EventObject {
    /// The object's JSON.
    pub fn json(&self) -> Result<Vec<u8>, ApiError> {
        match self {
            Self::Decoded(value) => serde_json::to_vec(&**value)
                .map_err(|e| ApiError::Internal(format!("cannot encode object: {e}"))),
            Self::Cached(cached) => Ok(cached.json().to_vec()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Decoded(value) => objects::meta_str(value, "name"),
            Self::Cached(cached) => cached.name(),
        }
    }

    pub fn namespace(&self) -> &str {
        match self {
            Self::Decoded(value) => objects::meta_str(value, "namespace"),
            Self::Cached(cached) => cached.namespace(),
        }
    }
}

impl ObjectEvent {
    /// The object for this watcher alone, e.g. to redact it: a shared
    /// cached object is decoded into a copy first, so later encodings are
    /// of the changed object, never the shared one.
    pub fn object_mut(&mut self) -> Result<Option<&mut Value>, ApiError> {
        if let Some(EventObject::Cached(cached)) = &self.object {
            self.object = Some(EventObject::Decoded(Arc::new(cached.decode()?)));
        }
        Ok(match &mut self.object {
            Some(EventObject::Decoded(value)) => Some(Arc::make_mut(value)),
            _ => None,
        })
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
                    object: Some(EventObject::Decoded(Arc::new(item.value))),
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
        object: Some(EventObject::Decoded(Arc::new(object))),
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
    transition_of(
        before.map(|b| selectors.matches(b)),
        now.map(|n| selectors.matches(n)),
    )
}

/// `transition` from whether the object matched the selectors before the
/// change and whether it matches after (None: it did not exist / is
/// deleted), for objects held in another form (the watch cache's).
pub(crate) fn transition_of(
    matched_before: Option<bool>,
    matches_now: Option<bool>,
) -> Option<EventType> {
    match matches_now {
        Some(matches_now) => match (matched_before, matches_now) {
            (None | Some(false), true) => Some(EventType::Added),
            (Some(true), true) => Some(EventType::Modified),
            (Some(true), false) => Some(EventType::Deleted),
            (_, false) => None,
        },
        None => (matched_before == Some(true)).then_some(EventType::Deleted),
    }
}
