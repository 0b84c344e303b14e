//! Operations on the store as a whole: compaction, backups and migration.

pub mod backup;
pub mod compaction;
pub mod migrate;
