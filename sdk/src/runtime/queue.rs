//! The work queue between triggers and reconcilers.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use super::object_ref::ObjectRef;

/// Far enough ahead to mean "never" without overflowing `Instant`, for
/// requeue delays too large to add.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// Pending reconciles, each with the time it becomes due.
///
/// - One pending entry per object: triggering an already-pending object only
///   moves its due time, and only earlier, so a burst of events costs one
///   reconcile and a "requeue in 5 minutes" cannot postpone an immediate
///   trigger.
/// - An object handed out by [`pop_ready`](Self::pop_ready) counts as running
///   until [`finish`](Self::finish); it is never handed out twice at once.
///   Triggers meanwhile are remembered (earliest due time wins) and become
///   one pending entry when the run finishes, because the running reconcile
///   may have read the object before the change that triggered them.
///
/// Time is Tokio's, so tests with paused time control it.
#[derive(Debug, Default)]
pub struct WorkQueue {
    due: HashMap<ObjectRef, Instant>,
    order: BTreeSet<(Instant, ObjectRef)>,
    /// Running objects, each with the due time of the run to follow, if it
    /// was triggered while running.
    running: HashMap<ObjectRef, Option<Instant>>,
}

impl WorkQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules a reconcile of `key` after `delay` (zero: now).
    pub fn schedule(&mut self, key: ObjectRef, delay: Duration) {
        let now = Instant::now();
        let at = now.checked_add(delay).unwrap_or_else(|| now + FAR_FUTURE);
        self.schedule_at(key, at);
    }

    /// Schedules a reconcile of `key` at `at`, unless one is already due
    /// earlier.
    pub fn schedule_at(&mut self, key: ObjectRef, at: Instant) {
        if let Some(next) = self.running.get_mut(&key) {
            *next = Some(next.map_or(at, |next| next.min(at)));
            return;
        }
        match self.due.get(&key) {
            Some(&current) if current <= at => {}
            current => {
                if let Some(&current) = current {
                    self.order.remove(&(current, key.clone()));
                }
                self.order.insert((at, key.clone()));
                self.due.insert(key, at);
            }
        }
    }

    /// Takes the earliest object due at `now` and marks it running.
    pub fn pop_ready(&mut self, now: Instant) -> Option<ObjectRef> {
        let first = self.order.first()?;
        if first.0 > now {
            return None;
        }
        let (_, key) = self.order.pop_first()?;
        self.due.remove(&key);
        self.running.insert(key.clone(), None);
        Some(key)
    }

    /// Marks the run of `key` finished; a trigger that arrived during the run
    /// becomes pending now.
    pub fn finish(&mut self, key: &ObjectRef) {
        if let Some(Some(at)) = self.running.remove(key) {
            self.schedule_at(key.clone(), at);
        }
    }

    /// Forgets the pending reconcile of `key` (and the one to follow its
    /// current run), e.g. because the object is gone.
    pub fn cancel(&mut self, key: &ObjectRef) {
        if let Some(at) = self.due.remove(key) {
            self.order.remove(&(at, key.clone()));
        }
        if let Some(next) = self.running.get_mut(key) {
            *next = None;
        }
    }

    /// When the earliest pending object becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.order.first().map(|(at, _)| *at)
    }

    /// When `key` is due, if it is pending (not counting a run to follow the
    /// current one).
    pub fn due(&self, key: &ObjectRef) -> Option<Instant> {
        self.due.get(key).copied()
    }

    /// True while a reconcile of `key` runs (between `pop_ready` and `finish`).
    pub fn is_running(&self, key: &ObjectRef) -> bool {
        self.running.contains_key(key)
    }

    /// The number of pending objects.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// True when no object is pending.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    /// The number of running objects.
    pub fn running(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectRef {
        ObjectRef::new("ns", name)
    }

    const SEC: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn deduplicates_and_earliest_due_time_wins() {
        let mut q = WorkQueue::new();
        let now = Instant::now();
        q.schedule(key("a"), 10 * SEC);
        q.schedule(key("a"), 3 * SEC);
        q.schedule(key("a"), 20 * SEC);
        assert_eq!((q.len(), q.due(&key("a"))), (1, Some(now + 3 * SEC)));
        assert_eq!(q.pop_ready(now + 2 * SEC), None);
        assert_eq!(q.next_due(), Some(now + 3 * SEC));
        assert_eq!(q.pop_ready(now + 3 * SEC), Some(key("a")));
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn hands_out_in_due_order() {
        let mut q = WorkQueue::new();
        let now = Instant::now();
        q.schedule(key("late"), 2 * SEC);
        q.schedule(key("early"), SEC);
        q.schedule(key("now"), Duration::ZERO);
        let later = now + 5 * SEC;
        let order: Vec<_> = std::iter::from_fn(|| q.pop_ready(later)).collect();
        assert_eq!(order, [key("now"), key("early"), key("late")]);
    }

    #[tokio::test(start_paused = true)]
    async fn never_hands_out_a_running_object_and_reruns_it_once() {
        let mut q = WorkQueue::new();
        let now = Instant::now();
        q.schedule(key("a"), Duration::ZERO);
        assert_eq!(q.pop_ready(now), Some(key("a")));
        for _ in 0..10 {
            q.schedule(key("a"), Duration::ZERO);
        }
        assert!(q.is_running(&key("a")));
        assert_eq!(q.pop_ready(now), None);
        q.finish(&key("a"));
        assert_eq!(q.pop_ready(now), Some(key("a")));
        q.finish(&key("a"));
        assert_eq!((q.pop_ready(now), q.running()), (None, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trigger_during_a_run_keeps_the_earliest_due_time() {
        let mut q = WorkQueue::new();
        let now = Instant::now();
        q.schedule(key("a"), Duration::ZERO);
        assert_eq!(q.pop_ready(now), Some(key("a")));
        q.schedule(key("a"), 9 * SEC);
        q.schedule(key("a"), 4 * SEC);
        q.finish(&key("a"));
        // The reconcile asked for a later requeue; the trigger is earlier.
        q.schedule(key("a"), 60 * SEC);
        assert_eq!(q.due(&key("a")), Some(now + 4 * SEC));
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_forgets_pending_and_follow_up_runs() {
        let mut q = WorkQueue::new();
        let now = Instant::now();
        q.schedule(key("a"), SEC);
        q.cancel(&key("a"));
        assert_eq!((q.len(), q.next_due()), (0, None));

        q.schedule(key("b"), Duration::ZERO);
        assert_eq!(q.pop_ready(now), Some(key("b")));
        q.schedule(key("b"), Duration::ZERO);
        q.cancel(&key("b"));
        q.finish(&key("b"));
        assert_eq!(q.pop_ready(now + SEC), None);
    }

    #[tokio::test(start_paused = true)]
    async fn huge_delays_do_not_overflow() {
        let mut q = WorkQueue::new();
        q.schedule(key("a"), Duration::MAX);
        assert!(q.next_due().is_some_and(|at| at > Instant::now()));
    }
}
