//! Compaction inside the writer's transaction: drops the history that no
//! read at or after the compacted revision can need.

use std::collections::BTreeSet;

use redb::{ReadableTable, Table};

use super::schema::{Record, backend};
use crate::store::StoreResult;

/// Removes the log entries in `(from, to]` and, for every key they name,
/// each version at or before `to` except the newest one, which a list at
/// `to` still needs (unless it is a tombstone, which no read returns).
/// Keys without changes in `(from, to]` were already reduced to that one
/// version by the previous compaction.
pub(super) fn compact(
    revs: &mut Table<(&'static str, u64), &'static [u8]>,
    log: &mut Table<u64, &'static str>,
    from: u64,
    to: u64,
) -> StoreResult<()> {
    if to <= from {
        return Ok(());
    }
    let mut keys = BTreeSet::new();
    for entry in log
        .range((from + 1)..=to)
        .map_err(backend("reading history to compact"))?
    {
        let (_, key) = entry.map_err(backend("reading history to compact"))?;
        keys.insert(key.value().to_string());
    }
    let mut versions = Vec::new();
    for key in &keys {
        versions.clear();
        for entry in revs
            .range((key.as_str(), 0u64)..=(key.as_str(), to))
            .map_err(backend("reading versions to compact"))?
        {
            let (k, v) = entry.map_err(backend("reading versions to compact"))?;
            versions.push((k.value().1, Record::is_tombstone(v.value())));
        }
        let keep = match versions.last() {
            Some(&(rev, false)) => Some(rev),
            _ => None,
        };
        for &(rev, _) in &versions {
            if Some(rev) != keep {
                revs.remove((key.as_str(), rev))
                    .map_err(backend("removing a compacted version"))?;
            }
        }
    }
    log.retain_in((from + 1)..=to, |_, _| false)
        .map_err(backend("removing compacted history"))?;
    Ok(())
}
