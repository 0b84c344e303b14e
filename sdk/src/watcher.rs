//! A watch that survives: lists, then watches from the list's revision,
//! resumes from the last resourceVersion seen when the stream drops, and
//! relists when that revision has been compacted (Expired). Errors are passed
//! on to the consumer and retried with backoff.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::backoff::Backoff;
use crate::client::{Api, Client, ListParams, WatchEvent, WatchParams, to_typed};
use crate::error::Error;
use crate::resource::{DynamicObject, Object, Spec};

/// What a watcher reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Event<K> {
    /// A full list: the complete current state (first, and after each relist).
    Restarted(Vec<K>),
    /// An object was added or changed.
    Applied(K),
    /// An object was deleted: its last known state.
    Deleted(K),
}

/// The pauses between failed lists and watches: 200ms doubling up to 10s,
/// each stretched by up to 50% jitter.
const WATCH_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_secs(10)).with_jitter(0.5);

/// How fresh the watcher's lists must be (as kube-runtime's `ListSemantic`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListSemantic {
    /// Any recent state, served from the apiserver's watch cache, which may
    /// trail a write acknowledged a moment ago. Cheap; right for controllers,
    /// which converge from whatever they see first.
    #[default]
    Any,
    /// The store's current state, read through to it: a write this client
    /// has seen acknowledged is in the first list. For a user following
    /// what they just created.
    MostRecent,
}

impl ListSemantic {
    fn resource_version(self) -> &'static str {
        match self {
            // Kubernetes' "any recent" list resourceVersion.
            Self::Any => "0",
            // Kubernetes' "most recent": no resourceVersion at all.
            Self::MostRecent => "",
        }
    }
}

/// Watches one kind (in `namespace`, or everywhere when empty) for as long
/// as the returned stream is held, listing any recent state.
pub fn watcher(
    client: Client,
    kind: &str,
    namespace: &str,
    params: WatchParams,
) -> BoxStream<'static, Result<Event<DynamicObject>, Error>> {
    watcher_with(client, kind, namespace, params, ListSemantic::Any)
}

/// [`watcher`] with the freshness its lists must have.
pub fn watcher_with(
    client: Client,
    kind: &str,
    namespace: &str,
    params: WatchParams,
    semantic: ListSemantic,
) -> BoxStream<'static, Result<Event<DynamicObject>, Error>> {
    let (tx, rx) = mpsc::channel(64);
    let (kind, namespace) = (kind.to_string(), namespace.to_string());
    tokio::spawn(async move {
        run(client, kind, namespace, params, semantic, tx).await;
    });
    ReceiverStream::new(rx).boxed()
}

/// The typed form of [`watcher`].
pub fn watch_objects<S: Spec>(
    api: &Api<S>,
    namespace: &str,
    params: WatchParams,
) -> BoxStream<'static, Result<Event<Object<S>>, Error>> {
    watcher(api.client().clone(), S::KIND, namespace, params)
        .map(|item| {
            item.and_then(|event| {
                Ok(match event {
                    Event::Restarted(items) => {
                        Event::Restarted(items.into_iter().map(to_typed).collect::<Result<_, _>>()?)
                    }
                    Event::Applied(o) => Event::Applied(to_typed(o)?),
                    Event::Deleted(o) => Event::Deleted(to_typed(o)?),
                })
            })
        })
        .boxed()
}

type Sender = mpsc::Sender<Result<Event<DynamicObject>, Error>>;

async fn run(
    client: Client,
    kind: String,
    namespace: String,
    params: WatchParams,
    semantic: ListSemantic,
    tx: Sender,
) {
    let mut backoff = WATCH_BACKOFF.retries();
    let mut resource_version: Option<String> = None;
    loop {
        let rv = match &resource_version {
            Some(rv) => rv.clone(),
            None => {
                // Whatever the list's revision, the watch from it brings
                // every later change.
                let list_params = ListParams {
                    label_selector: params.label_selector.clone(),
                    field_selector: params.field_selector.clone(),
                    resource_version: semantic.resource_version().to_string(),
                    ..ListParams::default()
                };
                match client.list_all(&kind, &namespace, &list_params).await {
                    Ok(list) => {
                        if tx.send(Ok(Event::Restarted(list.items))).await.is_err() {
                            return;
                        }
                        resource_version = Some(list.resource_version.clone());
                        list.resource_version
                    }
                    Err(e) => {
                        if tx.send(Err(e)).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(backoff.next_delay()).await;
                        continue;
                    }
                }
            }
        };
        let mut stream = match client.watch(&kind, &namespace, &params, &rv).await {
            Ok(stream) => stream,
            Err(e) => {
                if matches!(e, Error::Expired(_)) {
                    resource_version = None;
                }
                if tx.send(Err(e)).await.is_err() {
                    return;
                }
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let mut failed = false;
        while let Some(item) = stream.next().await {
            backoff.reset();
            let event = match item {
                Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => {
                    resource_version = Some(o.metadata.resource_version.clone());
                    Event::Applied(o)
                }
                Ok(WatchEvent::Deleted(o)) => {
                    resource_version = Some(o.metadata.resource_version.clone());
                    Event::Deleted(o)
                }
                Ok(WatchEvent::Bookmark(rv)) => {
                    resource_version = Some(rv);
                    continue;
                }
                Err(e) => {
                    if matches!(e, Error::Expired(_)) {
                        resource_version = None;
                    }
                    failed = true;
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                    break;
                }
            };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
        if failed {
            tokio::time::sleep(backoff.next_delay()).await;
        } else {
            // A clean end (server shutting down): resume at once, but never spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_and_resets() {
        let mut b = WATCH_BACKOFF.retries();
        let first = b.next_delay();
        assert!(first >= WATCH_BACKOFF.initial && first <= WATCH_BACKOFF.initial.mul_f64(1.5));
        for _ in 0..20 {
            assert!(b.next_delay() <= WATCH_BACKOFF.max.mul_f64(1.5));
        }
        b.reset();
        assert!(b.next_delay() <= WATCH_BACKOFF.initial.mul_f64(1.5));
    }
}
