//! The in-memory state of one kind's watch cache: the current objects, a
//! bounded window of recent events, and the registered watchers it fans
//! events out to. Synchronous and never blocking: the feed applies store
//! events under a lock, and a watcher whose buffer is full is dropped
//! (it ends with Expired) rather than waited for.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::object::CachedObject;
use crate::registry::objects;
use crate::registry::paging::PageBuilder;
use crate::store::{Event, KeyValue, StoreError};

/// One change, decoded and encoded once and shared by every watcher.
#[derive(Debug)]
pub(crate) struct CachedEvent {
    pub revision: i64,
    pub key: String,
    /// The object after the change; for a delete, the deleted object with
    /// the delete's revision as its resourceVersion.
    pub object: Arc<CachedObject>,
    /// The object before a put (None on create); None for a delete.
    pub prev: Option<Arc<CachedObject>>,
    pub deleted: bool,
}

/// The events of one store watch item, in revision order.
pub(crate) type Batch = Arc<[CachedEvent]>;

/// What a watcher receives, in order.
#[derive(Clone, Debug)]
pub(crate) enum Message {
    Events(Batch),
}

/// An object of the cache's current state.
#[derive(Clone, Debug)]
pub struct Entry {
    pub object: Arc<CachedObject>,
    pub revision: i64,
}

impl Entry {
    /// The cached form of a stored object.
    pub(crate) fn from_store(kv: &KeyValue) -> Result<Self, crate::error::ApiError> {
        Ok(Self {
            object: Arc::new(CachedObject::new(&objects::from_store(kv)?)?),
            revision: kv.mod_revision,
        })
    }

    pub fn name(&self) -> &str {
        self.object.name()
    }
}

/// Why a watcher was ended by the cache; read by the watcher once its
/// channel closes.
pub(crate) type EndReason = Arc<OnceLock<String>>;

/// How a new watcher starts.
#[derive(Debug)]
pub(crate) enum Start {
    /// No resourceVersion: these objects (under the prefix, not yet
    /// filtered by selectors) as ADDED, consistent at `after`.
    Snapshot(Vec<(String, Entry)>),
    /// A resourceVersion: these batches hold every event after it that the
    /// cache has seen (events at or before `after` are skipped).
    Replay(Vec<Batch>),
}

/// A registered watcher's end of the fan-out.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub id: u64,
    pub start: Start,
    /// Events at or before this revision are not for this watcher.
    pub after: i64,
    pub receiver: mpsc::Receiver<Message>,
    pub ended: EndReason,
}

#[derive(Debug)]
struct Slot {
    sender: mpsc::Sender<Message>,
    ended: EndReason,
    /// The `INDEXED_FIELD` value every object this watcher sees has.
    index: Option<String>,
}

/// The field watchers are indexed by: an agent watching its own TaskRuns
/// (`spec.agentName=NAME`) is woken only by changes to objects that have,
/// or had, that value; other watchers get every change.
pub(crate) const INDEXED_FIELD: &str = "spec.agentName";

/// A store event arrived after a progress notification that claimed to
/// cover it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the store sent the event of revision {event} after progress up to revision {progress}")]
pub(crate) struct Overtaken {
    pub event: i64,
    pub progress: i64,
}

/// One kind's cached objects, recent events and watchers.
#[derive(Debug)]
pub(crate) struct State {
    objects: BTreeMap<String, Entry>,
    /// Every store change up to here has been applied.
    revision: i64,
    /// The store's revision when the state was last (re)listed: the state
    /// lists from an older revision and replays up to here, and is not
    /// served to lists before it has.
    current_at: i64,
    /// The last revision of an event applied (or of the list); `revision`
    /// may be further on through progress notifications.
    applied: i64,
    /// The window holds every event with a revision above this.
    floor: i64,
    window: VecDeque<Batch>,
    window_events: usize,
    capacity: usize,
    watcher_buffer: usize,
    watchers: HashMap<u64, Slot>,
    /// `INDEXED_FIELD` value -> the watchers that require it.
    indexed: HashMap<String, HashSet<u64>>,
    /// Watchers that may see an object whatever its indexed field.
    unindexed: HashSet<u64>,
    next_id: u64,
}

impl State {
    /// An empty state keeping about `capacity` events, with `watcher_buffer`
    /// messages buffered per watcher.
    pub(super) fn new(capacity: usize, watcher_buffer: usize) -> Self {
        Self {
            objects: BTreeMap::new(),
            revision: 0,
            current_at: 0,
            applied: 0,
            floor: 0,
            window: VecDeque::new(),
            window_events: 0,
            capacity: capacity.max(1),
            watcher_buffer: watcher_buffer.max(1),
            watchers: HashMap::new(),
            indexed: HashMap::new(),
            unindexed: HashSet::new(),
            next_id: 0,
        }
    }

    pub(super) fn revision(&self) -> i64 {
        self.revision
    }

    /// Whether the state has caught up with the store as it was when the
    /// state was listed: only then is it "recent" enough to list from.
    pub(super) fn is_current(&self) -> bool {
        self.revision >= self.current_at
    }

    pub(super) fn floor(&self) -> i64 {
        self.floor
    }

    /// The last revision of an event applied (or of the list): a store
    /// watch re-established from here misses nothing even if a progress
    /// notification was wrong.
    pub(super) fn applied(&self) -> i64 {
        self.applied
    }

    /// Refuses (Expired) resuming at or before `revision`: after a wrong
    /// progress notification, a client may hold a BOOKMARK for a revision
    /// whose events it never got.
    pub(super) fn distrust_through(&mut self, revision: i64) {
        if revision > 0 {
            self.floor = self.floor.max(revision.saturating_add(1));
        }
    }

    pub(super) fn watcher_count(&self) -> usize {
        self.watchers.len()
    }

    pub(super) fn object_count(&self) -> usize {
        self.objects.len()
    }

    /// Replaces the state with a fresh list at `revision` and empties the
    /// window; every watcher is ended with `reason` (they relist).
    /// `current` is the store's revision when the list began: the state is
    /// stale for lists (see [`State::is_current`]) until it gets there.
    pub(super) fn reset(
        &mut self,
        objects: BTreeMap<String, Entry>,
        revision: i64,
        current: i64,
        reason: &str,
    ) {
        self.objects = objects;
        self.current_at = current;
        self.revision = revision;
        self.applied = revision;
        self.floor = revision;
        self.window.clear();
        self.window_events = 0;
        self.end_all(reason);
    }

    /// Ends every watcher without an error (the server is stopping).
    pub(super) fn close_all(&mut self) {
        self.watchers.clear();
        self.indexed.clear();
        self.unindexed.clear();
    }

    /// Ends every watcher with `reason` (an Expired error for the client).
    pub(super) fn end_all(&mut self, reason: &str) {
        for (_, slot) in self.watchers.drain() {
            let _ = slot.ended.set(reason.to_string());
        }
        self.indexed.clear();
        self.unindexed.clear();
    }

    /// Applies the store events of one watch item and fans them out.
    ///
    /// An event after the last one applied but at or before a progress
    /// revision means that progress notification was wrong (it overtook
    /// this event): the state is then no longer trustworthy, nothing is
    /// applied, and the caller must relist.
    pub(super) fn apply(&mut self, events: &[Event]) -> Result<(), Overtaken> {
        if let Some(event) = events
            .iter()
            .find(|e| e.revision() > self.applied && e.revision() <= self.revision)
        {
            return Err(Overtaken {
                event: event.revision(),
                progress: self.revision,
            });
        }
        let mut batch = Vec::with_capacity(events.len());
        for event in events {
            let revision = event.revision();
            if revision <= self.applied {
                // Already applied (a re-established watch repeats nothing,
                // but a stale item must not move the state back).
                continue;
            }
            match self.decode(event) {
                Ok(cached) => batch.push(cached),
                Err(e) => {
                    tracing::warn!(key = event.key(), revision, error = %e, "watch cache: skipping an undecodable object");
                }
            }
        }
        let Some(last) = events.iter().map(Event::revision).max() else {
            return Ok(());
        };
        self.revision = self.revision.max(last);
        self.applied = self.applied.max(last);
        if batch.is_empty() {
            return Ok(());
        }
        let batch: Batch = batch.into();
        self.window_events += batch.len();
        self.window.push_back(batch.clone());
        while self.window_events > self.capacity && self.window.len() > 1 {
            let Some(evicted) = self.window.pop_front() else {
                break;
            };
            self.window_events -= evicted.len();
            if let Some(last) = evicted.last() {
                self.floor = self.floor.max(last.revision);
            }
        }
        let mut targets: HashSet<u64> = self.unindexed.clone();
        if !self.indexed.is_empty() {
            for event in batch.iter() {
                for object in std::iter::once(&event.object).chain(event.prev.as_ref()) {
                    if let Some(ids) = self.indexed.get(&*object.field(INDEXED_FIELD)) {
                        targets.extend(ids);
                    }
                }
            }
        }
        self.send(targets, &Message::Events(batch));
        Ok(())
    }

    /// Records store progress: watchers read the revision for BOOKMARKs
    /// (see `bookmark_revision`), so nobody is woken for it.
    pub(super) fn progress(&mut self, revision: i64) {
        self.revision = self.revision.max(revision);
    }

    /// The revision watcher `id` may promise in a BOOKMARK: the cache's,
    /// provided the watcher has consumed everything sent to it (what was
    /// sent for changes up to that revision was sent under this lock).
    /// None while messages wait in its buffer.
    pub(super) fn bookmark_revision(&self, receiver: &mpsc::Receiver<Message>) -> Option<i64> {
        receiver.is_empty().then_some(self.revision)
    }

    /// Decodes one store event and applies it to the objects.
    fn decode(&mut self, event: &Event) -> Result<CachedEvent, crate::error::ApiError> {
        match event {
            Event::Put { kv, prev } => {
                let entry = Entry::from_store(kv)?;
                let object = entry.object.clone();
                let before = match self.objects.insert(kv.key.clone(), entry) {
                    Some(entry) => Some(entry.object),
                    None => prev
                        .as_ref()
                        .map(Entry::from_store)
                        .transpose()?
                        .map(|entry| entry.object),
                };
                Ok(CachedEvent {
                    revision: kv.mod_revision,
                    key: kv.key.clone(),
                    object,
                    prev: before,
                    deleted: false,
                })
            }
            Event::Delete { prev, revision } => {
                self.objects.remove(&prev.key);
                let mut before = objects::from_store(prev)?;
                objects::set_resource_version(&mut before, *revision);
                Ok(CachedEvent {
                    revision: *revision,
                    key: prev.key.clone(),
                    object: Arc::new(CachedObject::new(&before)?),
                    prev: None,
                    deleted: true,
                })
            }
        }
    }

    /// Sends `message` to the watchers `ids` without waiting: a watcher
    /// whose buffer is full has fallen behind and is ended; one whose
    /// client went away is forgotten.
    fn send(&mut self, ids: HashSet<u64>, message: &Message) {
        let buffer = self.watcher_buffer;
        for id in ids {
            let Some(slot) = self.watchers.get(&id) else {
                continue;
            };
            match slot.sender.try_send(message.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    let _ = slot.ended.set(format!(
                        "the watcher fell behind by more than {buffer} updates; relist and watch again"
                    ));
                    self.remove(id);
                }
                Err(TrySendError::Closed(_)) => self.remove(id),
            }
        }
    }

    /// Forgets watcher `id` (its client went away).
    pub(super) fn remove(&mut self, id: u64) {
        let Some(slot) = self.watchers.remove(&id) else {
            return;
        };
        match slot.index {
            Some(value) => {
                if let Some(ids) = self.indexed.get_mut(&value) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.indexed.remove(&value);
                    }
                }
            }
            None => {
                self.unindexed.remove(&id);
            }
        }
    }

    /// Offers the objects under `prefix` after `page`'s last key, in key
    /// order, to `page` until it is full; `keep` says which are wanted.
    /// Returns whether objects remain after the last one taken.
    pub(super) fn fill_page<T>(
        &self,
        prefix: &str,
        page: &mut PageBuilder<T>,
        mut keep: impl FnMut(&Entry) -> Option<T>,
    ) -> bool {
        let start = match page.last_key() {
            Some(after) => Bound::Excluded(after.to_string()),
            None => Bound::Included(prefix.to_string()),
        };
        let under_prefix = self
            .objects
            .range((start, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix));
        for (key, entry) in under_prefix {
            if !page.offer(key, entry.object.json().len(), keep(entry)) {
                return true;
            }
        }
        false
    }

    /// Registers a watcher of the keys under `prefix`: from the current
    /// objects (`after` None) or after revision `after`; `Expired` when
    /// that revision is older than the window. `index`: the value of
    /// `INDEXED_FIELD` the watcher's selector requires, if any.
    pub(super) fn subscribe(
        &mut self,
        prefix: &str,
        after: Option<i64>,
        index: Option<&str>,
    ) -> Result<Subscription, StoreError> {
        let (start, after) = match after {
            None => {
                let snapshot = self
                    .objects
                    .range(prefix.to_string()..)
                    .take_while(|(key, _)| key.starts_with(prefix))
                    .map(|(key, entry)| (key.clone(), entry.clone()))
                    .collect();
                (Start::Snapshot(snapshot), self.revision)
            }
            Some(after) if after < self.floor => {
                return Err(StoreError::Expired {
                    requested: after,
                    compacted: self.floor,
                });
            }
            Some(after) => {
                let replay = self
                    .window
                    .iter()
                    .filter(|batch| batch.last().is_some_and(|e| e.revision > after))
                    .cloned()
                    .collect();
                (Start::Replay(replay), after)
            }
        };
        let (sender, receiver) = mpsc::channel(self.watcher_buffer);
        let ended = EndReason::default();
        let id = self.next_id;
        self.next_id += 1;
        match index {
            Some(value) => {
                self.indexed
                    .entry(value.to_string())
                    .or_default()
                    .insert(id);
            }
            None => {
                self.unindexed.insert(id);
            }
        }
        self.watchers.insert(
            id,
            Slot {
                sender,
                ended: ended.clone(),
                index: index.map(str::to_string),
            },
        );
        Ok(Subscription {
            id,
            start,
            after,
            receiver,
            ended,
        })
    }
}
