//! Read-only mode after an I/O error, and the recovery from it.
//!
//! When a commit fails with an I/O error (ENOSPC, EPERM, EIO), redb refuses
//! every later operation of that `Database`, reads included. The writer then
//! reopens the file over a read-only [`Overlay`] so that gets, lists and
//! watches keep working, refuses writes with [`StoreError::ReadOnly`]
//! (as etcd's NOSPACE alarm does), and retries with backoff: reopen the file
//! for writing and commit a small probe write. When the probe commits, the
//! store is writable again; until then `/readyz` reports the fault.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use redb::{Builder, Database, Durability};
use sloth_sdk::backoff::Backoff;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::oneshot;

use super::backend::{DataFile, Overlay};
use super::read::history_page;
use super::schema::{COMPACTED, CURRENT, META, backend, meta_value};
use super::writer::{Message, Writer};
use crate::store::{Event, StoreError, StoreResult};

/// The waits before recovery attempts: 200ms doubling up to 5s.
const RECOVERY_BACKOFF: Backoff =
    Backoff::fixed(Duration::from_millis(200), Duration::from_secs(5));
/// How often queued writes are refused while waiting to retry: the writer
/// thread has no receive with a timeout.
const POLL: Duration = Duration::from_millis(20);
/// History entries published per read when a commit is found to have
/// landed despite its error.
const REPLAY_PAGE: usize = 1024;

/// How the database file is opened.
#[derive(Clone, Debug)]
pub(super) struct Files {
    pub path: PathBuf,
    /// Tests only: writes fail with ENOSPC while this file exists.
    pub fault_switch: Option<PathBuf>,
}

impl Files {
    fn data_file(&self) -> StoreResult<DataFile> {
        DataFile::open(&self.path, self.fault_switch.as_deref())
            .map_err(backend("opening the database file"))
    }

    /// The database, for reading and writing. redb repairs a file left by a
    /// crash (or a failed commit) here, which writes to it.
    pub(super) fn open(&self) -> StoreResult<Database> {
        Builder::new()
            .create_with_backend(self.data_file()?)
            .map_err(backend("opening the database file"))
    }

    /// The database with every write kept in memory: readable while the
    /// disk refuses writes.
    pub(super) fn open_read_only(&self) -> StoreResult<Database> {
        let overlay = Overlay::new(self.data_file()?)
            .map_err(backend("opening the database file read-only"))?;
        Builder::new()
            .create_with_backend(overlay)
            .map_err(backend("opening the database file read-only"))
    }
}

impl Writer {
    /// Whether the last failure latched redb's I/O error: then no write can
    /// begin. Any other failure (a bad record, say) fails its batch only.
    pub(super) fn io_failed(&self) -> bool {
        let guard = self.shared.db.blocking_read();
        match guard.as_ref().map(Database::begin_write) {
            None | Some(Ok(_)) => false,
            Some(Err(_)) => true,
        }
    }

    /// Starts refusing writes, and keeps reads working over the overlay.
    pub(super) fn enter_read_only(&mut self, reason: &str) {
        tracing::error!(
            error = reason,
            "the embedded store is read-only after an I/O error; retrying writes with backoff"
        );
        self.shared.set_fault(Some(reason.to_string()));
        let mut slot = self.shared.db.blocking_write();
        close(slot.take());
        *slot = self.read_only_database();
    }

    /// Refuses writes and retries with backoff until the store is writable
    /// (None) or shut down (who asked for it).
    pub(super) fn serve_read_only(&mut self) -> Option<Vec<oneshot::Sender<()>>> {
        let mut retries = RECOVERY_BACKOFF.retries();
        loop {
            let retry_at = Instant::now() + retries.next_delay();
            while Instant::now() < retry_at {
                if let Some(acks) = self.refuse_queued() {
                    return Some(acks);
                }
                std::thread::sleep(POLL);
            }
            match self.recover() {
                Ok(()) => {
                    tracing::info!("the embedded store accepts writes again");
                    self.shared.set_fault(None);
                    return None;
                }
                Err(e) => tracing::debug!(error = %e, "the store is still read-only"),
            }
        }
    }

    /// Answers every queued write with `ReadOnly`; a shutdown request ends
    /// the wait.
    fn refuse_queued(&mut self) -> Option<Vec<oneshot::Sender<()>>> {
        loop {
            match self.requests.try_recv() {
                Ok(Message::Request(request)) => {
                    let reason = self.shared.fault().unwrap_or_default();
                    let _ = request.reply.send(Err(StoreError::ReadOnly(reason)));
                }
                Ok(Message::Shutdown(ack)) => {
                    let mut acks = vec![ack];
                    self.refuse_pending(&mut acks);
                    return Some(acks);
                }
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => return Some(Vec::new()),
            }
        }
    }

    /// Reopens the file for writing and commits a probe; back to the
    /// overlay if either fails. All under the write lock, so that readers
    /// only ever see a database that works.
    fn recover(&mut self) -> StoreResult<()> {
        let mut slot = self.shared.db.blocking_write();
        close(slot.take());
        let attempt = self.files.open().and_then(|db| match self.probe(&db) {
            Ok(found) => Ok((db, found)),
            Err(e) => {
                close(Some(db));
                Err(e)
            }
        });
        match attempt {
            Ok((db, (events, current, compacted))) => {
                *slot = Some(db);
                drop(slot);
                self.publish(events, current, compacted);
                Ok(())
            }
            Err(e) => {
                *slot = self.read_only_database();
                Err(e)
            }
        }
    }

    fn read_only_database(&self) -> Option<Database> {
        self.files
            .open_read_only()
            .inspect_err(|e| {
                tracing::error!(error = %e, "cannot reopen the store for reading; reads fail too");
            })
            .ok()
    }

    /// Rewrites the current revision durably, then reads the counters and
    /// any changes past what watchers have seen.
    fn probe(&self, db: &Database) -> StoreResult<(Vec<Event>, u64, u64)> {
        let mut txn = db.begin_write().map_err(backend("probing writes"))?;
        txn.set_durability(Durability::Immediate)
            .map_err(backend("probing writes"))?;
        let (current, compacted) = {
            let mut meta = txn
                .open_table(META)
                .map_err(backend("opening the metadata table"))?;
            let current = meta_value(&meta, CURRENT)?;
            let compacted = meta_value(&meta, COMPACTED)?;
            meta.insert(CURRENT, current)
                .map_err(backend("probing writes"))?;
            (current, compacted)
        };
        txn.commit().map_err(backend("probing writes"))?;

        let mut events = Vec::new();
        let mut after = self.shared.current();
        while after < current {
            let page = match history_page(db, "", after, REPLAY_PAGE) {
                Ok(page) => page,
                // Compacted meanwhile: watchers behind it relist anyway.
                Err(StoreError::Expired { .. }) => break,
                Err(e) => return Err(e),
            };
            events.extend(page.events);
            if page.complete || page.through <= after {
                break;
            }
            after = page.through;
        }
        Ok((events, current, compacted))
    }
}

/// Closes a database that may have failed: the error is the expected one
/// after an I/O error (the next open recovers the file).
fn close(db: Option<Database>) {
    if let Some(db) = db
        && let Err(e) = db.close()
    {
        tracing::debug!(error = %e, "closing the store after an I/O error");
    }
}
