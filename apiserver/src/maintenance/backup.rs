//! `Backup`: a consistent copy of the embedded store streamed to an admin
//! while the server goes on serving (`slothctl admin backup FILE`).

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sloth_proto::v1 as pb;
use tokio::io::AsyncReadExt;
use tonic::Status;

use crate::store::embedded::EmbeddedStore;

/// Bytes per streamed chunk: well under the gRPC message limit.
const CHUNK_BYTES: usize = 64 * 1024;

pub type BackupStream = BoxStream<'static, Result<pb::BackupChunk, Status>>;

/// Takes backups of one embedded store.
#[derive(Debug)]
pub struct Backups {
    store: Arc<EmbeddedStore>,
    /// Where the copy is written before it is streamed: the data dir, so
    /// that it is on a disk sized for the store.
    scratch: PathBuf,
}

impl Backups {
    pub fn new(store: Arc<EmbeddedStore>, scratch: PathBuf) -> Self {
        Self { store, scratch }
    }

    /// Copies the store as of now into a scratch file, then streams it; the
    /// file is removed when the stream ends or is dropped.
    pub async fn stream(&self) -> Result<BackupStream, Status> {
        let dir = tempfile::Builder::new()
            .prefix(".backup-")
            .tempdir_in(&self.scratch)
            .map_err(|e| {
                Status::internal(format!(
                    "cannot make a scratch dir for the backup in {}: {e}",
                    self.scratch.display()
                ))
            })?;
        let path = dir.path().join("sloth.redb");
        let revision = self
            .store
            .backup_to(path.clone())
            .await
            .map_err(|e| Status::internal(format!("cannot copy the store: {e}")))?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Status::internal(format!("cannot read the backup copy: {e}")))?;
        tracing::info!(revision, "backup taken; streaming it");
        let chunks = futures_util::stream::try_unfold(
            (file, dir, Some(revision)),
            |(mut file, dir, revision)| async move {
                let mut data = vec![0; CHUNK_BYTES];
                let n = file
                    .read(&mut data)
                    .await
                    .map_err(|e| Status::internal(format!("cannot read the backup copy: {e}")))?;
                if n == 0 {
                    // `dir` (and the copy in it) is removed here.
                    return Ok(None);
                }
                data.truncate(n);
                let chunk = pb::BackupChunk {
                    data,
                    revision: revision.unwrap_or_default(),
                };
                Ok(Some((chunk, (file, dir, None))))
            },
        );
        Ok(chunks.boxed())
    }
}
