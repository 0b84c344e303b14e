//! What runs here and how much may: the capacity semaphore, the count of
//! live processes, and the registry of TaskRuns this process holds (from its
//! Running claim until its terminal status is written).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// Identifies a TaskRun: `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RunKey {
    pub namespace: String,
    pub name: String,
}

impl RunKey {
    pub(crate) fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for RunKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a run is stopped before its process exits by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// The TaskRun was deleted.
    Deleted,
    /// Its status became terminal through someone else.
    Finalized,
    /// The agent is shutting down and the grace period ran out.
    Shutdown,
    /// The agent could not renew its heartbeat lease in time (fencing).
    LeaseLost,
    /// A Lock the run held through Lua's `lock` module was deleted, taken
    /// over or ran out: mutual exclusion no longer holds.
    LockLost,
}

/// The capacity semaphore and the count of live TaskRun processes.
#[derive(Debug)]
pub(crate) struct Slots {
    permits: Arc<Semaphore>,
    running: AtomicU32,
    changes: watch::Sender<u32>,
}

impl Slots {
    pub(crate) fn new(capacity: u32) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(capacity as usize)),
            running: AtomicU32::new(0),
            changes: watch::Sender::new(0),
        })
    }

    /// A slot for one more TaskRun, when one is free.
    pub(crate) fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// Records a started process; returns the guard that records its end and
    /// the number of processes now running.
    pub(crate) fn process_started(self: &Arc<Self>) -> (ProcessGuard, u32) {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.changes.send_replace(now);
        (ProcessGuard(self.clone()), now)
    }

    /// Processes running now.
    pub(crate) fn running(&self) -> u32 {
        self.running.load(Ordering::SeqCst)
    }

    /// Notified whenever the running count changes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u32> {
        self.changes.subscribe()
    }
}

/// Counts one live process; dropping it records the process's end.
#[derive(Debug)]
pub(crate) struct ProcessGuard(Arc<Slots>);

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        let now = self
            .0
            .running
            .fetch_sub(1, Ordering::SeqCst)
            .saturating_sub(1);
        self.0.changes.send_replace(now);
    }
}

#[derive(Debug)]
struct Entry {
    uid: String,
    stop: watch::Sender<Option<StopReason>>,
}

/// The TaskRuns this process holds. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct ActiveRuns {
    entries: Arc<Mutex<HashMap<RunKey, Entry>>>,
    count: Arc<watch::Sender<usize>>,
}

impl Default for ActiveRuns {
    fn default() -> Self {
        Self {
            entries: Arc::default(),
            count: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl ActiveRuns {
    fn lock(&self) -> MutexGuard<'_, HashMap<RunKey, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `key` (TaskRun `uid`) unless it is already held: returns the
    /// guard that releases it and the receiver of stop requests.
    pub(crate) fn insert(
        &self,
        key: RunKey,
        uid: &str,
    ) -> Option<(RunGuard, watch::Receiver<Option<StopReason>>)> {
        let mut entries = self.lock();
        if entries.contains_key(&key) {
            return None;
        }
        let (stop, stopped) = watch::channel(None);
        entries.insert(
            key.clone(),
            Entry {
                uid: uid.to_string(),
                stop,
            },
        );
        self.count.send_replace(entries.len());
        Some((
            RunGuard {
                runs: self.clone(),
                key,
            },
            stopped,
        ))
    }

    pub(crate) fn contains(&self, key: &RunKey) -> bool {
        self.lock().contains_key(key)
    }

    /// The uid of the TaskRun held under `key`.
    pub(crate) fn uid(&self, key: &RunKey) -> Option<String> {
        self.lock().get(key).map(|e| e.uid.clone())
    }

    pub(crate) fn keys(&self) -> Vec<RunKey> {
        self.lock().keys().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Asks the run of `key` to stop, when it is the TaskRun `uid` (any when
    /// `uid` is empty); returns whether such a run is held.
    pub(crate) fn stop(&self, key: &RunKey, uid: &str, reason: StopReason) -> bool {
        match self.lock().get(key) {
            Some(entry) if uid.is_empty() || entry.uid == uid => {
                entry.stop.send_if_modified(|current| {
                    if current.is_none() {
                        *current = Some(reason);
                        true
                    } else {
                        false
                    }
                });
                true
            }
            _ => false,
        }
    }

    /// Asks every run to stop.
    pub(crate) fn stop_all(&self, reason: StopReason) {
        for key in self.keys() {
            self.stop(&key, "", reason);
        }
    }

    /// Waits until nothing is held; false when `limit` passed first.
    pub(crate) async fn wait_empty(&self, limit: Duration) -> bool {
        let mut count = self.count.subscribe();
        tokio::time::timeout(limit, count.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Holds one TaskRun in [`ActiveRuns`] until dropped.
#[derive(Debug)]
pub(crate) struct RunGuard {
    runs: ActiveRuns,
    key: RunKey,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let mut entries = self.runs.lock();
        entries.remove(&self.key);
        self.runs.count.send_replace(entries.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_bound_concurrency_and_count_processes() {
        let slots = Slots::new(2);
        let a = slots.try_acquire().expect("first");
        let _b = slots.try_acquire().expect("second");
        assert!(slots.try_acquire().is_none());
        drop(a);
        assert!(slots.try_acquire().is_some());
        let changes = slots.subscribe();
        let (guard, n) = slots.process_started();
        assert_eq!((n, slots.running(), *changes.borrow()), (1, 1, 1));
        drop(guard);
        assert_eq!((slots.running(), *changes.borrow()), (0, 0));
    }

    #[tokio::test]
    async fn runs_are_held_once_and_stopped_by_uid() {
        let runs = ActiveRuns::default();
        let key = RunKey::new("ns", "t1");
        let (guard, stopped) = runs.insert(key.clone(), "uid-1").expect("insert");
        assert!(runs.insert(key.clone(), "uid-2").is_none(), "held twice");
        assert!(!runs.stop(&key, "uid-other", StopReason::Deleted));
        assert_eq!(*stopped.borrow(), None);
        assert!(runs.stop(&key, "uid-1", StopReason::Deleted));
        runs.stop(&key, "", StopReason::Shutdown);
        assert_eq!(*stopped.borrow(), Some(StopReason::Deleted), "first wins");
        assert!(!runs.wait_empty(Duration::from_millis(10)).await);
        drop(guard);
        assert!(runs.wait_empty(Duration::from_millis(10)).await);
        assert_eq!(runs.len(), 0);
    }
}
