//! The store conformance suite: every promise of the `Store` trait, as
//! async functions that each take a fresh, empty store that nothing else
//! writes to (the cases check exact revisions). Backends run all of them
//! with one line:
//!
//! ```ignore
//! sloth_apiserver::store_conformance_tests!(fresh_store);
//! ```
//!
//! where `fresh_store` is an async fn (or closure) returning a [`Fixture`]:
//! the store itself, or `(store, guard)` with a guard (a temporary
//! directory, a server) that must outlive the test. Factories should set a
//! progress interval of at most a few seconds: `watch_sends_progress_when_idle`
//! waits at most `WAIT` for one.
//!
//! Every wait is bounded, so a broken backend fails a test instead of
//! hanging it. The cases are grouped by topic: single keys (`kv`), lists
//! and pages (`list`), racing writers (`concurrency`), watches (`watch`)
//! and compaction (`compaction`).

use std::sync::Arc;
use std::time::Duration;

use super::Store;

mod compaction;
mod concurrency;
mod helpers;
mod kv;
mod list;
mod watch;

// The macro names each case by path, so they all live at this level.
pub use compaction::*;
pub use concurrency::*;
pub use kv::*;
pub use list::*;
pub use watch::*;

/// Generous, because CI machines are small and busy: a correct backend
/// answers in milliseconds, so this only bounds how long a broken one hangs.
pub const WAIT: Duration = Duration::from_secs(30);

/// What a conformance factory returns: the store, plus whatever has to live
/// as long as the test does.
pub trait Fixture {
    fn store(&self) -> Arc<dyn Store>;
}

impl Fixture for Arc<dyn Store> {
    fn store(&self) -> Arc<dyn Store> {
        self.clone()
    }
}

impl<G> Fixture for (Arc<dyn Store>, G) {
    fn store(&self) -> Arc<dyn Store> {
        self.0.clone()
    }
}

/// One `#[tokio::test]` per conformance case, each on a fresh store from
/// `$factory().await`. Expand it inside a module of its own if the names
/// could clash with other tests.
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!(@cases $factory;
            create_then_get,
            create_existing_is_already_exists,
            get_missing_is_none,
            update_with_current_revision_succeeds,
            update_with_stale_revision_conflicts,
            update_missing_is_not_found,
            delete_without_expected_revision,
            delete_with_expected_revision,
            recreate_after_delete_starts_a_new_life,
            revisions_strictly_increase,
            list_isolates_prefixes,
            list_pages_share_one_revision,
            list_limit_sets_next_key_only_when_more_remain,
            list_at_old_revision,
            list_at_future_revision_fails,
            concurrent_cas_has_one_winner,
            concurrent_increments_are_exact,
            watch_reports_live_changes_with_prev,
            watch_replays_history_then_continues_live,
            watch_filters_by_prefix,
            watch_sees_every_revision_under_concurrent_writes,
            compaction_expires_old_revisions,
            compaction_keeps_latest_values,
            compact_rejects_future_and_ignores_older,
            watch_sends_progress_when_idle,
        );
    };
    (@cases $factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = ($factory)().await;
                let store = $crate::store::conformance::Fixture::store(&fixture);
                $crate::store::conformance::$case(store).await;
            }
        )+
    };
}
