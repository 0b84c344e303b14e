//! The due-time index of the expiry controllers (`expiry`): every object
//! with a TTL, keyed by when it is due, with the resourceVersion it was
//! judged at.
//!
//! It replaced a work queue of whole cached objects, each reconciled once
//! at start only to learn it was due a day later: with 100,000 finished
//! TaskRuns stored, a restart spawned 100,000 reconciles and cached
//! 100,000 TaskRuns. Here an object costs one index entry (its key, its
//! due time, its version) and work is done only for what is due.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sloth_sdk::runtime::ObjectRef;

/// When one tracked object is due, and the version of it judged so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    pub at: DateTime<Utc>,
    /// Deleting is conditional on it: a changed object is judged again.
    pub resource_version: String,
}

/// Objects by due time; one entry per object.
#[derive(Debug, Default)]
pub struct DueQueue {
    entries: HashMap<ObjectRef, Due>,
    order: BTreeSet<(DateTime<Utc>, ObjectRef)>,
}

impl DueQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Tracks `key` as due per `due`, replacing what was known of it;
    /// `None` forgets it (no TTL, or gone).
    pub fn set(&mut self, key: ObjectRef, due: Option<Due>) {
        if let Some(old) = self.entries.remove(&key) {
            self.order.remove(&(old.at, key.clone()));
        }
        if let Some(due) = due {
            self.order.insert((due.at, key.clone()));
            self.entries.insert(key, due);
        }
    }

    /// Tracks `key` as per `due` unless something newer is known of it
    /// already (for a retry after a failed deletion, which must not undo
    /// the judgment of an event that arrived meanwhile).
    pub fn set_unless_known(&mut self, key: ObjectRef, due: Due) {
        if !self.entries.contains_key(&key) {
            self.set(key, Some(due));
        }
    }

    /// Forgets everything (before a relist is tracked afresh).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// Objects tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When the earliest object is due.
    pub fn next_at(&self) -> Option<DateTime<Utc>> {
        self.order.first().map(|(at, _)| *at)
    }

    /// Takes the earliest object due at `now`, if any: O(log n), whatever
    /// the number of objects not yet due.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Option<(ObjectRef, Due)> {
        if self.next_at()? > now {
            return None;
        }
        let (_, key) = self.order.pop_first()?;
        let due = self.entries.remove(&key)?;
        Some((key, due))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::at;

    fn due(secs: i64, version: &str) -> Option<Due> {
        Some(Due {
            at: at(secs),
            resource_version: version.into(),
        })
    }

    fn key(name: &str) -> ObjectRef {
        ObjectRef::new("ns", name)
    }

    #[test]
    fn of_many_tracked_objects_only_the_due_ones_are_handed_out() {
        let mut queue = DueQueue::new();
        // 100,000 finished TaskRuns due in a day, three due now.
        for i in 0..100_000 {
            queue.set(key(&format!("later-{i}")), due(86_400 + i, "1"));
        }
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            queue.set(key(name), due(i as i64, "7"));
        }
        let mut handed_out = Vec::new();
        while let Some((key, due)) = queue.pop_due(at(10)) {
            assert_eq!(due.resource_version, "7");
            handed_out.push(key.name);
        }
        assert_eq!(handed_out, ["a", "b", "c"], "earliest first, nothing else");
        assert_eq!(queue.len(), 100_000);
        assert_eq!(queue.next_at(), Some(at(86_400)));
        assert!(queue.pop_due(at(86_399)).is_none());
        assert_eq!(
            queue.pop_due(at(86_400)).map(|(k, _)| k),
            Some(key("later-0"))
        );
    }

    #[test]
    fn a_new_judgment_replaces_the_old_one_and_none_forgets() {
        let mut queue = DueQueue::new();
        queue.set(key("a"), due(5, "1"));
        // Changed: due later now, at a new version.
        queue.set(key("a"), due(50, "2"));
        assert!(queue.pop_due(at(10)).is_none());
        assert_eq!(queue.len(), 1);
        let (_, d) = queue.pop_due(at(50)).expect("due at 50");
        assert_eq!(d.resource_version, "2");
        queue.set(key("b"), due(1, "1"));
        queue.set(key("b"), None);
        assert!(queue.is_empty());
        assert!(queue.pop_due(at(100)).is_none());
    }

    #[test]
    fn a_retry_never_undoes_a_newer_judgment() {
        let mut queue = DueQueue::new();
        queue.set(key("a"), due(100, "3"));
        queue.set_unless_known(
            key("a"),
            Due {
                at: at(1),
                resource_version: "2".into(),
            },
        );
        assert!(queue.pop_due(at(50)).is_none());
        queue.clear();
        queue.set_unless_known(
            key("a"),
            Due {
                at: at(1),
                resource_version: "2".into(),
            },
        );
        assert_eq!(
            queue.pop_due(at(1)).map(|(_, d)| d.resource_version),
            Some("2".into())
        );
    }
}
