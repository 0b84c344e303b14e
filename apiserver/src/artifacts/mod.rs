//! The artifact store: content-addressed blobs (workspaces and artifacts)
//! behind the `object_store` crate, on a local (or shared) directory or an
//! S3-compatible bucket. Bytes stream through in chunks: memory does not
//! grow with a blob's size.

pub mod gc;
pub mod rpc;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, WriteMultipart};
use sloth_sdk::blob::{Digest, Hasher};

/// Where blobs live inside the store.
const BLOB_PREFIX: &str = "blobs/sha256";
/// Bytes per part of a multipart write (S3's minimum is 5 MiB).
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts written at once: bounds the memory one upload holds.
const PARTS_IN_FLIGHT: usize = 2;
/// Largest chunk sent to a downloader.
const DOWNLOAD_CHUNK_BYTES: usize = 256 * 1024;

/// The default `--max-artifact-bytes`: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "the blob is larger than the artifact store accepts: {size} bytes, over \
         --max-artifact-bytes={limit}"
    )]
    TooLarge { size: u64, limit: u64 },
    #[error("blob {0} is not in the artifact store")]
    NotFound(String),
    #[error(
        "the upload does not match its header: expected {expected} ({expected_size} bytes), \
         received {got} ({got_size} bytes)"
    )]
    Mismatch {
        expected: String,
        expected_size: u64,
        got: String,
        got_size: u64,
    },
    #[error("artifact store: {0}")]
    Store(#[from] object_store::Error),
    #[error("bad --artifact-store {url:?}: {message}")]
    Config { url: String, message: String },
}

impl From<ArtifactError> for tonic::Status {
    fn from(e: ArtifactError) -> Self {
        let message = e.to_string();
        match e {
            ArtifactError::BadRequest(_) | ArtifactError::Mismatch { .. } => {
                Self::invalid_argument(message)
            }
            ArtifactError::TooLarge { .. } => Self::resource_exhausted(message),
            ArtifactError::NotFound(_) => Self::not_found(message),
            ArtifactError::Store(_) | ArtifactError::Config { .. } => Self::internal(message),
        }
    }
}

/// S3 settings beyond the URL (endpoint and credentials for S3-compatible
/// stores; unset values come from the usual AWS_* environment).
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Plain http endpoints (a local MinIO).
    pub allow_http: bool,
}

/// The blob store.
#[derive(Clone, Debug)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    max_bytes: u64,
    url: String,
}

impl ArtifactStore {
    /// Opens `file://DIR` (created if missing) or `s3://BUCKET/PREFIX`.
    pub fn open(url: &str, s3: &S3Options, max_bytes: u64) -> Result<Self, ArtifactError> {
        let config = |message: String| ArtifactError::Config {
            url: url.to_string(),
            message,
        };
        let (store, prefix): (Arc<dyn ObjectStore>, String) =
            if let Some(dir) = url.strip_prefix("file://") {
                if dir.is_empty() {
                    return Err(config("file:// needs a directory".into()));
                }
                std::fs::create_dir_all(dir)
                    .map_err(|e| config(format!("cannot create {dir}: {e}")))?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| config(e.to_string()))?;
                (Arc::new(local), String::new())
            } else if let Some(rest) = url.strip_prefix("s3://") {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(config("s3:// needs a bucket: s3://BUCKET/PREFIX".into()));
                }
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_allow_http(s3.allow_http);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                if let Some(region) = &s3.region {
                    builder = builder.with_region(region);
                }
                if let Some(key) = &s3.access_key_id {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret);
                }
                let s3 = builder.build().map_err(|e| config(e.to_string()))?;
                (Arc::new(s3), prefix.trim_matches('/').to_string())
            } else {
                return Err(config(
                    "expected file://DIR or s3://BUCKET/PREFIX".to_string(),
                ));
            };
        let prefix = if prefix.is_empty() {
            StorePath::from(BLOB_PREFIX)
        } else {
            StorePath::from(format!("{prefix}/{BLOB_PREFIX}"))
        };
        Ok(Self {
            store,
            prefix,
            max_bytes,
            url: url.to_string(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn path(&self, digest: &Digest) -> StorePath {
        self.prefix.child(digest.hex())
    }

    /// The size of a stored blob, or None.
    pub async fn stat(&self, digest: &Digest) -> Result<Option<u64>, ArtifactError> {
        match self.store.head(&self.path(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Refuses a declared size over the limit before any byte is read.
    pub fn check_size(&self, size: u64) -> Result<(), ArtifactError> {
        if size > self.max_bytes {
            return Err(ArtifactError::TooLarge {
                size,
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Stores the blob streamed by `chunks`, checking it hashes to
    /// `digest` and has `size` bytes. Nothing is visible under the digest
    /// until it checked out (a refused upload is aborted).
    pub async fn put<S, E>(
        &self,
        digest: &Digest,
        size: u64,
        mut chunks: S,
    ) -> Result<u64, ArtifactError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<ArtifactError>,
    {
        self.check_size(size)?;
        let upload = self.store.put_multipart(&self.path(digest)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut hasher = Hasher::default();
        let outcome = async {
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(Into::into)?;
                hasher.update(&chunk);
                if hasher.bytes() > size {
                    return Err(if hasher.bytes() > self.max_bytes {
                        ArtifactError::TooLarge {
                            size: hasher.bytes(),
                            limit: self.max_bytes,
                        }
                    } else {
                        ArtifactError::BadRequest(format!(
                            "the upload is longer than the {size} bytes its header declares"
                        ))
                    });
                }
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        let got_size = hasher.bytes();
        let got = hasher.finish();
        let outcome = outcome.and_then(|()| {
            if &got == digest && got_size == size {
                Ok(())
            } else {
                Err(ArtifactError::Mismatch {
                    expected: digest.to_string(),
                    expected_size: size,
                    got: got.to_string(),
                    got_size,
                })
            }
        });
        match outcome {
            Ok(()) => {
                writer.finish().await?;
                Ok(size)
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(%digest, error = %abort, "cannot abort a refused upload");
                }
                Err(e)
            }
        }
    }

    /// The blob's bytes in chunks of at most 256 KiB.
    pub async fn get(
        &self,
        digest: &Digest,
    ) -> Result<BoxStream<'static, Result<Bytes, ArtifactError>>, ArtifactError> {
        let result = match self.store.get(&self.path(digest)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(ArtifactError::NotFound(digest.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(result
            .into_stream()
            .flat_map(|chunk| {
                let pieces: Vec<Result<Bytes, ArtifactError>> = match chunk {
                    Ok(bytes) => split(bytes).into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e.into())],
                };
                futures_util::stream::iter(pieces)
            })
            .boxed())
    }

    /// Every stored blob: digest, size and when it was last written.
    pub async fn list(
        &self,
    ) -> Result<Vec<(Digest, u64, chrono::DateTime<chrono::Utc>)>, ArtifactError> {
        let mut listing = self.store.list(Some(&self.prefix));
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            let Some(name) = meta.location.filename() else {
                continue;
            };
            if let Ok(digest) = Digest::parse(&format!("sha256:{name}")) {
                out.push((digest, meta.size, meta.last_modified));
            }
        }
        Ok(out)
    }

    pub async fn delete(&self, digest: &Digest) -> Result<(), ArtifactError> {
        match self.store.delete(&self.path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// `bytes` in pieces of at most DOWNLOAD_CHUNK_BYTES (no copy).
fn split(mut bytes: Bytes) -> Vec<Bytes> {
    let mut pieces = Vec::with_capacity(bytes.len() / DOWNLOAD_CHUNK_BYTES + 1);
    while bytes.len() > DOWNLOAD_CHUNK_BYTES {
        pieces.push(bytes.split_to(DOWNLOAD_CHUNK_BYTES));
    }
    if !bytes.is_empty() {
        pieces.push(bytes);
    }
    pieces
}

#[cfg(test)]
mod tests;
