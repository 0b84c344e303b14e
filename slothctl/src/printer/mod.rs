//! How objects are shown: tables (per-kind columns, kubectl ages) and the
//! machine-readable forms.

pub mod age;
pub mod columns;
pub mod cron_stack;
pub mod output;
pub mod table;

use std::io::Write;

/// `-o`: how `get` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// Aligned columns, with the kind's extra ones.
    Wide,
    Yaml,
    Json,
    /// `kind/name`, one a line.
    Name,
}

/// Writes `text` to stdout and flushes, so that readers through a pipe see
/// each line as soon as it is printed.
pub fn emit(text: &str) -> std::io::Result<()> {
    emit_bytes(text.as_bytes())
}

/// Writes raw bytes (a command's output, unmodified) to stdout and flushes.
pub fn emit_bytes(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}
