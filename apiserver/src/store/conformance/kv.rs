//! Single-key reads and writes: create, get, compare-and-swap update and
//! delete, and the revisions they take.

use std::sync::Arc;

use super::helpers::{assert_conflict, create, current_revision, delete, get, kv, update, value};
use crate::store::{Store, StoreError};

pub async fn create_then_get(store: Arc<dyn Store>) {
    let rev = create(&store, "/c/a", "one").await;
    assert!(rev > 0, "revisions start above 0, got {rev}");
    assert_eq!(get(&store, "/c/a").await, Some(kv("/c/a", "one", rev, rev)));
    assert_eq!(current_revision(&store).await, rev);
}

pub async fn create_existing_is_already_exists(store: Arc<dyn Store>) {
    let rev = create(&store, "/c/a", "one").await;
    match store.create("/c/a", value("two")).await {
        Err(StoreError::AlreadyExists(key)) => assert_eq!(key, "/c/a"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(get(&store, "/c/a").await, Some(kv("/c/a", "one", rev, rev)));
    assert_eq!(
        current_revision(&store).await,
        rev,
        "a refused write used a revision"
    );
}

pub async fn get_missing_is_none(store: Arc<dyn Store>) {
    assert_eq!(get(&store, "/c/missing").await, None);
    create(&store, "/c/gone", "x").await;
    delete(&store, "/c/gone").await;
    assert_eq!(get(&store, "/c/gone").await, None);
}

pub async fn update_with_current_revision_succeeds(store: Arc<dyn Store>) {
    let created = create(&store, "/u/a", "one").await;
    let updated = update(&store, "/u/a", "two", created).await;
    assert!(updated > created);
    assert_eq!(
        get(&store, "/u/a").await,
        Some(kv("/u/a", "two", created, updated))
    );
}

pub async fn update_with_stale_revision_conflicts(store: Arc<dyn Store>) {
    let created = create(&store, "/u/a", "one").await;
    let updated = update(&store, "/u/a", "two", created).await;
    assert_conflict(
        store.update("/u/a", value("three"), created).await,
        "/u/a",
        created,
        updated,
    );
    assert_eq!(
        get(&store, "/u/a").await,
        Some(kv("/u/a", "two", created, updated))
    );
    assert_eq!(
        current_revision(&store).await,
        updated,
        "a conflict used a revision"
    );
}

pub async fn update_missing_is_not_found(store: Arc<dyn Store>) {
    match store.update("/u/missing", value("x"), 1).await {
        Err(StoreError::NotFound(key)) => assert_eq!(key, "/u/missing"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let created = create(&store, "/u/gone", "x").await;
    delete(&store, "/u/gone").await;
    let result = store.update("/u/gone", value("y"), created).await;
    assert!(
        matches!(result, Err(StoreError::NotFound(_))),
        "update of a deleted key: {result:?}"
    );
}

pub async fn delete_without_expected_revision(store: Arc<dyn Store>) {
    let created = create(&store, "/d/a", "one").await;
    let (prev, rev) = delete(&store, "/d/a").await;
    assert_eq!(prev, kv("/d/a", "one", created, created));
    assert!(rev > created);
    assert_eq!(current_revision(&store).await, rev);
    assert_eq!(get(&store, "/d/a").await, None);
    let again = store.delete("/d/a", None).await;
    assert!(
        matches!(again, Err(StoreError::NotFound(_))),
        "second delete: {again:?}"
    );
}

pub async fn delete_with_expected_revision(store: Arc<dyn Store>) {
    let created = create(&store, "/d/a", "one").await;
    let updated = update(&store, "/d/a", "two", created).await;
    assert_conflict(
        store.delete("/d/a", Some(created)).await,
        "/d/a",
        created,
        updated,
    );
    assert_eq!(
        get(&store, "/d/a").await,
        Some(kv("/d/a", "two", created, updated))
    );
    let (prev, rev) = store.delete("/d/a", Some(updated)).await.expect("delete");
    assert_eq!(prev, kv("/d/a", "two", created, updated));
    assert!(rev > updated);
    assert_eq!(get(&store, "/d/a").await, None);
}

pub async fn recreate_after_delete_starts_a_new_life(store: Arc<dyn Store>) {
    create(&store, "/d/a", "one").await;
    delete(&store, "/d/a").await;
    let again = create(&store, "/d/a", "two").await;
    assert_eq!(
        get(&store, "/d/a").await,
        Some(kv("/d/a", "two", again, again))
    );
}

/// resourceVersion is the mod revision, so it must grow with every write
/// and never with a refused one.
pub async fn revisions_strictly_increase(store: Arc<dyn Store>) {
    let mut last = current_revision(&store).await;
    for i in 0..5 {
        let key = format!("/r/{i}");
        let created = create(&store, &key, "a").await;
        assert!(created > last, "create got {created} after {last}");
        let _ = store.create(&key, value("again")).await;
        let updated = update(&store, &key, "b", created).await;
        assert!(updated > created);
        let _ = store.update(&key, value("stale"), created).await;
        let got = get(&store, &key).await.expect("present");
        assert_eq!((got.create_revision, got.mod_revision), (created, updated));
        last = updated;
        assert_eq!(current_revision(&store).await, last);
    }
    let (_, deleted) = delete(&store, "/r/0").await;
    assert!(deleted > last);
    assert_eq!(current_revision(&store).await, deleted);
}
