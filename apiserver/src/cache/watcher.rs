//! One client watch served from a kind's cache: the snapshot or the
//! window's replay first, then live events, each filtered by the client's
//! namespace and selectors with the same ADDED/DELETED transitions as a
//! direct store watch (`crate::registry::watch::transition`), plus BOOKMARKs.

use std::sync::{Arc, Mutex};

use sloth_sdk::kinds::KindInfo;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::state::{CachedEvent, Message, Start, State, Subscription};
use crate::error::ApiError;
use crate::registry::watch::{EventObject, EventType, ObjectEvent, WatchRequest, transition_of};

type Sender = mpsc::Sender<Result<ObjectEvent, ApiError>>;

/// Feeds `out` until the client goes, `shutdown` fires, or the cache ends
/// this watcher (then with an Expired error: the client relists).
pub(crate) async fn run(
    kind: &'static KindInfo,
    request: WatchRequest,
    prefix: String,
    state: Arc<Mutex<State>>,
    subscription: Subscription,
    out: Sender,
    shutdown: CancellationToken,
) {
    let id = subscription.id;
    serve(kind, request, prefix, &state, subscription, out, shutdown).await;
    super::lock(&state).remove(id);
}

async fn serve(
    kind: &'static KindInfo,
    request: WatchRequest,
    prefix: String,
    state: &Mutex<State>,
    subscription: Subscription,
    out: Sender,
    shutdown: CancellationToken,
) {
    let Subscription {
        id: _,
        start,
        after,
        mut receiver,
        ended,
    } = subscription;
    let mut watcher = Watcher {
        kind,
        request,
        prefix,
        after,
        seen: after,
        out,
    };
    let started = match start {
        Start::Snapshot(objects) => watcher.snapshot(objects).await,
        Start::Replay(batches) => {
            let mut ok = true;
            for batch in batches {
                if !watcher.events(&batch).await {
                    ok = false;
                    break;
                }
            }
            ok
        }
    };
    if !started {
        return;
    }
    let mut bookmarks = tokio::time::interval(watcher.request.bookmark_interval);
    bookmarks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    bookmarks.tick().await;
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return,
            () = watcher.out.closed() => return,
            _ = bookmarks.tick(), if watcher.request.allow_bookmarks => {
                if let Some(revision) = super::lock(state).bookmark_revision(&receiver) {
                    watcher.seen = watcher.seen.max(revision);
                }
                let bookmark = ObjectEvent {
                    event_type: EventType::Bookmark,
                    object: None,
                    kind,
                    revision: watcher.seen,
                };
                if watcher.out.send(Ok(bookmark)).await.is_err() {
                    return;
                }
                continue;
            }
            message = receiver.recv() => message,
        };
        match message {
            Some(Message::Events(batch)) => {
                if !watcher.events(&batch).await {
                    return;
                }
            }
            None => {
                // The cache let go of this watcher: it fell behind, or the
                // cache relisted. Without a reason the cache itself stopped.
                if let Some(reason) = ended.get() {
                    let _ = watcher
                        .out
                        .send(Err(ApiError::Expired(reason.clone())))
                        .await;
                }
                return;
            }
        }
    }
}

struct Watcher {
    kind: &'static KindInfo,
    request: WatchRequest,
    prefix: String,
    after: i64,
    /// Every change up to here has been considered for this watcher:
    /// what a BOOKMARK promises.
    seen: i64,
    out: Sender,
}

impl Watcher {
    /// The current objects that match, as ADDED. False when the client left.
    async fn snapshot(&mut self, objects: Vec<(String, super::state::Entry)>) -> bool {
        for (_, entry) in objects {
            if !entry.object.matches(&self.request.selectors) {
                continue;
            }
            let event = ObjectEvent {
                event_type: EventType::Added,
                object: Some(EventObject::Cached(entry.object)),
                kind: self.kind,
                revision: entry.revision,
            };
            if self.out.send(Ok(event)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Sends what this watcher sees of `batch`. False when the client left.
    async fn events(&mut self, batch: &[CachedEvent]) -> bool {
        for event in batch {
            if event.revision <= self.after {
                continue;
            }
            self.seen = self.seen.max(event.revision);
            if !event.key.starts_with(&self.prefix) {
                continue;
            }
            let Some(event_type) = self.translate(event) else {
                continue;
            };
            let out = ObjectEvent {
                event_type,
                object: Some(EventObject::Cached(event.object.clone())),
                kind: self.kind,
                revision: event.revision,
            };
            if self.out.send(Ok(out)).await.is_err() {
                return false;
            }
        }
        true
    }

    fn translate(&self, event: &CachedEvent) -> Option<EventType> {
        let selectors = &self.request.selectors;
        let object = event.object.matches(selectors);
        if event.deleted {
            transition_of(Some(object), None)
        } else {
            let prev = event.prev.as_ref().map(|prev| prev.matches(selectors));
            transition_of(prev, Some(object))
        }
    }
}
