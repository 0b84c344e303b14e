//! Online backup: a consistent copy of the store while it serves. One redb
//! read transaction is a snapshot (MVCC), so copying its three tables into
//! a new file gives a store exactly as of one revision, without stopping
//! or slowing the writer.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::EmbeddedStore;
use super::schema::{CURRENT, LOG, META, REVS, backend, meta_value, to_api};
use crate::store::StoreResult;

impl EmbeddedStore {
    /// Writes a consistent copy of the store to `dest` (a new redb file, to
    /// be used as a data dir's `sloth.redb`); returns its revision.
    pub async fn backup_to(&self, dest: PathBuf) -> StoreResult<i64> {
        self.shared.read(move |db| copy_snapshot(db, &dest)).await
    }
}

fn copy_snapshot(db: &Database, dest: &Path) -> StoreResult<i64> {
    let snapshot = db
        .begin_read()
        .map_err(backend("beginning the backup's read transaction"))?;
    let out = Database::create(dest).map_err(backend("creating the backup file"))?;
    let txn = out
        .begin_write()
        .map_err(backend("beginning the backup's write transaction"))?;
    copy_table(&snapshot, &txn, REVS)?;
    copy_table(&snapshot, &txn, LOG)?;
    copy_table(&snapshot, &txn, META)?;
    txn.commit().map_err(backend("committing the backup"))?;
    let meta = snapshot
        .open_table(META)
        .map_err(backend("opening the metadata table"))?;
    Ok(to_api(meta_value(&meta, CURRENT)?))
}

fn copy_table<K, V>(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
) -> StoreResult<()>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    let source = from
        .open_table(table)
        .map_err(backend("opening a table to back up"))?;
    let mut target = to
        .open_table(table)
        .map_err(backend("creating a table in the backup"))?;
    for entry in source
        .iter()
        .map_err(backend("reading a table to back up"))?
    {
        let (key, value) = entry.map_err(backend("reading a table to back up"))?;
        target
            .insert(key.value(), value.value())
            .map_err(backend("writing the backup"))?;
    }
    Ok(())
}
