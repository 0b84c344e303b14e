//! Rewrites every Secret not encrypted with the primary key (after a key
//! rotation made a new key first), so that the old key can then be
//! removed. Runs at startup; compare-and-swap per Secret, so several
//! apiservers doing it at once, or a user's write in between, are fine.

use std::sync::Arc;

use super::codec;
use super::keys::KeyRing;
use super::store::SECRETS_PREFIX;
use crate::store::{ListOptions, Store, StoreError};

/// Secrets rewritten per list page.
const PAGE: usize = 100;

/// Re-encrypts (with the primary key) every Secret in `backend` (the raw
/// store, under the encrypting layer) stored with another key; returns
/// how many were rewritten. A Secret no key of the ring opens is logged
/// and left as it is.
pub async fn rewrite_stale(backend: &Arc<dyn Store>, keys: &KeyRing) -> Result<usize, StoreError> {
    let primary = keys.primary().name.as_str();
    let mut rewritten = 0;
    let mut start_after = None;
    let mut revision = None;
    loop {
        let page = backend
            .list(
                SECRETS_PREFIX,
                ListOptions {
                    limit: PAGE,
                    start_after: start_after.take(),
                    revision,
                },
            )
            .await?;
        revision = Some(page.revision);
        for kv in &page.items {
            if codec::key_name(&kv.value) == Some(primary) {
                continue;
            }
            let plain = match codec::open(Some(keys), &kv.key, kv.value.clone()) {
                Ok(plain) => plain,
                Err(e) => {
                    tracing::error!(error = %e, "cannot re-encrypt a Secret");
                    continue;
                }
            };
            let sealed = codec::seal(keys, &kv.key, &plain)
                .map_err(|e| StoreError::Encryption(e.to_string()))?;
            match backend.update(&kv.key, sealed, kv.mod_revision).await {
                Ok(_) => rewritten += 1,
                // Written (so encrypted with a current key) or deleted since.
                Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        match page.next_key {
            Some(next) => start_after = Some(next),
            None => return Ok(rewritten),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bytes::Bytes;

    use super::*;
    use crate::encryption::EncryptingStore;
    use crate::encryption::keys::new_key_line;
    use crate::store::embedded::{EmbeddedOptions, EmbeddedStore};

    #[tokio::test]
    async fn secrets_move_to_the_primary_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend: Arc<dyn Store> =
            EmbeddedStore::open(&dir.path().join("s.redb"), EmbeddedOptions::default())
                .await
                .expect("open");
        let old_line = new_key_line("old");
        let old = Arc::new(KeyRing::parse(&old_line, Path::new("k")).expect("ring"));
        let writer = EncryptingStore::new(backend.clone(), Some(old));
        for name in ["a", "b", "c"] {
            writer
                .create(
                    &format!("{SECRETS_PREFIX}default/{name}"),
                    Bytes::from_static(b"{}"),
                )
                .await
                .expect("create");
        }
        let text = format!("{}\n{old_line}\n", new_key_line("new"));
        let rotated = KeyRing::parse(&text, Path::new("k")).expect("ring");
        assert_eq!(rewrite_stale(&backend, &rotated).await.expect("rewrite"), 3);
        assert_eq!(rewrite_stale(&backend, &rotated).await.expect("again"), 0);
        let raw = backend
            .list(SECRETS_PREFIX, ListOptions::default())
            .await
            .expect("list");
        assert!(
            raw.items
                .iter()
                .all(|kv| codec::key_name(&kv.value) == Some("new"))
        );
    }
}
