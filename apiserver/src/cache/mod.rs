//! The watch cache: one store watch per kind, started on the kind's first
//! client watch, fanned out to every client watch of that kind.
//!
//! - `state`: the kind's current objects, a bounded window of recent events
//!   and the watchers' bounded buffers (a watcher that falls behind is
//!   ended with Expired, never waited for), indexed by `spec.agentName` so
//!   that a change wakes only the agents it concerns.
//! - `feed`: the store list+watch feeding the state, re-established on
//!   failure, relisting (and expiring every client watch) when Expired.
//! - `watcher`: one client watch: snapshot or replay, then live events,
//!   filtered by namespace and selectors in memory, with BOOKMARKs.
//!
//! So ten thousand agents each watching their own TaskRuns cost one store
//! (etcd) watch, and one decode and one encode of each change: the state
//! holds objects in `object::CachedObject`'s compact form (their JSON and
//! the fields selectors read), which every watcher sends as is.

mod feed;
mod object;
mod state;
mod watcher;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sloth_sdk::kinds::KindInfo;
use tokio::sync::{OnceCell, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::registry::keys::kind_prefix;
use crate::registry::paging::PageBuilder;
use crate::registry::resources::{Selectors, resolve_kind};
use crate::registry::watch::{ObjectEvent, WATCH_BUFFER, WatchRequest};
use crate::store::{Store, StoreError};

use feed::Feed;
pub use object::CachedObject;
pub use state::Entry;
use state::{INDEXED_FIELD, State};

/// Sizes of the watch cache.
#[derive(Clone, Copy, Debug)]
pub struct CacheOptions {
    /// Recent events kept per kind: a watch may resume from any revision
    /// the window covers; older ones get Expired (the client relists).
    pub window: usize,
    /// Updates buffered per client watch; a watcher further behind is ended
    /// with Expired.
    pub watcher_buffer: usize,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            window: 10_000,
            watcher_buffer: 1_000,
        }
    }
}

/// One kind's cache.
#[derive(Debug)]
struct KindCache {
    kind: &'static KindInfo,
    state: Arc<Mutex<State>>,
}

/// The watch caches of every kind, started on demand.
#[derive(Debug)]
pub struct WatchCache {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    options: CacheOptions,
    shutdown: CancellationToken,
    kinds: Mutex<HashMap<&'static str, Arc<OnceCell<Arc<KindCache>>>>>,
    /// The store's compacted revision and when it was read.
    compacted: Mutex<Option<(Instant, i64)>>,
    /// The newest store revision seen.
    store_revision: AtomicI64,
}

/// How long a read of the store's compacted revision is trusted.
const COMPACTED_TTL: Duration = Duration::from_secs(1);

/// One page of a list served by the watch cache.
#[derive(Debug)]
pub struct CachedPage {
    pub kind: &'static KindInfo,
    pub items: Vec<Entry>,
    /// The revision the page is consistent at.
    pub revision: i64,
    pub continue_token: String,
}

/// How far one kind's cache has got, for tests and diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheStatus {
    pub revision: i64,
    /// The oldest revision a watch may resume from.
    pub floor: i64,
    pub objects: usize,
    pub watchers: usize,
}

impl WatchCache {
    /// Caches of `store`; their store watches end at `shutdown`.
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        options: CacheOptions,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            metrics,
            options,
            shutdown,
            kinds: Mutex::new(HashMap::new()),
            compacted: Mutex::new(None),
            store_revision: AtomicI64::new(0),
        })
    }

    /// Serves a client watch from the kind's cache (starting the cache on
    /// first use). Fails at once with Expired when the resourceVersion is
    /// older than the cache's window.
    pub async fn watch(
        &self,
        request: WatchRequest,
    ) -> Result<BoxStream<'static, Result<ObjectEvent, ApiError>>, ApiError> {
        let kind = resolve_kind(&request.kind)?;
        let namespace = if kind.namespaced {
            request.namespace.as_str()
        } else {
            ""
        };
        let prefix = kind_prefix(kind, namespace);
        let cache = self.kind_cache(kind).await?;
        if let Some(requested) = request.resource_version {
            // Compacted in the store: Expired, as a store watch would be,
            // even while the window still holds it.
            let compacted = self.compacted_revision().await?;
            if requested < compacted {
                return Err(StoreError::Expired {
                    requested,
                    compacted,
                }
                .into());
            }
            // Newer than the cache: refuse it if the store does not have it
            // yet either; otherwise the cache gets there, and the events up
            // to it are skipped for this watcher.
            // (The cache's revision trails the store's whenever other kinds
            // were written last, so this is common; the store is asked only
            // when `requested` is beyond any revision seen so far.)
            if requested > lock(&cache.state).revision()
                && requested > self.store_revision.load(Ordering::Relaxed)
            {
                let current = self.store.current_revision().await?;
                self.store_revision.fetch_max(current, Ordering::Relaxed);
                if requested > current {
                    return Err(StoreError::FutureRevision { requested, current }.into());
                }
            }
        }
        let index = request.selectors.fields.required_value(INDEXED_FIELD);
        let subscription =
            lock(&cache.state).subscribe(&prefix, request.resource_version, index)?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(watcher::run(
            cache.kind,
            request,
            prefix,
            cache.state.clone(),
            subscription,
            tx,
            self.shutdown.clone(),
        ));
        Ok(ReceiverStream::new(rx).boxed())
    }

    /// One page of a list served from the kind's cache (starting it on
    /// first use): a list at "any recent" resourceVersion, as Kubernetes
    /// serves `resourceVersion=0`. The page is consistent at the cache's
    /// revision, which may trail the store's a little; its continue token
    /// reads the rest from the store at that same revision.
    ///
    /// None while the cache has not caught up with the store since it
    /// (re)listed (it lists an older revision and replays from there, and
    /// gets to the store's revision with the next change or progress
    /// notification): the caller lists from the store, never waits.
    pub async fn list(
        &self,
        kind: &str,
        namespace: &str,
        selectors: &Selectors,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<CachedPage>, ApiError> {
        let kind = resolve_kind(kind)?;
        let prefix = kind_prefix(kind, namespace);
        let cache = self.kind_cache(kind).await?;
        let state = lock(&cache.state);
        if !state.is_current() {
            return Ok(None);
        }
        let mut page = PageBuilder::new(limit, max_bytes, None);
        let revision = state.revision();
        let more = state.fill_page(&prefix, &mut page, |entry| {
            entry.object.matches(selectors).then(|| entry.clone())
        });
        drop(state);
        let (items, continue_token) = page.finish(revision, more);
        Ok(Some(CachedPage {
            kind,
            items,
            revision,
            continue_token,
        }))
    }

    /// The store's compacted revision, read at most once per
    /// `COMPACTED_TTL` (resuming watches need it; compaction is rare).
    async fn compacted_revision(&self) -> Result<i64, StoreError> {
        if let Some((at, revision)) = *lock(&self.compacted)
            && at.elapsed() < COMPACTED_TTL
        {
            return Ok(revision);
        }
        let revision = self.store.compacted_revision().await?;
        *lock(&self.compacted) = Some((Instant::now(), revision));
        Ok(revision)
    }

    /// Where the cache of `kind` stands, if it has started.
    pub fn status(&self, kind: &str) -> Option<CacheStatus> {
        let kind = resolve_kind(kind).ok()?;
        let cell = lock(&self.kinds).get(kind.kind)?.clone();
        let cache = cell.get()?;
        let state = lock(&cache.state);
        Some(CacheStatus {
            revision: state.revision(),
            floor: state.floor(),
            objects: state.object_count(),
            watchers: state.watcher_count(),
        })
    }

    /// The cache of `kind`, listing and opening its store watch on first use.
    async fn kind_cache(&self, kind: &'static KindInfo) -> Result<Arc<KindCache>, ApiError> {
        let cell = lock(&self.kinds).entry(kind.kind).or_default().clone();
        let cache = cell
            .get_or_try_init(|| async {
                let state = Arc::new(Mutex::new(State::new(
                    self.options.window,
                    self.options.watcher_buffer,
                )));
                let feed = Feed {
                    store: self.store.clone(),
                    metrics: self.metrics.clone(),
                    kind: kind.kind,
                    prefix: kind_prefix(kind, ""),
                    capacity: self.options.window,
                    state: state.clone(),
                };
                let open = feed.start().await?;
                tokio::spawn(feed.run(open, self.shutdown.clone()));
                Ok::<_, StoreError>(Arc::new(KindCache { kind, state }))
            })
            .await?;
        Ok(cache.clone())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
