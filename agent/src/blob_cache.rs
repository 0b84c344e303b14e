//! The agent's blob cache: workspaces and artifacts by digest, bounded in
//! bytes, least recently used evicted first. A blob used by many tasks is
//! fetched once per agent: concurrent fetches of one digest wait for the
//! first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sloth_sdk::Client;
use sloth_sdk::blob::{Digest, ForTaskRun};

/// The directory, under the work dir, of cached blobs (not a valid
/// namespace name, so retention never takes it for a run).
pub(crate) const CACHE_DIR: &str = ".sloth-blobs";

#[derive(Debug)]
pub(crate) struct BlobCache {
    dir: PathBuf,
    max_bytes: u64,
    /// One lock per digest being fetched.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl BlobCache {
    pub(crate) fn new(work_dir: &Path, max_bytes: u64) -> Self {
        Self {
            dir: work_dir.join(CACHE_DIR),
            max_bytes,
            fetching: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh scratch file name (packing artifacts).
    pub(crate) fn scratch(&self, what: &str) -> Result<PathBuf, String> {
        let dir = self.dir.join("tmp");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(dir.join(format!("{what}-{}", uuid_like())))
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// The cached file of `digest`, fetched from the apiserver (for the
    /// TaskRun `run`) when missing. A blob whose bytes do not match its
    /// digest is an error and is not cached.
    pub(crate) async fn fetch(
        &self,
        client: &Client,
        digest: &Digest,
        run: &ForTaskRun,
    ) -> Result<PathBuf, String> {
        let lock = {
            let mut fetching = self
                .fetching
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            fetching.entry(digest.to_string()).or_default().clone()
        };
        let _held = lock.lock().await;
        let path = self.path(digest);
        if tokio::fs::metadata(&path).await.is_ok() {
            touch(&path);
            tracing::debug!(%digest, "blob cache hit");
            return Ok(path);
        }
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let partial = self
            .dir
            .join(format!("{}.part-{}", digest.hex(), uuid_like()));
        let size = client
            .download_blob(digest, Some(run), &partial, None)
            .await
            .map_err(|e| format!("cannot fetch blob {digest}: {e}"))?;
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(|e| format!("cannot store blob {digest} in the cache: {e}"))?;
        tracing::info!(%digest, size, "blob fetched");
        self.evict(&path);
        Ok(path)
    }

    /// Drops a cached blob that turned out unusable (fetched again next time).
    pub(crate) fn forget(&self, digest: &Digest) {
        let _ = std::fs::remove_file(self.path(digest));
    }

    /// Deletes the least recently used blobs (never `keep`) while the
    /// cache holds more than its budget.
    fn evict(&self, keep: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut blobs: Vec<(SystemTime, u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                let name = e.file_name().into_string().ok()?;
                (meta.is_file() && name.len() == 64).then(|| {
                    (
                        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        meta.len(),
                        e.path(),
                    )
                })
            })
            .collect();
        let mut total: u64 = blobs.iter().map(|b| b.1).sum();
        blobs.sort();
        for (_, size, path) in blobs {
            if total <= self.max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            if std::fs::remove_file(&path).is_ok() {
                tracing::info!(path = %path.display(), size, "evicted a cached blob");
                total -= size;
            }
        }
    }
}

/// Marks a blob as just used (its modification time orders eviction).
fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// A name unique within this process's life.
fn uuid_like() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_keeps_the_budget_and_the_newest() {
        let tmp = tempfile::tempdir().expect("tmp");
        let cache = BlobCache::new(tmp.path(), 25);
        std::fs::create_dir_all(&cache.dir).expect("mkdir");
        let names: Vec<PathBuf> = (0..3).map(|i| cache.dir.join(format!("{i:064}"))).collect();
        for (i, path) in names.iter().enumerate() {
            std::fs::write(path, [0u8; 10]).expect("write");
            let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
            std::fs::File::options()
                .append(true)
                .open(path)
                .and_then(|f| f.set_modified(at))
                .expect("mtime");
        }
        cache.evict(&names[0]);
        // 30 bytes over a 25 budget: the oldest not kept (1) goes.
        assert!(names[0].exists(), "kept");
        assert!(!names[1].exists(), "least recently used");
        assert!(names[2].exists());
    }
}
