//! The single writer: the only code that writes the database. Serialising
//! writes in one thread makes revision assignment trivial, and draining
//! every pending request into one transaction (group commit) lets
//! concurrent writers share one fsync.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use redb::{Durability, Table};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::compact::compact;
use super::fault::Files;
use super::read::live_at;
use super::schema::{COMPACTED, CURRENT, LOG, META, REVS, Record, backend, from_api, to_api};
use super::shared::Shared;
use crate::store::{Event, KeyValue, StoreError, StoreResult};

/// A write, as the store handle hands it over.
#[derive(Debug)]
pub(super) enum Op {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: i64,
    },
    Delete {
        key: String,
        expected: Option<i64>,
    },
    Compact {
        revision: i64,
    },
}

/// What a successful write returns.
#[derive(Debug)]
pub(super) enum Outcome {
    Revision(i64),
    Deleted(KeyValue, i64),
    Compacted,
}

#[derive(Debug)]
pub(super) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<StoreResult<Outcome>>,
}

#[derive(Debug)]
pub(super) enum Message {
    Request(Request),
    /// Finish what was queued before, refuse the rest, then release the
    /// database and acknowledge.
    Shutdown(oneshot::Sender<()>),
}

/// Committed changes of one batch, in revision order.
pub(super) type Batch = Arc<Vec<Event>>;

type RevsTable<'t> = Table<'t, (&'static str, u64), &'static [u8]>;
type LogTable<'t> = Table<'t, u64, &'static str>;

pub(super) struct Writer {
    pub shared: Arc<Shared>,
    /// Reopens the database after an I/O error.
    pub files: Files,
    pub requests: mpsc::Receiver<Message>,
    pub events: broadcast::Sender<Batch>,
    pub max_batch: usize,
}

impl Writer {
    /// A dedicated thread rather than `spawn_blocking`: redb transactions
    /// block, and this loop lives as long as the store.
    pub(super) fn spawn(self) -> StoreResult<()> {
        std::thread::Builder::new()
            .name("sloth-store-writer".into())
            .spawn(move || self.run())
            .map(drop)
            .map_err(backend("starting the store writer thread"))
    }

    fn run(mut self) {
        let acks = self.serve();
        // Release the database and end the event channel (which ends the
        // watches) before telling `close` we are done.
        drop(self);
        for ack in acks {
            let _ = ack.send(());
        }
    }

    /// Serves batches until shut down or every handle is gone; returns who
    /// asked for the shutdown.
    fn serve(&mut self) -> Vec<oneshot::Sender<()>> {
        let mut batch = Vec::with_capacity(self.max_batch);
        loop {
            if self.shared.fault().is_some() {
                match self.serve_read_only() {
                    Some(acks) => return acks,
                    None => continue,
                }
            }
            let mut acks = Vec::new();
            match self.requests.blocking_recv() {
                None => return acks,
                Some(Message::Request(request)) => batch.push(request),
                Some(Message::Shutdown(ack)) => acks.push(ack),
            }
            while acks.is_empty() && batch.len() < self.max_batch {
                match self.requests.try_recv() {
                    Ok(Message::Request(request)) => batch.push(request),
                    Ok(Message::Shutdown(ack)) => acks.push(ack),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.commit(&mut batch);
            }
            if !acks.is_empty() {
                self.refuse_pending(&mut acks);
                return acks;
            }
        }
    }

    pub(super) fn refuse_pending(&mut self, acks: &mut Vec<oneshot::Sender<()>>) {
        self.requests.close();
        while let Ok(message) = self.requests.try_recv() {
            match message {
                Message::Request(request) => {
                    let _ = request.reply.send(Err(StoreError::Closed));
                }
                Message::Shutdown(ack) => acks.push(ack),
            }
        }
    }

    /// Applies and commits one batch, then publishes and answers: nobody
    /// hears of a write before it is durable.
    fn commit(&mut self, batch: &mut Vec<Request>) {
        match self.apply_batch(batch) {
            Ok(applied) => {
                if applied.changed {
                    self.shared
                        .current
                        .store(applied.current, Ordering::Release);
                    self.shared
                        .compacted
                        .store(applied.compacted, Ordering::Release);
                    self.shared.commits.fetch_add(1, Ordering::Relaxed);
                }
                if !applied.events.is_empty() {
                    // No receivers is fine: nobody is watching.
                    let _ = self.events.send(Arc::new(applied.events));
                }
                for (request, answer) in batch.drain(..).zip(applied.answers) {
                    let _ = request.reply.send(answer);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = batch.len(), "store batch failed");
                let message = match e {
                    StoreError::Backend(message) => message,
                    other => other.to_string(),
                };
                // An I/O error leaves redb refusing everything: switch to
                // serving reads only until the disk takes writes again.
                let read_only = self.io_failed();
                if read_only {
                    self.enter_read_only(&message);
                }
                for request in batch.drain(..) {
                    let error = if read_only {
                        StoreError::ReadOnly(message.clone())
                    } else {
                        StoreError::Backend(message.clone())
                    };
                    let _ = request.reply.send(Err(error));
                }
            }
        }
    }

    /// Publishes events and the counters of changes committed outside the
    /// normal path: a commit that reported an I/O error may still have
    /// reached the disk, and the reopened file then has it.
    pub(super) fn publish(&self, events: Vec<Event>, current: u64, compacted: u64) {
        self.shared.current.store(current, Ordering::Release);
        self.shared.compacted.store(compacted, Ordering::Release);
        if !events.is_empty() {
            let _ = self.events.send(Arc::new(events));
        }
    }

    /// A backend failure aborts the whole batch, because the transaction may
    /// hold part of an operation; a refused operation (conflict, missing
    /// key) only fails itself.
    fn apply_batch(&self, batch: &[Request]) -> StoreResult<Applied> {
        // Per batch, not for the writer's life: the writer swaps the
        // database after an I/O error. `close` takes the write side only
        // once the writer has stopped.
        let guard = self.shared.db.blocking_read();
        let db = guard.as_ref().ok_or(StoreError::Closed)?;
        let mut txn = db
            .begin_write()
            .map_err(backend("beginning a write transaction"))?;
        txn.set_durability(Durability::Immediate)
            .map_err(backend("requesting durable commits"))?;
        let start = (self.shared.current(), self.shared.compacted());
        let mut applied = Applied {
            answers: Vec::with_capacity(batch.len()),
            events: Vec::new(),
            current: start.0,
            compacted: start.1,
            changed: false,
        };
        {
            let mut revs = txn
                .open_table(REVS)
                .map_err(backend("opening the versions table"))?;
            let mut log = txn
                .open_table(LOG)
                .map_err(backend("opening the history table"))?;
            for request in batch {
                let answer = applied.apply(&mut revs, &mut log, &request.op)?;
                applied.answers.push(answer);
            }
            applied.changed = (applied.current, applied.compacted) != start;
            if applied.changed {
                let mut meta = txn
                    .open_table(META)
                    .map_err(backend("opening the metadata table"))?;
                meta.insert(CURRENT, applied.current)
                    .map_err(backend("recording the revision"))?;
                meta.insert(COMPACTED, applied.compacted)
                    .map_err(backend("recording the compacted revision"))?;
            }
        }
        if applied.changed {
            txn.commit().map_err(backend("committing"))?;
        } else {
            // Every request was refused: spare the fsync.
            txn.abort()
                .map_err(backend("aborting an empty transaction"))?;
        }
        Ok(applied)
    }
}

/// The state of a batch while it is being applied.
struct Applied {
    answers: Vec<StoreResult<Outcome>>,
    events: Vec<Event>,
    current: u64,
    compacted: u64,
    changed: bool,
}

impl Applied {
    /// The outer error is a backend fault, the inner one the operation's
    /// answer.
    fn apply(
        &mut self,
        revs: &mut RevsTable<'_>,
        log: &mut LogTable<'_>,
        op: &Op,
    ) -> StoreResult<StoreResult<Outcome>> {
        match op {
            Op::Create { key, value } => {
                if live_at(revs, key, u64::MAX)?.is_some() {
                    return Ok(Err(StoreError::AlreadyExists(key.clone())));
                }
                let rev = self.current + 1;
                let kv = self.put(revs, log, key, rev, Record::live(rev, value.clone()))?;
                self.events.push(Event::Put { kv, prev: None });
                Ok(Ok(Outcome::Revision(to_api(rev))))
            }
            Op::Update {
                key,
                value,
                expected,
            } => {
                let Some(prev) = live_at(revs, key, u64::MAX)? else {
                    return Ok(Err(StoreError::NotFound(key.clone())));
                };
                if prev.mod_revision != *expected {
                    return Ok(Err(conflict(key, *expected, &prev)));
                }
                let rev = self.current + 1;
                let record = Record::live(from_api(prev.create_revision), value.clone());
                let kv = self.put(revs, log, key, rev, record)?;
                self.events.push(Event::Put {
                    kv,
                    prev: Some(prev),
                });
                Ok(Ok(Outcome::Revision(to_api(rev))))
            }
            Op::Delete { key, expected } => {
                let Some(prev) = live_at(revs, key, u64::MAX)? else {
                    return Ok(Err(StoreError::NotFound(key.clone())));
                };
                if let Some(expected) = expected.filter(|&e| e != prev.mod_revision) {
                    return Ok(Err(conflict(key, expected, &prev)));
                }
                let rev = self.current + 1;
                let record = Record::tombstone(from_api(prev.create_revision));
                self.put(revs, log, key, rev, record)?;
                let revision = to_api(rev);
                self.events.push(Event::Delete {
                    prev: prev.clone(),
                    revision,
                });
                Ok(Ok(Outcome::Deleted(prev, revision)))
            }
            Op::Compact { revision } => {
                if *revision > to_api(self.current) {
                    return Ok(Err(StoreError::FutureRevision {
                        requested: *revision,
                        current: to_api(self.current),
                    }));
                }
                let target = from_api(*revision);
                if target > self.compacted {
                    compact(revs, log, self.compacted, target)?;
                    self.compacted = target;
                }
                Ok(Ok(Outcome::Compacted))
            }
        }
    }

    /// Stores a new version and its log entry, and takes its revision.
    fn put(
        &mut self,
        revs: &mut RevsTable<'_>,
        log: &mut LogTable<'_>,
        key: &str,
        rev: u64,
        record: Record,
    ) -> StoreResult<KeyValue> {
        revs.insert((key, rev), record.encode().as_slice())
            .map_err(backend("writing a version"))?;
        log.insert(rev, key).map_err(backend("writing history"))?;
        self.current = rev;
        Ok(record.into_kv(key, rev))
    }
}

fn conflict(key: &str, expected: i64, current: &KeyValue) -> StoreError {
    StoreError::Conflict {
        key: key.to_string(),
        expected,
        actual: current.mod_revision,
    }
}
