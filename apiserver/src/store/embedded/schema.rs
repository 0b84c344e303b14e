//! The on-disk layout of the embedded store: three redb tables and the
//! encoding of one stored version.

use std::fmt::Display;

use bytes::Bytes;
use redb::{ReadableTable, TableDefinition};

use crate::store::{KeyValue, StoreError, StoreResult};

/// Every version of every key by (key, mod revision). Keeping superseded
/// versions until compaction is what lets a list read at an older revision
/// and a watch replay report the value an event replaced.
pub(super) const REVS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("revs");

/// The key each revision changed. A watch resuming from an old revision
/// walks this in revision order instead of scanning every key's history.
pub(super) const LOG: TableDefinition<u64, &str> = TableDefinition::new("log");

/// Counters that must survive a restart: see `CURRENT` and `COMPACTED`.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The revision of the latest committed write; revisions continue from it
/// after a reopen, so resourceVersions never go backwards.
pub(super) const CURRENT: &str = "current";

/// History at and before this revision is gone; reads older than it are
/// `Expired`.
pub(super) const COMPACTED: &str = "compacted";

const TOMBSTONE: u8 = 1;
/// Flags byte plus the create revision.
const HEADER: usize = 9;

/// One stored version. A delete is stored as a tombstone version, so that
/// reads at revisions before the delete still see the old value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Record {
    pub create_rev: u64,
    pub tombstone: bool,
    pub value: Bytes,
}

impl Record {
    pub(super) fn live(create_rev: u64, value: Bytes) -> Self {
        Self {
            create_rev,
            tombstone: false,
            value,
        }
    }

    /// Keeps the create revision of the deleted value, for debugging only:
    /// no read returns a tombstone.
    pub(super) fn tombstone(create_rev: u64) -> Self {
        Self {
            create_rev,
            tombstone: true,
            value: Bytes::new(),
        }
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.value.len());
        out.push(if self.tombstone { TOMBSTONE } else { 0 });
        out.extend_from_slice(&self.create_rev.to_le_bytes());
        out.extend_from_slice(&self.value);
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> StoreResult<Self> {
        let (header, value) = bytes.split_at_checked(HEADER).ok_or_else(|| {
            StoreError::Backend(format!("stored version truncated to {} bytes", bytes.len()))
        })?;
        let mut create = [0u8; 8];
        create.copy_from_slice(&header[1..]);
        Ok(Self {
            create_rev: u64::from_le_bytes(create),
            tombstone: header[0] & TOMBSTONE != 0,
            value: Bytes::copy_from_slice(value),
        })
    }

    /// Compaction only needs the flag; decoding would copy the value.
    pub(super) fn is_tombstone(bytes: &[u8]) -> bool {
        bytes.first().is_some_and(|flags| flags & TOMBSTONE != 0)
    }

    pub(super) fn into_kv(self, key: &str, mod_rev: u64) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: self.value,
            create_revision: to_api(self.create_rev),
            mod_revision: to_api(mod_rev),
        }
    }
}

/// The API speaks i64 (as etcd does); on disk revisions are u64 so that
/// they sort correctly as keys. Real revisions never get near the limit.
pub(super) fn to_api(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

/// Negative revisions from callers mean "before anything".
pub(super) fn from_api(revision: i64) -> u64 {
    u64::try_from(revision).unwrap_or(0)
}

/// Wraps a redb failure with what the store was doing, since redb's own
/// messages do not say which operation failed.
pub(super) fn backend<E: Display>(context: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Backend(format!("{context}: {e}"))
}

/// A counter from `META`; absent means never written (a new file).
pub(super) fn meta_value(
    meta: &impl ReadableTable<&'static str, u64>,
    name: &str,
) -> StoreResult<u64> {
    Ok(meta
        .get(name)
        .map_err(backend("reading store metadata"))?
        .map(|guard| guard.value())
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let record = Record {
            create_rev: 42,
            tombstone: true,
            value: Bytes::from_static(b"hello"),
        };
        let bytes = record.encode();
        assert!(Record::is_tombstone(&bytes));
        assert_eq!(Record::decode(&bytes).expect("decodes"), record);
        assert!(Record::decode(&bytes[..3]).is_err());
    }
}
