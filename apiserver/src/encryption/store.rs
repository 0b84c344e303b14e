//! A `Store` that encrypts Secret objects on their way into the backend
//! and decrypts them on the way out: both backends (embedded and etcd)
//! hold only ciphertext, and everything above the store (admission, the
//! watch cache, watches) sees plain objects. Keys outside
//! `/sloth/secrets/` pass through untouched; a list or watch whose prefix
//! cannot hold a Secret is handed the backend's own stream.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::codec;
use super::keys::KeyRing;
use crate::store::{
    Event, KeyValue, ListOptions, ListResult, Store, StoreError, StoreResult, WatchItem,
};

/// Where Secrets live in the store (see `crate::registry::keys`).
pub const SECRETS_PREFIX: &str = "/sloth/secrets/";

/// The encrypting layer over a backend.
#[derive(Debug)]
pub struct EncryptingStore {
    inner: Arc<dyn Store>,
    /// None: Secrets cannot be written (etcd without a key file).
    keys: Option<Arc<KeyRing>>,
}

impl EncryptingStore {
    pub fn new(inner: Arc<dyn Store>, keys: Option<Arc<KeyRing>>) -> Self {
        Self { inner, keys }
    }
}

fn is_secret(key: &str) -> bool {
    key.starts_with(SECRETS_PREFIX)
}

/// Whether keys under `prefix` may be Secrets.
fn may_hold_secrets(prefix: &str) -> bool {
    prefix.starts_with(SECRETS_PREFIX) || SECRETS_PREFIX.starts_with(prefix)
}

fn encryption_error(e: codec::CodecError) -> StoreError {
    StoreError::Encryption(e.to_string())
}

fn open_kv(keys: Option<&KeyRing>, mut kv: KeyValue) -> StoreResult<KeyValue> {
    if is_secret(&kv.key) {
        kv.value = codec::open(keys, &kv.key, kv.value).map_err(encryption_error)?;
    }
    Ok(kv)
}

fn open_event(keys: Option<&KeyRing>, event: Event) -> StoreResult<Event> {
    if !is_secret(event.key()) {
        return Ok(event);
    }
    Ok(match event {
        Event::Put { kv, prev } => Event::Put {
            kv: open_kv(keys, kv)?,
            prev: prev.map(|p| open_kv(keys, p)).transpose()?,
        },
        Event::Delete { prev, revision } => Event::Delete {
            prev: open_kv(keys, prev)?,
            revision,
        },
    })
}

impl EncryptingStore {
    fn seal(&self, key: &str, value: Bytes) -> StoreResult<Bytes> {
        if !is_secret(key) {
            return Ok(value);
        }
        let keys = self.keys.as_deref().ok_or_else(|| {
            StoreError::Encryption(
                "Secrets cannot be stored: this apiserver has no encryption key (start \
                 sloth-apiserver with --encryption-key-file FILE; on the etcd store it is \
                 required, see docs/security.md)"
                    .into(),
            )
        })?;
        codec::seal(keys, key, &value).map_err(encryption_error)
    }
}

#[async_trait]
impl Store for EncryptingStore {
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        let kv = self.inner.get(key).await?;
        kv.map(|kv| open_kv(self.keys.as_deref(), kv)).transpose()
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> StoreResult<ListResult> {
        let mut listed = self.inner.list(prefix, options).await?;
        if may_hold_secrets(prefix) {
            listed.items = listed
                .items
                .into_iter()
                .map(|kv| open_kv(self.keys.as_deref(), kv))
                .collect::<StoreResult<_>>()?;
        }
        Ok(listed)
    }

    async fn create(&self, key: &str, value: Bytes) -> StoreResult<i64> {
        let value = self.seal(key, value)?;
        self.inner.create(key, value).await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: i64,
    ) -> StoreResult<i64> {
        let value = self.seal(key, value)?;
        self.inner.update(key, value, expected_mod_revision).await
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> StoreResult<(KeyValue, i64)> {
        let (prev, revision) = self.inner.delete(key, expected_mod_revision).await?;
        Ok((open_kv(self.keys.as_deref(), prev)?, revision))
    }

    async fn watch(
        &self,
        prefix: &str,
        after_revision: i64,
    ) -> StoreResult<BoxStream<'static, StoreResult<WatchItem>>> {
        let stream = self.inner.watch(prefix, after_revision).await?;
        if !may_hold_secrets(prefix) {
            return Ok(stream);
        }
        let keys = self.keys.clone();
        Ok(stream
            .map(move |item| match item? {
                WatchItem::Events(events) => events
                    .into_iter()
                    .map(|e| open_event(keys.as_deref(), e))
                    .collect::<StoreResult<_>>()
                    .map(WatchItem::Events),
                progress => Ok(progress),
            })
            .boxed())
    }

    async fn compact(&self, revision: i64) -> StoreResult<()> {
        self.inner.compact(revision).await
    }

    async fn current_revision(&self) -> StoreResult<i64> {
        self.inner.current_revision().await
    }

    async fn compacted_revision(&self) -> StoreResult<i64> {
        self.inner.compacted_revision().await
    }

    fn fault(&self) -> Option<String> {
        self.inner.fault()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::encryption::keys::new_key_line;
    use crate::store::embedded::{EmbeddedOptions, EmbeddedStore};

    #[test]
    fn only_secret_prefixes_are_touched() {
        assert!(is_secret("/sloth/secrets/default/db"));
        assert!(!is_secret("/sloth/taskruns/default/db"));
        assert!(may_hold_secrets("/sloth/"));
        assert!(may_hold_secrets("/sloth/secrets/ns/"));
        assert!(!may_hold_secrets("/sloth/taskruns/"));
        assert!(!may_hold_secrets("/sloth/secretsx/"));
    }

    #[tokio::test]
    async fn the_backend_holds_ciphertext_and_readers_see_plain_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend: Arc<dyn Store> =
            EmbeddedStore::open(&dir.path().join("s.redb"), EmbeddedOptions::default())
                .await
                .expect("open");
        let ring = KeyRing::parse(&new_key_line("k1"), Path::new("k")).expect("ring");
        let store = EncryptingStore::new(backend.clone(), Some(Arc::new(ring)));
        let key = "/sloth/secrets/default/db";
        let mut watch = store.watch(SECRETS_PREFIX, 0).await.expect("watch");
        let revision = store
            .create(key, Bytes::from_static(b"{\"pw\":\"hunter2\"}"))
            .await
            .expect("create");
        store
            .create("/sloth/taskruns/default/t", Bytes::from_static(b"plain"))
            .await
            .expect("create");
        let raw = backend.get(key).await.expect("get").expect("exists");
        assert!(codec::is_sealed(&raw.value));
        let plain = store.get(key).await.expect("get").expect("exists");
        assert_eq!(&plain.value[..], b"{\"pw\":\"hunter2\"}");
        let listed = store
            .list("/sloth/", ListOptions::default())
            .await
            .expect("list");
        assert_eq!(&listed.items[0].value[..], b"{\"pw\":\"hunter2\"}");
        assert_eq!(&listed.items[1].value[..], b"plain");
        let Some(Ok(WatchItem::Events(events))) = watch.next().await else {
            panic!("no event");
        };
        assert_eq!(events[0].revision(), revision);
        let Event::Put { kv, .. } = &events[0] else {
            panic!("not a put");
        };
        assert_eq!(&kv.value[..], b"{\"pw\":\"hunter2\"}");

        let keyless = EncryptingStore::new(backend, None);
        let refused = keyless
            .create("/sloth/secrets/default/x", Bytes::from_static(b"{}"))
            .await
            .expect_err("no key");
        assert!(
            refused.to_string().contains("--encryption-key-file"),
            "{refused}"
        );
        assert!(
            keyless.get(key).await.is_err(),
            "cannot decrypt without the key"
        );
    }
}
