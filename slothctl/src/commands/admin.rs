//! `slothctl admin ...`: operations on the apiserver itself.
//!
//! `admin backup FILE` saves a consistent copy of the embedded store while
//! the apiserver serves (admin only); restore is in docs/operations.md.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use futures_util::StreamExt;

use super::Context;
use crate::error::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Save a consistent copy of the apiserver's embedded store to FILE
    /// while it serves (role admin). Restore: put FILE as sloth.redb in a
    /// new data dir (with the encryption key file) and start an apiserver
    /// on it.
    Backup {
        /// Where to write the copy; written to FILE.partial first and
        /// renamed when complete, so FILE is never a partial store.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

pub(crate) async fn run(ctx: &Context, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Backup { file } => backup(ctx, &file).await,
    }
}

async fn backup(ctx: &Context, file: &Path) -> anyhow::Result<()> {
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let written = write_backup(ctx, &partial).await;
    let (revision, bytes) = match written {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    std::fs::rename(&partial, file).map_err(|e| {
        CliError::failed(format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            file.display()
        ))
    })?;
    println!(
        "backup of revision {revision} written to {} ({bytes} bytes)",
        file.display()
    );
    Ok(())
}

/// Streams the backup into `path`, synced to disk; its revision and size.
async fn write_backup(ctx: &Context, path: &Path) -> Result<(i64, u64), CliError> {
    let cannot_write = |e: std::io::Error| {
        CliError::failed(format!(
            "cannot write the backup to {}: {e}",
            path.display()
        ))
    };
    let (revision, mut chunks) = ctx.client.backup().await.map_err(|e| ctx.error(e))?;
    let mut out = std::fs::File::create(path).map_err(cannot_write)?;
    let mut bytes = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ctx.error(e))?;
        out.write_all(&chunk).map_err(cannot_write)?;
        bytes += chunk.len() as u64;
    }
    out.sync_all().map_err(cannot_write)?;
    Ok((revision, bytes))
}
