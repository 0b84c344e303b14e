//! State shared by the store handle, the writer thread and watch streams.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock as StdRwLock};

use redb::Database;
use tokio::sync::RwLock;

use super::schema::backend;
use crate::store::{StoreError, StoreResult};

/// The database sits behind an async lock, not for mutual exclusion (redb
/// does its own MVCC) but so that `close` can wait for every reader and the
/// writer to let go before dropping it: only then is the file unlocked and
/// can be reopened in the same process.
#[derive(Debug)]
pub(super) struct Shared {
    pub db: Arc<RwLock<Option<Database>>>,
    /// Mirrors `META.current` after each commit, so the revision can be
    /// answered without a read transaction.
    pub current: AtomicU64,
    pub compacted: AtomicU64,
    /// Write transactions committed; shows how well group commit batches.
    pub commits: AtomicU64,
    /// Why the store refuses writes (an I/O error), until the writer's
    /// probe finds the disk writable again.
    fault: StdRwLock<Option<String>>,
}

impl Shared {
    pub(super) fn new(db: Database, current: u64, compacted: u64) -> Self {
        Self {
            db: Arc::new(RwLock::new(Some(db))),
            current: AtomicU64::new(current),
            compacted: AtomicU64::new(compacted),
            commits: AtomicU64::new(0),
            fault: StdRwLock::new(None),
        }
    }

    /// The I/O error the store is read-only after, if it is.
    pub(super) fn fault(&self) -> Option<String> {
        self.fault
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_fault(&self, fault: Option<String>) {
        *self.fault.write().unwrap_or_else(PoisonError::into_inner) = fault;
    }

    pub(super) fn current(&self) -> u64 {
        self.current.load(Ordering::Acquire)
    }

    pub(super) fn compacted(&self) -> u64 {
        self.compacted.load(Ordering::Acquire)
    }

    /// Runs a blocking read off the async workers; `Closed` once the
    /// database has been closed.
    pub(super) async fn read<T, F>(&self, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    {
        let guard = self.db.clone().read_owned().await;
        tokio::task::spawn_blocking(move || match guard.as_ref() {
            Some(db) => read(db),
            None => Err(StoreError::Closed),
        })
        .await
        .map_err(backend("store read task"))?
    }
}
