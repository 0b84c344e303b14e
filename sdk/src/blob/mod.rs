//! Blobs of the artifact store: digests, the client's streaming calls and
//! (with the `archive` feature) the tar + zstd archives of workspaces and
//! artifacts.

#[cfg(feature = "archive")]
pub mod archive;
mod client;
pub mod digest;

pub use client::{BlobProgress, CHUNK_BYTES, DownloadError, ForTaskRun};
pub use digest::{Digest, DigestError, Hasher};
