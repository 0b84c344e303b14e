//! The embedded backend: etcd semantics in one redb file, for single-node
//! installations (modelled on kine, without its polling).
//!
//! One writer thread assigns revisions and commits requests in batches
//! (group commit), then publishes the committed events to watchers over a
//! broadcast channel; a history table lets watches resume from older
//! revisions until compaction. Reads use redb's MVCC read transactions and
//! never wait for the writer. After an I/O error the store serves reads
//! only, until a probe write succeeds again (see `fault`).

mod backend;
mod backup;
mod compact;
mod fault;
mod read;
mod schema;
mod shared;
mod watch;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use redb::{Database, ReadableDatabase};
use tokio::sync::{broadcast, mpsc, oneshot};

use self::fault::Files;
use self::schema::{LOG, META, REVS, backend, to_api};
use self::shared::Shared;
use self::writer::{Batch, Message, Op, Outcome, Request, Writer};
use super::{KeyValue, ListOptions, ListResult, Store, StoreError, StoreResult, WatchItem};

/// Tuning of the embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// How long a watch may stay quiet before it gets a `Progress` item, so
    /// that clients can record a recent resourceVersion (bookmark) and
    /// resume from it instead of relisting.
    pub progress_interval: Duration,
    /// Most writes committed in one transaction: bounds the latency one
    /// fsync adds to the requests queued behind a large batch.
    pub max_batch: usize,
    /// Batches of events buffered for watchers. A watcher further behind
    /// than this catches up from the history table instead.
    pub watch_buffer: usize,
    /// Writes queued for the writer before `create`/`update` wait
    /// (backpressure).
    pub queue_capacity: usize,
    /// For tests only: while a file exists at this path, every write to the
    /// database file fails with ENOSPC, as on a full disk.
    pub fault_switch: Option<PathBuf>,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            progress_interval: Duration::from_secs(1),
            max_batch: 512,
            watch_buffer: 1024,
            queue_capacity: 4096,
            fault_switch: None,
        }
    }
}

/// The embedded store. Open it with [`EmbeddedStore::open`]; call
/// [`EmbeddedStore::close`] before opening the same file again.
pub struct EmbeddedStore {
    path: PathBuf,
    shared: Arc<Shared>,
    requests: mpsc::Sender<Message>,
    /// Weak, so that the writer holds the only strong sender and its exit
    /// ends every watch.
    events: broadcast::WeakSender<Batch>,
    progress_interval: Duration,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .field("revision", &self.shared.current())
            .field("compacted", &self.shared.compacted())
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store file. redb repairs a file left by a
    /// crash while opening it, which can take a while on a large file.
    pub async fn open(path: &Path, options: EmbeddedOptions) -> StoreResult<Arc<Self>> {
        let files = Files {
            path: path.to_path_buf(),
            fault_switch: options.fault_switch.clone(),
        };
        let opening = files.clone();
        let (db, current, compacted, fault) = tokio::task::spawn_blocking(move || init(&opening))
            .await
            .map_err(backend("opening the store"))??;
        let shared = Arc::new(Shared::new(db, current, compacted));
        shared.set_fault(fault);
        let (requests, receiver) = mpsc::channel(options.queue_capacity.max(1));
        let (events, _) = broadcast::channel(options.watch_buffer.max(1));
        let weak_events = events.downgrade();
        Writer {
            shared: shared.clone(),
            files,
            requests: receiver,
            events,
            max_batch: options.max_batch.max(1),
        }
        .spawn()?;
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            shared,
            requests,
            events: weak_events,
            // tokio intervals refuse a zero period.
            progress_interval: options.progress_interval.max(Duration::from_millis(1)),
        }))
    }

    /// Finishes the queued writes, ends every watch and closes the file.
    /// Afterwards every operation fails with `Closed`. Idempotent.
    pub async fn close(&self) -> StoreResult<()> {
        let (ack, acked) = oneshot::channel();
        if self.requests.send(Message::Shutdown(ack)).await.is_ok() {
            // An error only means the writer is already gone.
            let _ = acked.await;
        }
        // Waits for the reads in flight, which hold the read side.
        let mut slot = self.shared.db.write().await;
        if let Some(db) = slot.take() {
            let closed = tokio::task::spawn_blocking(move || db.close())
                .await
                .map_err(backend("closing the store"))?;
            match (closed, self.shared.fault()) {
                (Ok(()), _) => {}
                // Not a failed shutdown: every acknowledged write is on
                // disk, and the next open recovers the file.
                (Err(e), Some(fault)) => tracing::warn!(
                    error = %e,
                    fault,
                    "closed the store while it was read-only after an I/O error"
                ),
                (Err(e), None) => return Err(backend("closing the store")(e)),
            }
        }
        Ok(())
    }

    /// Write transactions committed since open; fewer than the writes when
    /// group commit batched them.
    pub fn commit_count(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    async fn submit(&self, op: Op) -> StoreResult<Outcome> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Message::Request(Request { op, reply }))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    fn ensure_open(&self) -> StoreResult<()> {
        if self.requests.is_closed() {
            return Err(StoreError::Closed);
        }
        Ok(())
    }
}

/// Opens the file, creating the tables on a new one so that readers never
/// meet a missing one, and reads the counters to continue from. Returns the
/// I/O error the store starts read-only after, if the file can be read but
/// not written (a full disk at start): it then recovers like after any
/// other I/O error.
fn init(files: &Files) -> StoreResult<(Database, u64, u64, Option<String>)> {
    let existed = std::fs::metadata(&files.path).is_ok_and(|m| m.len() > 0);
    let (db, fault) = match create_tables(files) {
        Ok(db) => (db, None),
        // Only where reading works while writing does not: a file another
        // process holds, or one too corrupt to repair, fails both ways.
        Err(e) if existed => match files.open_read_only() {
            Ok(db) => {
                let reason = match e {
                    StoreError::Backend(message) => message,
                    other => other.to_string(),
                };
                tracing::error!(
                    error = reason,
                    "the embedded store cannot be written; starting read-only"
                );
                (db, Some(reason))
            }
            Err(_) => return Err(e),
        },
        Err(e) => return Err(e),
    };
    let (current, compacted) = {
        let txn = db
            .begin_read()
            .map_err(backend("beginning a read transaction"))?;
        read::revisions(&txn)?
    };
    Ok((db, current, compacted, fault))
}

fn create_tables(files: &Files) -> StoreResult<Database> {
    let db = files.open()?;
    let txn = db
        .begin_write()
        .map_err(backend("beginning a write transaction"))?;
    txn.open_table(REVS)
        .map_err(backend("creating the versions table"))?;
    txn.open_table(LOG)
        .map_err(backend("creating the history table"))?;
    txn.open_table(META)
        .map_err(backend("creating the metadata table"))?;
    txn.commit().map_err(backend("creating the tables"))?;
    Ok(db)
}

fn unexpected(outcome: Outcome) -> StoreError {
    StoreError::Backend(format!(
        "store writer answered {outcome:?} to the wrong request"
    ))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        let key = key.to_string();
        self.shared.read(move |db| read::get(db, &key)).await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> StoreResult<ListResult> {
        let prefix = prefix.to_string();
        self.shared
            .read(move |db| read::list(db, &prefix, &options))
            .await
    }

    async fn create(&self, key: &str, value: Bytes) -> StoreResult<i64> {
        let key = key.to_string();
        match self.submit(Op::Create { key, value }).await? {
            Outcome::Revision(revision) => Ok(revision),
            other => Err(unexpected(other)),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: i64,
    ) -> StoreResult<i64> {
        let key = key.to_string();
        let op = Op::Update {
            key,
            value,
            expected: expected_mod_revision,
        };
        match self.submit(op).await? {
            Outcome::Revision(revision) => Ok(revision),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> StoreResult<(KeyValue, i64)> {
        let key = key.to_string();
        let op = Op::Delete {
            key,
            expected: expected_mod_revision,
        };
        match self.submit(op).await? {
            Outcome::Deleted(prev, revision) => Ok((prev, revision)),
            other => Err(unexpected(other)),
        }
    }

    async fn watch(
        &self,
        prefix: &str,
        after_revision: i64,
    ) -> StoreResult<BoxStream<'static, StoreResult<WatchItem>>> {
        // Subscribe before looking at history, so that a write committed
        // meanwhile is in the replay or the broadcast, if not both.
        let receiver = self.events.upgrade().ok_or(StoreError::Closed)?.subscribe();
        let after = after_revision.max(0);
        let compacted = to_api(self.shared.compacted());
        if after < compacted {
            return Err(StoreError::Expired {
                requested: after_revision,
                compacted,
            });
        }
        Ok(watch::stream(
            self.shared.clone(),
            receiver,
            prefix.to_string(),
            after,
            self.progress_interval,
        ))
    }

    async fn compact(&self, revision: i64) -> StoreResult<()> {
        match self.submit(Op::Compact { revision }).await? {
            Outcome::Compacted => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn current_revision(&self) -> StoreResult<i64> {
        self.ensure_open()?;
        Ok(to_api(self.shared.current()))
    }

    async fn compacted_revision(&self) -> StoreResult<i64> {
        self.ensure_open()?;
        Ok(to_api(self.shared.compacted()))
    }

    fn fault(&self) -> Option<String> {
        self.shared.fault()
    }
}
