//! The storage abstraction with etcd semantics, and its backends.
//!
//! Keys are strings, values opaque bytes. Every successful write gets the
//! next revision of one global, monotonically increasing counter; an
//! object's `resourceVersion` is its mod revision.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod embedded;
pub mod etcd;

/// A key with its value and the revisions that created and last changed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    pub create_revision: i64,
    pub mod_revision: i64,
}

/// One change, as a watch reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A create or update; `prev` is the value it replaced (None on create).
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// A delete at `revision`; `prev` is the deleted value.
    Delete { prev: KeyValue, revision: i64 },
}

impl Event {
    pub fn revision(&self) -> i64 {
        match self {
            Self::Put { kv, .. } => kv.mod_revision,
            Self::Delete { revision, .. } => *revision,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Self::Put { kv, .. } => &kv.key,
            Self::Delete { prev, .. } => &prev.key,
        }
    }
}

/// What a watch stream yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchItem {
    /// Changes in revision order (one revision may carry several).
    Events(Vec<Event>),
    /// Every change up to this revision has been delivered (progress notify).
    Progress(i64),
}

/// A page of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResult {
    pub items: Vec<KeyValue>,
    /// The revision the whole list (all pages) is consistent with.
    pub revision: i64,
    /// Set when more keys remain: pass it as `ListOptions::start_after`
    /// together with `revision`.
    pub next_key: Option<String>,
}

/// Options of `Store::list`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// At most this many items; 0 for all.
    pub limit: usize,
    /// Return only keys strictly after this one (paging).
    pub start_after: Option<String>,
    /// Read at this revision (a later page of the same list); None: the current one.
    pub revision: Option<i64>,
}

/// Store failures. `Conflict`, `AlreadyExists` and `NotFound` are answers,
/// not faults: nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key {0:?} already exists")]
    AlreadyExists(String),
    #[error("key {0:?} not found")]
    NotFound(String),
    /// Compare-and-swap failed: the key's mod revision is not the expected one.
    #[error("conflict on {key:?}: expected revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: i64,
        actual: i64,
    },
    /// The revision asked for has been compacted away; relist.
    #[error("revision {requested} has been compacted (oldest available: {compacted})")]
    Expired { requested: i64, compacted: i64 },
    /// The revision asked for is in the future.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision { requested: i64, current: i64 },
    #[error("store is closed")]
    Closed,
    /// The embedded store hit an I/O error (a full disk, say) and refuses
    /// writes until a probe write succeeds again (etcd's NOSPACE alarm).
    #[error(
        "embedded store is read-only after an I/O error: {0}; writes resume once the disk \
         accepts them"
    )]
    ReadOnly(String),
    #[error("store backend: {0}")]
    Backend(String),
    /// A Secret could not be encrypted or decrypted (no key configured, a
    /// key missing from the key file). Never carries a value.
    #[error("{0}")]
    Encryption(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A store with etcd semantics.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>>;

    /// Keys starting with `prefix`, in key order, consistent at one revision.
    async fn list(&self, prefix: &str, options: ListOptions) -> StoreResult<ListResult>;

    /// Creates `key`; `AlreadyExists` if it exists. Returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> StoreResult<i64>;

    /// Compare-and-swap: replaces `key` only if its mod revision is
    /// `expected_mod_revision` (`Conflict` otherwise, `NotFound` if absent).
    /// Returns the new revision.
    async fn update(&self, key: &str, value: Bytes, expected_mod_revision: i64)
    -> StoreResult<i64>;

    /// Deletes `key`, only if its mod revision is the expected one when given.
    /// Returns the deleted value and the revision of the delete.
    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> StoreResult<(KeyValue, i64)>;

    /// Every change to keys under `prefix` with a revision greater than
    /// `after_revision`, in order: first replayed from history, then live.
    /// `Expired` if `after_revision` is older than the compacted revision.
    /// Ends with an `Expired` error if the watcher fell too far behind.
    async fn watch(
        &self,
        prefix: &str,
        after_revision: i64,
    ) -> StoreResult<BoxStream<'static, StoreResult<WatchItem>>>;

    /// Discards history before `revision` (the latest value of each key
    /// stays). Lists at, and watches after, revisions below it then fail
    /// with `Expired`; `revision` itself stays readable, as in etcd.
    async fn compact(&self, revision: i64) -> StoreResult<()>;

    /// The revision of the latest write.
    async fn current_revision(&self) -> StoreResult<i64>;

    /// The latest compacted revision (0 when never compacted).
    async fn compacted_revision(&self) -> StoreResult<i64>;

    /// Why the store refuses writes while still serving reads (the embedded
    /// store after an I/O error); `/readyz` reports it. None when healthy.
    fn fault(&self) -> Option<String> {
        None
    }
}
