//! Queries over the version history. The helpers take any readable table,
//! so the writer answers its checks inside its own write transaction with
//! exactly the code readers use.

use std::ops::Bound;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};

use super::schema::{
    COMPACTED, CURRENT, LOG, META, REVS, Record, backend, from_api, meta_value, to_api,
};
use crate::store::{Event, KeyValue, ListOptions, ListResult, StoreError, StoreResult};

/// The trait bound of the `REVS` table, read-only or inside a write.
pub(super) trait Revs: ReadableTable<(&'static str, u64), &'static [u8]> {}
impl<T: ReadableTable<(&'static str, u64), &'static [u8]>> Revs for T {}

/// The newest version of `key` with a mod revision at or before `at`,
/// tombstones included.
pub(super) fn version_at(
    revs: &impl Revs,
    key: &str,
    at: u64,
) -> StoreResult<Option<(u64, Record)>> {
    let mut range = revs
        .range((key, 0u64)..=(key, at))
        .map_err(backend("reading versions"))?;
    match range.next_back() {
        None => Ok(None),
        Some(entry) => {
            let (k, v) = entry.map_err(backend("reading versions"))?;
            Ok(Some((k.value().1, Record::decode(v.value())?)))
        }
    }
}

/// The value of `key` as of revision `at`; None if absent or deleted then.
pub(super) fn live_at(revs: &impl Revs, key: &str, at: u64) -> StoreResult<Option<KeyValue>> {
    Ok(version_at(revs, key, at)?
        .filter(|(_, record)| !record.tombstone)
        .map(|(rev, record)| record.into_kv(key, rev)))
}

fn begin(db: &Database) -> StoreResult<ReadTransaction> {
    db.begin_read()
        .map_err(backend("beginning a read transaction"))
}

/// The current and the compacted revision, as `txn` sees them.
pub(super) fn revisions(txn: &ReadTransaction) -> StoreResult<(u64, u64)> {
    let meta = txn
        .open_table(META)
        .map_err(backend("opening the metadata table"))?;
    Ok((meta_value(&meta, CURRENT)?, meta_value(&meta, COMPACTED)?))
}

pub(super) fn get(db: &Database, key: &str) -> StoreResult<Option<KeyValue>> {
    let txn = begin(db)?;
    let revs = txn
        .open_table(REVS)
        .map_err(backend("opening the versions table"))?;
    live_at(&revs, key, u64::MAX)
}

/// One page of a list, consistent at one revision thanks to the read
/// transaction's snapshot plus the per-key version filter.
pub(super) fn list(db: &Database, prefix: &str, options: &ListOptions) -> StoreResult<ListResult> {
    let txn = begin(db)?;
    let (current, compacted) = revisions(&txn)?;
    let at = match options.revision {
        None => current,
        Some(requested) if requested < to_api(compacted) => {
            return Err(StoreError::Expired {
                requested,
                compacted: to_api(compacted),
            });
        }
        Some(requested) if requested > to_api(current) => {
            return Err(StoreError::FutureRevision {
                requested,
                current: to_api(current),
            });
        }
        Some(requested) => from_api(requested),
    };
    let revs = txn
        .open_table(REVS)
        .map_err(backend("opening the versions table"))?;
    let (items, next_key) = scan(
        &revs,
        prefix,
        options.start_after.as_deref(),
        at,
        options.limit,
    )?;
    Ok(ListResult {
        items,
        revision: to_api(at),
        next_key,
    })
}

/// Walks the versions of the keys under `prefix` in key order, keeping for
/// each key its newest version at or before `at`. With a limit it reads one
/// live key past the page, so that `next_key` is only set when more remain.
fn scan(
    revs: &impl Revs,
    prefix: &str,
    start_after: Option<&str>,
    at: u64,
    limit: usize,
) -> StoreResult<(Vec<KeyValue>, Option<String>)> {
    // (key, u64::MAX) sorts after every version of `key`.
    let lower = match start_after {
        Some(after) if after >= prefix => Bound::Excluded((after, u64::MAX)),
        _ => Bound::Included((prefix, 0u64)),
    };
    let range = revs
        .range::<(&str, u64)>((lower, Bound::Unbounded))
        .map_err(backend("scanning versions"))?;
    let mut items = Vec::new();
    let mut pending: Option<KeyValue> = None;
    let mut pending_key = String::new();
    let mut full = false;
    for entry in range {
        let (k, v) = entry.map_err(backend("scanning versions"))?;
        let (key, rev) = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        if key != pending_key {
            if let Some(kv) = pending.take() {
                if full {
                    return Ok(with_next_key(items));
                }
                items.push(kv);
                full = limit > 0 && items.len() >= limit;
            }
            pending_key.clear();
            pending_key.push_str(key);
        }
        if rev <= at {
            // Versions come in revision order: the last one seen wins.
            let record = Record::decode(v.value())?;
            pending = (!record.tombstone).then(|| record.into_kv(key, rev));
        }
    }
    if let Some(kv) = pending {
        if full {
            return Ok(with_next_key(items));
        }
        items.push(kv);
    }
    Ok((items, None))
}

fn with_next_key(items: Vec<KeyValue>) -> (Vec<KeyValue>, Option<String>) {
    let next = items.last().map(|kv| kv.key.clone());
    (items, next)
}

/// The event a log entry stands for, with the value it replaced.
pub(super) fn event_at(revs: &impl Revs, key: &str, rev: u64) -> StoreResult<Event> {
    let record = revs
        .get((key, rev))
        .map_err(backend("reading a version"))?
        .map(|guard| Record::decode(guard.value()))
        .transpose()?
        .ok_or_else(|| {
            StoreError::Backend(format!(
                "history names {key:?} at revision {rev}, which is missing"
            ))
        })?;
    let prev = match rev.checked_sub(1) {
        Some(before) => live_at(revs, key, before)?,
        None => None,
    };
    if record.tombstone {
        let prev = prev.ok_or_else(|| {
            StoreError::Backend(format!(
                "delete of {key:?} at revision {rev} has no previous version"
            ))
        })?;
        return Ok(Event::Delete {
            prev,
            revision: to_api(rev),
        });
    }
    Ok(Event::Put {
        kv: record.into_kv(key, rev),
        prev,
    })
}

/// Part of the history after some revision, as a watch replays it.
#[derive(Debug)]
pub(super) struct HistoryPage {
    /// Changes under the prefix, in revision order.
    pub events: Vec<Event>,
    /// Every change up to here (under any prefix) has been looked at.
    pub through: u64,
    /// `through` is the store's revision at the time of the read: the
    /// watcher can switch to live events.
    pub complete: bool,
}

/// Reads at most `max` log entries after `after`. `Expired` when that part
/// of the history has been compacted, even if it was available when the
/// watch started: the watcher cannot be given a complete history any more.
pub(super) fn history_page(
    db: &Database,
    prefix: &str,
    after: u64,
    max: usize,
) -> StoreResult<HistoryPage> {
    let txn = begin(db)?;
    let (current, compacted) = revisions(&txn)?;
    if after < compacted {
        return Err(StoreError::Expired {
            requested: to_api(after),
            compacted: to_api(compacted),
        });
    }
    let mut page = HistoryPage {
        events: Vec::new(),
        through: after.max(current),
        complete: true,
    };
    if after >= current {
        return Ok(page);
    }
    let log = txn
        .open_table(LOG)
        .map_err(backend("opening the history table"))?;
    let revs = txn
        .open_table(REVS)
        .map_err(backend("opening the versions table"))?;
    let entries = log
        .range((after + 1)..=current)
        .map_err(backend("reading history"))?;
    for (seen, entry) in entries.enumerate() {
        if seen == max {
            page.complete = false;
            break;
        }
        let (rev, key) = entry.map_err(backend("reading history"))?;
        let (rev, key) = (rev.value(), key.value());
        page.through = rev;
        if key.starts_with(prefix) {
            page.events.push(event_at(&revs, key, rev)?);
        }
    }
    if page.complete {
        page.through = current;
    }
    Ok(page)
}
