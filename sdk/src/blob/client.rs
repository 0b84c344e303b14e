//! The client's blob calls: ask whether a blob is stored, upload a file in
//! chunks, download in chunks. Memory stays constant: a few chunks are in
//! flight whatever the blob's size.

use std::path::Path;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sloth_proto::v1 as pb;
use tokio::io::AsyncReadExt;
use tokio_stream::wrappers::ReceiverStream;

use super::Digest;
use crate::client::Client;
use crate::error::Error;

/// Bytes per streamed chunk (well under the servers' message limit).
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks read ahead of the network.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Told the bytes moved so far (progress displays).
pub type BlobProgress = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

/// Who a blob call is for: an agent names the TaskRun it acts for.
#[derive(Clone, Debug, Default)]
pub struct ForTaskRun {
    /// The TaskRun's namespace.
    pub namespace: String,
    /// The TaskRun's name.
    pub name: String,
}

fn request(digest: &Digest, run: Option<&ForTaskRun>) -> pb::BlobRequest {
    pb::BlobRequest {
        digest: digest.to_string(),
        namespace: run.map(|r| r.namespace.clone()).unwrap_or_default(),
        taskrun: run.map(|r| r.name.clone()).unwrap_or_default(),
    }
}

impl Client {
    /// The size of the stored blob, or None when it is not stored.
    pub async fn stat_blob(
        &self,
        digest: &Digest,
        run: Option<&ForTaskRun>,
    ) -> Result<Option<u64>, Error> {
        let request = request(digest, run);
        let info = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.stat_blob(request).await }
            })
            .await?;
        Ok(info
            .present
            .then_some(u64::try_from(info.size).unwrap_or(0)))
    }

    /// Uploads `file` (whose digest and size the caller computed) unless
    /// the store has it already. True when it was uploaded.
    pub async fn put_blob(
        &self,
        file: &Path,
        digest: &Digest,
        size: u64,
        run: Option<&ForTaskRun>,
        progress: Option<&BlobProgress>,
    ) -> Result<bool, Error> {
        if self.stat_blob(digest, run).await?.is_some() {
            return Ok(false);
        }
        let mut last = String::new();
        for (url, mut stub) in self.stubs() {
            let (chunks, reader) = stream_file(file, request(digest, run), size, progress)?;
            let result = stub.put_blob(chunks).await;
            // A read error ends the stream early; the server then sees a
            // short blob and refuses it, but the read error says more.
            if let Ok(Err(e)) | Err(e) = reader.await.map_err(std::io::Error::other) {
                return Err(Error::Decode {
                    what: file.display().to_string(),
                    message: e.to_string(),
                });
            }
            match result {
                Ok(_) => return Ok(true),
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    last = format!("{url}: {}", status.message());
                }
                Err(status) => return Err(Error::from_status(status)),
            }
        }
        Err(Error::Unavailable {
            endpoints: self.endpoints(),
            message: last,
        })
    }

    /// The stored blob's bytes, in chunks.
    pub async fn get_blob(
        &self,
        digest: &Digest,
        run: Option<&ForTaskRun>,
    ) -> Result<BoxStream<'static, Result<Vec<u8>, Error>>, Error> {
        let request = request(digest, run);
        let stream = self
            .call(|mut c| {
                let request = request.clone();
                async move { c.get_blob(request).await }
            })
            .await?;
        Ok(stream
            .map(|item| item.map(|chunk| chunk.data).map_err(Error::from_status))
            .boxed())
    }

    /// Downloads the blob into `dest` (created or truncated), checking its
    /// digest: a corrupt or truncated blob is an error and `dest` is removed.
    pub async fn download_blob(
        &self,
        digest: &Digest,
        run: Option<&ForTaskRun>,
        dest: &Path,
        progress: Option<&BlobProgress>,
    ) -> Result<u64, DownloadError> {
        let result = self.download_unchecked(digest, run, dest, progress).await;
        let outcome = match result {
            Ok(got) if &got == digest => return Ok(got_size(dest).await),
            Ok(got) => Err(DownloadError::Corrupt {
                digest: digest.to_string(),
                got: got.to_string(),
            }),
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_file(dest).await;
        outcome
    }

    async fn download_unchecked(
        &self,
        digest: &Digest,
        run: Option<&ForTaskRun>,
        dest: &Path,
        progress: Option<&BlobProgress>,
    ) -> Result<Digest, DownloadError> {
        use tokio::io::AsyncWriteExt;
        let mut chunks = self.get_blob(digest, run).await?;
        let io = |e: std::io::Error| DownloadError::Io(dest.display().to_string(), e);
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut hasher = super::Hasher::default();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
            if let Some(progress) = progress {
                progress(hasher.bytes());
            }
        }
        file.flush().await.map_err(io)?;
        Ok(hasher.finish())
    }
}

async fn got_size(path: &Path) -> u64 {
    tokio::fs::metadata(path).await.map_or(0, |m| m.len())
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The apiserver refused or failed the call.
    #[error(transparent)]
    Api(#[from] Error),
    /// The destination file (named first) could not be written.
    #[error("cannot write {0}: {1}")]
    Io(String, std::io::Error),
    /// The bytes received do not hash to the digest asked for.
    #[error("blob {digest} is corrupt or truncated: the bytes received hash to {got}")]
    Corrupt {
        /// The digest asked for.
        digest: String,
        /// The digest of the bytes received.
        got: String,
    },
}

type Reader = tokio::task::JoinHandle<std::io::Result<()>>;

/// The chunks of `file` as a stream (the first with the header), read by a
/// task a few chunks ahead of the network.
fn stream_file(
    file: &Path,
    header: pb::BlobRequest,
    size: u64,
    progress: Option<&BlobProgress>,
) -> Result<(ReceiverStream<pb::BlobChunk>, Reader), Error> {
    let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    let path = file.to_path_buf();
    // Progress is reported as chunks are read: the reader runs ahead of
    // the network by at most CHUNKS_IN_FLIGHT chunks.
    let report = progress.cloned();
    let reader = tokio::spawn(async move {
        let mut file = tokio::fs::File::open(&path).await?;
        let mut header = Some(header);
        let mut read = 0u64;
        loop {
            let mut data = Vec::with_capacity(CHUNK_BYTES);
            let n = (&mut file)
                .take(CHUNK_BYTES as u64)
                .read_to_end(&mut data)
                .await?;
            if n == 0 && header.is_none() {
                return Ok(());
            }
            read += n as u64;
            if let Some(report) = &report {
                report(read);
            }
            let chunk = pb::BlobChunk {
                header: header.take(),
                size: i64::try_from(size).unwrap_or(i64::MAX),
                data,
            };
            if tx.send(chunk).await.is_err() || n == 0 {
                // The call ended (refused): nothing more to send.
                return Ok(());
            }
        }
    });
    Ok((ReceiverStream::new(rx), reader))
}
