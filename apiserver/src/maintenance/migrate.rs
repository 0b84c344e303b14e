//! `sloth-apiserver migrate`: copies every stored object from one store to
//! another (the embedded store to etcd) byte for byte, so that uids,
//! labels, owners and encrypted Secret values come along unchanged.

use crate::store::{ListOptions, Store, StoreError};

/// Keys read per page.
const PAGE: usize = 500;

/// What a migration did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Keys written to the target.
    pub copied: usize,
    /// Keys the target already held with the same bytes (a migration run again).
    pub unchanged: usize,
    /// The source revision the copy is consistent with.
    pub revision: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot read the source store: {0}")]
    Read(#[source] StoreError),
    #[error("cannot write {key:?} to the target store: {source}")]
    Write {
        key: String,
        #[source]
        source: StoreError,
    },
    #[error(
        "{} key(s) already exist in the target with different content (first: {first:?}); \
         nothing was overwritten: migrate into an empty etcd prefix",
        .count
    )]
    Conflicts { count: usize, first: String },
}

/// Copies every key of `from` (as of one revision) into `to`. Keys the
/// target already holds with identical bytes are skipped, so an interrupted
/// migration can be run again; different bytes are never overwritten.
pub async fn copy_all(from: &dyn Store, to: &dyn Store) -> Result<Migrated, MigrateError> {
    let mut done = Migrated::default();
    let mut conflicts = Vec::new();
    let mut options = ListOptions {
        limit: PAGE,
        ..ListOptions::default()
    };
    loop {
        let page = from
            .list("", options.clone())
            .await
            .map_err(MigrateError::Read)?;
        done.revision = page.revision;
        for item in page.items {
            match to.create(&item.key, item.value.clone()).await {
                Ok(_) => done.copied += 1,
                Err(StoreError::AlreadyExists(_)) => match to.get(&item.key).await {
                    Ok(Some(existing)) if existing.value == item.value => done.unchanged += 1,
                    Ok(_) => conflicts.push(item.key),
                    Err(source) => {
                        return Err(MigrateError::Write {
                            key: item.key,
                            source,
                        });
                    }
                },
                Err(source) => {
                    return Err(MigrateError::Write {
                        key: item.key,
                        source,
                    });
                }
            }
        }
        match page.next_key {
            Some(next) => {
                options.start_after = Some(next);
                options.revision = Some(page.revision);
            }
            None => break,
        }
    }
    match conflicts.first() {
        Some(first) => Err(MigrateError::Conflicts {
            count: conflicts.len(),
            first: first.clone(),
        }),
        None => Ok(done),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::store::embedded::{EmbeddedOptions, EmbeddedStore};

    async fn store(dir: &tempfile::TempDir, name: &str) -> Arc<EmbeddedStore> {
        EmbeddedStore::open(&dir.path().join(name), EmbeddedOptions::default())
            .await
            .expect("open")
    }

    #[tokio::test]
    async fn copies_every_key_and_runs_again_without_harm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let from = store(&dir, "from.redb").await;
        let to = store(&dir, "to.redb").await;
        for i in 0..(PAGE + 3) {
            from.create(
                &format!("/sloth/things/{i:04}"),
                Bytes::from(format!("v{i}")),
            )
            .await
            .expect("create");
        }
        let first = copy_all(&*from, &*to).await.expect("migrate");
        assert_eq!((first.copied, first.unchanged), (PAGE + 3, 0));
        let again = copy_all(&*from, &*to).await.expect("migrate again");
        assert_eq!((again.copied, again.unchanged), (0, PAGE + 3));
        let got = to
            .get("/sloth/things/0007")
            .await
            .expect("get")
            .expect("present");
        assert_eq!(got.value, Bytes::from("v7"));

        let current = to
            .get("/sloth/things/0001")
            .await
            .expect("get")
            .expect("present");
        to.update(
            "/sloth/things/0001",
            Bytes::from("changed"),
            current.mod_revision,
        )
        .await
        .expect("update");
        let refused = copy_all(&*from, &*to).await.expect_err("conflict");
        assert!(
            refused.to_string().contains("/sloth/things/0001"),
            "{refused}"
        );
    }
}
