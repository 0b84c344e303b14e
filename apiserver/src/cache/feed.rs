//! The one store watch of a kind's cache: a list, then a watch from the
//! list's revision, applied to the cache's state. When the store watch
//! fails it is re-established from the cache's revision; when that is
//! Expired (compacted, or the watch fell behind) the cache relists and
//! ends every client watch with Expired, so that they relist too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use sloth_sdk::backoff::Backoff;

use super::state::{Entry, State};
use crate::metrics::{Metrics, StoreWatchGuard};
use crate::store::{ListOptions, Store, StoreError, StoreResult, WatchItem};

/// Keys read per list page.
const PAGE: usize = 500;
/// The waits between attempts to reach a failing store: 100ms doubling up
/// to 5s.
const REOPEN_BACKOFF: Backoff = Backoff::fixed(Duration::from_millis(100), Duration::from_secs(5));

type StoreStream = BoxStream<'static, StoreResult<WatchItem>>;

/// What the feed needs, shared with its task.
#[derive(Clone, Debug)]
pub(crate) struct Feed {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub kind: &'static str,
    /// Every key of the kind (all namespaces).
    pub prefix: String,
    pub capacity: usize,
    pub state: Arc<Mutex<State>>,
}

/// Why the cache must relist at once, and up to where clients' revisions
/// are not to be trusted.
struct Relist {
    reason: String,
    distrust_through: i64,
}

/// An open store watch, counted in `sloth_store_watches` while it lives.
pub(crate) struct Open {
    stream: StoreStream,
    _guard: StoreWatchGuard,
}

impl Feed {
    /// Lists and opens the store watch: the state is then ready for
    /// watchers. The caller runs [`Feed::run`] with the result.
    pub(super) async fn start(&self) -> StoreResult<Open> {
        self.sync("the watch cache started", 0).await
    }

    /// Applies the store watch to the state until `shutdown`, re-opening
    /// it (and relisting when needed) on failure.
    pub(super) async fn run(self, mut open: Open, shutdown: CancellationToken) {
        loop {
            let item = tokio::select! {
                () = shutdown.cancelled() => break,
                item = open.stream.next() => item,
            };
            let error = match item {
                Some(Ok(WatchItem::Events(events))) => {
                    let Err(overtaken) = self.lock().apply(&events) else {
                        // Let the watchers just woken drain their buffers
                        // before the next item: a burst of store events
                        // already waiting must not fill a watcher's buffer
                        // (and end it) before it ever ran.
                        tokio::task::yield_now().await;
                        continue;
                    };
                    // Events the cache skipped may be missing from it: only
                    // a fresh list (and every client relisting) repairs that.
                    drop(open);
                    tracing::error!(kind = self.kind, error = %overtaken, "watch cache: a store progress notification overtook events; relisting and expiring every client watch");
                    let reason =
                        format!("the watch cache relisted ({overtaken}); relist and watch again");
                    let relist = Relist {
                        reason,
                        distrust_through: overtaken.progress,
                    };
                    match self.reopen(&shutdown, Some(relist)).await {
                        Some(reopened) => open = reopened,
                        None => break,
                    }
                    continue;
                }
                Some(Ok(WatchItem::Progress(revision))) => {
                    self.lock().progress(revision);
                    continue;
                }
                Some(Err(e)) => e,
                None => StoreError::Backend("the store watch ended".into()),
            };
            drop(open);
            let revision = self.lock().applied();
            tracing::warn!(kind = self.kind, revision, error = %error, "watch cache: the store watch failed; re-establishing it");
            match self.reopen(&shutdown, None).await {
                Some(reopened) => open = reopened,
                None => break,
            }
        }
        self.lock().close_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves a usable state (each
        // mutation completes or is skipped), so recover it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Re-opens the store watch from the last event the cache applied (not
    /// from a progress revision, which cannot be checked), relisting when
    /// that is Expired, or at once with `relist` (the reason given to client
    /// watches); retries with backoff until it works or `shutdown`.
    async fn reopen(&self, shutdown: &CancellationToken, relist: Option<Relist>) -> Option<Open> {
        let mut retries = REOPEN_BACKOFF.retries();
        loop {
            let backoff = retries.next_delay();
            let revision = self.lock().applied();
            let watched = match &relist {
                Some(relist) => self.sync(&relist.reason, relist.distrust_through).await,
                None => self
                    .store
                    .watch(&self.prefix, revision)
                    .await
                    .map(|stream| Open {
                        stream,
                        _guard: self.metrics.store_watch_started(),
                    }),
            };
            let attempt = match watched {
                Ok(open) => Ok(open),
                Err(StoreError::Expired { compacted, .. }) => {
                    tracing::warn!(
                        kind = self.kind,
                        revision,
                        compacted,
                        "watch cache: revision {revision} is gone from the store; relisting and expiring every client watch"
                    );
                    match &relist {
                        Some(r) => self.sync(&r.reason, r.distrust_through).await,
                        None => {
                            self.sync(&format!(
                                "the watch cache relisted (revision {revision} was compacted); relist and watch again"
                            ), 0)
                            .await
                        }
                    }
                }
                Err(e) => Err(e),
            };
            match attempt {
                Ok(open) => {
                    tracing::info!(
                        kind = self.kind,
                        revision = self.lock().revision(),
                        "watch cache: store watch re-established"
                    );
                    return Some(open);
                }
                Err(e) => {
                    tracing::warn!(kind = self.kind, error = %e, retry_in = ?backoff, "watch cache: cannot re-establish the store watch");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(backoff) => {}
            }
        }
    }

    /// Lists the kind and opens a watch from the list's revision, then
    /// resets the state to that list (ending every watcher with `reason`).
    ///
    /// The list is read as far back as the store's history and the window
    /// allow, and the watch replays from there: the window then covers
    /// recent history at once, so that clients resuming from a revision
    /// they saw before the cache started need not relist.
    ///
    /// Clients may not resume at or before `distrust_through` (see
    /// [`State::distrust_through`]; 0 for none).
    async fn sync(&self, reason: &str, distrust_through: i64) -> StoreResult<Open> {
        let current = self.store.current_revision().await?;
        let compacted = self.store.compacted_revision().await?;
        let window = i64::try_from(self.capacity).unwrap_or(i64::MAX);
        let from = compacted.max(current.saturating_sub(window)).max(0);
        let (objects, revision) = match self.list(from).await {
            Ok(listed) => listed,
            // Compacted meanwhile: the current state will do.
            Err(StoreError::Expired { .. }) => self.list(current).await?,
            Err(e) => return Err(e),
        };
        let stream = self.store.watch(&self.prefix, revision).await?;
        let guard = self.metrics.store_watch_started();
        let count = objects.len();
        {
            let mut state = self.lock();
            state.reset(objects, revision, current, reason);
            state.distrust_through(distrust_through);
        }
        tracing::info!(
            kind = self.kind,
            revision,
            objects = count,
            "watch cache: listed; watching from here"
        );
        Ok(Open {
            stream,
            _guard: guard,
        })
    }

    /// Every object of the kind as of `revision` (nothing at revision 0).
    async fn list(&self, revision: i64) -> StoreResult<(BTreeMap<String, Entry>, i64)> {
        let mut objects = BTreeMap::new();
        if revision == 0 {
            return Ok((objects, 0));
        }
        let mut start_after = None;
        loop {
            let page = self
                .store
                .list(
                    &self.prefix,
                    ListOptions {
                        limit: PAGE,
                        start_after,
                        revision: Some(revision),
                    },
                )
                .await?;
            for kv in page.items {
                match Entry::from_store(&kv) {
                    Ok(entry) => {
                        objects.insert(kv.key, entry);
                    }
                    Err(e) => {
                        tracing::warn!(key = kv.key, error = %e, "watch cache: skipping an undecodable object");
                    }
                }
            }
            start_after = page.next_key;
            if start_after.is_none() {
                return Ok((objects, revision));
            }
        }
    }
}
