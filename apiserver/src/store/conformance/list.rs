//! Listing a prefix: isolation, pages that share one revision, limits, and
//! reads at an old or future revision.

use std::sync::Arc;

use super::helpers::{
    at_revision, create, current_revision, delete, get, keys, kv, limited, list_all, mod_revision,
    update, value,
};
use crate::store::{KeyValue, ListOptions, ListResult, Store, StoreError};

pub async fn list_isolates_prefixes(store: Arc<dyn Store>) {
    for key in ["/a", "/a/1", "/a/2", "/ab/1", "/b/1", "/a/0/nested"] {
        create(&store, key, key).await;
    }
    let listed = list_all(&store, "/a/").await;
    assert_eq!(keys(&listed), ["/a/0/nested", "/a/1", "/a/2"]);
    assert_eq!(listed.revision, current_revision(&store).await);
    assert_eq!(listed.next_key, None);
    assert_eq!(Some(listed.items[1].clone()), get(&store, "/a/1").await);
    assert_eq!(keys(&list_all(&store, "/ab/").await), ["/ab/1"]);
    assert!(list_all(&store, "/c/").await.items.is_empty());
}

/// Later pages read at the first page's revision: writes in between, in
/// front of or behind the cursor, must not show up.
pub async fn list_pages_share_one_revision(store: Arc<dyn Store>) {
    for i in 0..10 {
        create(&store, &format!("/p/{i:02}"), "v1").await;
    }
    let first = store.list("/p/", limited(3)).await.expect("first page");
    assert_eq!(keys(&first), ["/p/00", "/p/01", "/p/02"]);
    assert_eq!(first.next_key.as_deref(), Some("/p/02"));
    let at = first.revision;

    let current = mod_revision(&store, "/p/04").await;
    update(&store, "/p/04", "v2", current).await;
    delete(&store, "/p/05").await;
    create(&store, "/p/03a", "new").await;
    create(&store, "/p/10", "new").await;
    delete(&store, "/p/00").await;

    let mut all = first.items.clone();
    let mut next = first.next_key.clone();
    while let Some(after) = next {
        let page = store
            .list(
                "/p/",
                ListOptions {
                    limit: 3,
                    start_after: Some(after),
                    revision: Some(at),
                },
            )
            .await
            .expect("next page");
        assert_eq!(page.revision, at, "a later page moved to another revision");
        assert!(page.items.len() <= 3);
        all.extend(page.items);
        next = page.next_key;
    }
    let expected: Vec<String> = (0..10).map(|i| format!("/p/{i:02}")).collect();
    assert_eq!(
        all.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(
        all.iter()
            .all(|kv| kv.value == value("v1") && kv.mod_revision <= at)
    );

    let now = list_all(&store, "/p/").await;
    assert_eq!(
        keys(&now),
        [
            "/p/01", "/p/02", "/p/03", "/p/03a", "/p/04", "/p/06", "/p/07", "/p/08", "/p/09",
            "/p/10"
        ]
    );
}

pub async fn list_limit_sets_next_key_only_when_more_remain(store: Arc<dyn Store>) {
    for key in ["/l/a", "/l/b", "/l/c", "/l/d"] {
        create(&store, key, "x").await;
    }
    delete(&store, "/l/d").await;
    let exact = store.list("/l/", limited(3)).await.expect("list");
    assert_eq!(keys(&exact), ["/l/a", "/l/b", "/l/c"]);
    assert_eq!(exact.next_key, None, "only a deleted key remains");
    let short = store.list("/l/", limited(2)).await.expect("list");
    assert_eq!(short.next_key.as_deref(), Some("/l/b"));
    let all = store.list("/l/", limited(0)).await.expect("list");
    assert_eq!(all.items.len(), 3);
}

pub async fn list_at_old_revision(store: Arc<dyn Store>) {
    let a1 = create(&store, "/o/a", "one").await;
    let a2 = update(&store, "/o/a", "two", a1).await;
    let b = create(&store, "/o/b", "b").await;
    let (_, gone) = delete(&store, "/o/a").await;
    let check = |listed: ListResult, revision: i64, expected: Vec<KeyValue>| {
        assert_eq!(listed.revision, revision);
        assert_eq!(listed.items, expected, "list at revision {revision}");
    };
    let expectations = [
        (a1, vec![kv("/o/a", "one", a1, a1)]),
        (a2, vec![kv("/o/a", "two", a1, a2)]),
        (b, vec![kv("/o/a", "two", a1, a2), kv("/o/b", "b", b, b)]),
        (gone, vec![kv("/o/b", "b", b, b)]),
    ];
    for (revision, expected) in expectations {
        check(
            store
                .list("/o/", at_revision(revision))
                .await
                .expect("list"),
            revision,
            expected,
        );
    }
}

pub async fn list_at_future_revision_fails(store: Arc<dyn Store>) {
    let rev = create(&store, "/f/a", "x").await;
    match store.list("/f/", at_revision(rev + 10)).await {
        Err(StoreError::FutureRevision { requested, current }) => {
            assert_eq!((requested, current), (rev + 10, rev))
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
}
