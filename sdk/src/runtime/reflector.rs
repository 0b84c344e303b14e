//! The reflector: an in-memory cache of one kind, kept current by a watcher.
//!
//! Reconcilers read objects from a [`Store`] instead of the apiserver so that
//! a resync of thousands of objects costs no round trips, and so that every
//! reconcile sees the newest state the watch has delivered (level-triggered)
//! rather than the event that happened to trigger it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use futures_util::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::object_ref::ObjectRef;
use crate::client::{Api, WatchParams};
use crate::resource::{Object, Spec};
use crate::watcher::{Event, watch_objects};

type Objects<S> = Arc<RwLock<HashMap<ObjectRef, Arc<Object<S>>>>>;

/// A read handle on the cache. Cheap to clone; all clones see the same
/// content.
pub struct Store<S: Spec> {
    objects: Objects<S>,
    ready: watch::Receiver<bool>,
    changes: watch::Receiver<u64>,
}

/// The single write handle of a cache, fed by [`reflector`]. Dropping it
/// tells readers that the cache will not change any more: receivers from
/// [`Store::changes`] then end, and [`Store::wait_until_ready`] fails if the
/// first list never arrived.
pub struct Writer<S: Spec> {
    objects: Objects<S>,
    ready: watch::Sender<bool>,
    changes: watch::Sender<u64>,
}

/// The writer of a store was dropped before the store became ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the store's writer was dropped before the first list arrived")]
pub struct WriterDropped;

/// An empty cache and its writer.
pub fn store<S: Spec>() -> (Store<S>, Writer<S>) {
    let writer = Writer::new();
    (writer.as_reader(), writer)
}

impl<S: Spec> Writer<S> {
    /// An empty writer, not ready until its first list is applied.
    pub fn new() -> Self {
        Self {
            objects: Arc::default(),
            ready: watch::Sender::new(false),
            changes: watch::Sender::new(0),
        }
    }

    /// A reader of this writer's cache.
    pub fn as_reader(&self) -> Store<S> {
        Store {
            objects: self.objects.clone(),
            ready: self.ready.subscribe(),
            changes: self.changes.subscribe(),
        }
    }

    /// Applies one watcher event: a `Restarted` list replaces everything (so
    /// objects deleted while the watch was down disappear), `Applied` inserts
    /// or replaces, `Deleted` removes.
    pub fn apply(&mut self, event: &Event<Object<S>>) {
        {
            // A panic elsewhere while holding the lock cannot leave the map
            // half-updated (every write is a single insert, remove or swap),
            // so a poisoned lock is still safe to use.
            let mut objects = self.objects.write().unwrap_or_else(PoisonError::into_inner);
            match event {
                Event::Restarted(list) => {
                    *objects = list
                        .iter()
                        .map(|o| (ObjectRef::from_obj(o), Arc::new(o.clone())))
                        .collect();
                }
                Event::Applied(o) => {
                    objects.insert(ObjectRef::from_obj(o), Arc::new(o.clone()));
                }
                Event::Deleted(o) => {
                    objects.remove(&ObjectRef::from_obj(o));
                }
            }
        }
        if matches!(event, Event::Restarted(_)) {
            self.ready
                .send_if_modified(|ready| !std::mem::replace(ready, true));
        }
        self.changes.send_modify(|revision| *revision += 1);
    }
}

impl<S: Spec> Default for Writer<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Spec> Store<S> {
    /// The cached object, if the watch has seen it and not seen it deleted.
    pub fn get(&self, key: &ObjectRef) -> Option<Arc<Object<S>>> {
        self.read(|objects| objects.get(key).cloned())
    }

    /// Every cached object, in no particular order.
    pub fn state(&self) -> Vec<Arc<Object<S>>> {
        self.read(|objects| objects.values().cloned().collect())
    }

    /// The references of every cached object, in no particular order.
    pub fn refs(&self) -> Vec<ObjectRef> {
        self.read(|objects| objects.keys().cloned().collect())
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.read(HashMap::len)
    }

    /// True when no object is cached (see [`Store::is_ready`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the first full list has been applied; an empty store before
    /// that means "not known yet", not "there are none".
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits for the first full list.
    pub async fn wait_until_ready(&self) -> Result<(), WriterDropped> {
        let mut ready = self.ready.clone();
        ready
            .wait_for(|ready| *ready)
            .await
            .map(drop)
            .map_err(|_| WriterDropped)
    }

    /// A receiver that is notified after each applied event, with the number
    /// of events applied so far. Notifications coalesce, so a slow consumer
    /// sees one change for a burst. `changed()` fails once the writer is gone.
    pub fn changes(&self) -> watch::Receiver<u64> {
        let mut changes = self.changes.clone();
        // Only changes after subscribing count; what happened before is
        // already in the store.
        changes.mark_unchanged();
        changes
    }

    fn read<T>(&self, f: impl FnOnce(&HashMap<ObjectRef, Arc<Object<S>>>) -> T) -> T {
        f(&self.objects.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<S: Spec> Clone for Store<S> {
    fn clone(&self) -> Self {
        Self {
            objects: self.objects.clone(),
            ready: self.ready.clone(),
            changes: self.changes.clone(),
        }
    }
}

impl<S: Spec> fmt::Debug for Store<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("kind", &S::KIND)
            .field("len", &self.len())
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl<S: Spec> fmt::Debug for Writer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").field("kind", &S::KIND).finish()
    }
}

/// Applies each event of `stream` to `writer`'s store and passes it on
/// unchanged. An event is in the store before the consumer sees it, so
/// whatever the consumer triggers on it finds the object in the cache.
pub fn reflector<S, E, St>(
    mut writer: Writer<S>,
    stream: St,
) -> impl Stream<Item = Result<Event<Object<S>>, E>>
where
    S: Spec,
    St: Stream<Item = Result<Event<Object<S>>, E>>,
{
    stream.inspect(move |item| {
        if let Ok(event) = item {
            writer.apply(event);
        }
    })
}

/// Watches one kind (in `namespace`, or everywhere when empty) into a cache
/// from a background task, until `shutdown` is cancelled.
///
/// Returns the cache and a change notification (see [`Store::changes`]), for
/// a controller that must react when a secondary kind changes, e.g. with
/// `reconcile_all_on(WatchStream::from_changes(changes))`. Watch errors are
/// logged; the watcher retries them itself with backoff.
pub fn spawn_reflector<S: Spec>(
    api: &Api<S>,
    namespace: &str,
    params: WatchParams,
    shutdown: CancellationToken,
) -> (Store<S>, watch::Receiver<u64>) {
    let (store, writer) = store();
    let changes = store.changes();
    let mut events = Box::pin(reflector(writer, watch_objects(api, namespace, params)));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                item = events.next() => match item {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(kind = S::KIND, error = %e, "watch failed; retrying");
                    }
                    None => break,
                },
            }
        }
    });
    (store, changes)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::objects::TaskRunSpec;

    fn run(ns: &str, name: &str, version: &str) -> Object<TaskRunSpec> {
        let mut o = Object::new(name, TaskRunSpec::default());
        o.metadata.namespace = ns.into();
        o.metadata.resource_version = version.into();
        o
    }

    fn key(ns: &str, name: &str) -> ObjectRef {
        ObjectRef::new(ns, name)
    }

    #[test]
    fn events_insert_replace_and_remove() {
        let (store, mut writer) = store::<TaskRunSpec>();
        assert!(store.is_empty() && !store.is_ready());

        writer.apply(&Event::Applied(run("a", "x", "1")));
        writer.apply(&Event::Applied(run("a", "x", "2")));
        writer.apply(&Event::Applied(run("b", "x", "3")));
        assert_eq!(store.len(), 2);
        let x = store
            .get(&key("a", "x"))
            .map(|o| o.metadata.resource_version.clone());
        assert_eq!(x.as_deref(), Some("2"));
        // Applied events alone do not make a complete picture.
        assert!(!store.is_ready());

        writer.apply(&Event::Deleted(run("a", "x", "4")));
        assert!(store.get(&key("a", "x")).is_none());
        assert_eq!(store.refs(), vec![key("b", "x")]);
    }

    #[test]
    fn restarted_replaces_everything_and_makes_ready() {
        let (store, mut writer) = store::<TaskRunSpec>();
        writer.apply(&Event::Applied(run("a", "gone", "1")));
        writer.apply(&Event::Restarted(vec![
            run("a", "x", "5"),
            run("a", "y", "6"),
        ]));
        assert!(store.is_ready());
        let mut names: Vec<_> = store.state().iter().map(|o| o.name().to_string()).collect();
        names.sort();
        assert_eq!(names, ["x", "y"]);

        // Readiness survives relists, including empty ones.
        writer.apply(&Event::Restarted(vec![]));
        assert!(store.is_ready() && store.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn wait_until_ready_waits_for_the_first_list() {
        let (store, mut writer) = store::<TaskRunSpec>();
        let waiter = tokio::spawn({
            let store = store.clone();
            async move { store.wait_until_ready().await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        writer.apply(&Event::Restarted(vec![run("a", "x", "1")]));
        assert_eq!(waiter.await.ok(), Some(Ok(())));
        // Once ready, it stays answerable after the writer is gone.
        drop(writer);
        assert_eq!(store.wait_until_ready().await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_until_ready_fails_when_the_writer_goes_first() {
        let (store, writer) = store::<TaskRunSpec>();
        drop(writer);
        assert_eq!(store.wait_until_ready().await, Err(WriterDropped));
    }

    #[tokio::test(start_paused = true)]
    async fn changes_notify_only_after_subscribing_and_end_with_the_writer() {
        let (store, mut writer) = store::<TaskRunSpec>();
        writer.apply(&Event::Applied(run("a", "x", "1")));
        let mut changes = store.changes();
        assert!(!changes.has_changed().unwrap_or(true));
        writer.apply(&Event::Applied(run("a", "x", "2")));
        writer.apply(&Event::Deleted(run("a", "x", "3")));
        assert!(changes.changed().await.is_ok());
        assert_eq!(*changes.borrow_and_update(), 3);
        drop(writer);
        assert!(changes.changed().await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn reflector_stores_before_passing_on() {
        let (store, writer) = store::<TaskRunSpec>();
        let events = futures_util::stream::iter(vec![
            Ok(Event::Applied(run("a", "x", "1"))),
            Err("transient"),
            Ok(Event::Applied(run("a", "y", "2"))),
        ]);
        let mut reflected = Box::pin(reflector(writer, events));
        let mut seen = 0;
        while let Some(item) = reflected.next().await {
            if let Ok(Event::Applied(o)) = item {
                assert!(store.get(&ObjectRef::from_obj(&o)).is_some());
                seen += 1;
            }
        }
        assert_eq!((seen, store.len()), (2, 2));
    }
}
