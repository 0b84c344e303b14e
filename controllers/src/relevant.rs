//! Narrows a controller's watch to the objects it acts on, so that its
//! cache and work queue hold those only.
//!
//! A controller over every TaskRun (the scheduler, the owner garbage
//! collector) reconciled each cached TaskRun once at start and after each
//! relist, although it acts on few of them (the Pending ones, the ones a
//! Workflow owns): with 100,000 finished TaskRuns stored, a restarted
//! scheduler worked through all of them before it looked at a new one,
//! and kept each in its cache. Narrowed, the list hands it only the
//! relevant objects, and an object that stops being relevant reaches it as
//! deleted, which drops it from the cache and the queue.

use futures_util::{Stream, StreamExt};
use sloth_sdk::watcher::Event;

/// `events` with every object for which `relevant` is false left out of
/// lists, and reported as deleted when it changes.
pub fn only<K, E, St, P>(events: St, relevant: P) -> impl Stream<Item = Result<Event<K>, E>>
where
    St: Stream<Item = Result<Event<K>, E>>,
    P: Fn(&K) -> bool,
{
    events.map(move |item| item.map(|event| narrow(event, &relevant)))
}

/// One event of [`only`].
pub fn narrow<K>(event: Event<K>, relevant: impl Fn(&K) -> bool) -> Event<K> {
    match event {
        Event::Restarted(list) => Event::Restarted(list.into_iter().filter(&relevant).collect()),
        Event::Applied(object) if !relevant(&object) => Event::Deleted(object),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn even(n: &u32) -> bool {
        n.is_multiple_of(2)
    }

    #[test]
    fn a_list_keeps_only_the_relevant_objects() {
        let Event::Restarted(kept) = narrow(Event::Restarted((0..10_000).collect()), even) else {
            panic!("a list stays a list");
        };
        assert_eq!(kept.len(), 5_000);
        assert!(kept.iter().all(even));
    }

    #[test]
    fn an_object_that_stops_being_relevant_is_reported_deleted() {
        assert!(matches!(narrow(Event::Applied(3), even), Event::Deleted(3)));
        assert!(matches!(narrow(Event::Applied(4), even), Event::Applied(4)));
        assert!(matches!(narrow(Event::Deleted(3), even), Event::Deleted(3)));
        assert!(matches!(narrow(Event::Deleted(4), even), Event::Deleted(4)));
    }
}
