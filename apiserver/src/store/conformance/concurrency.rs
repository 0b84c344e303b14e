//! Racing writers: compare-and-swap lets exactly one win, and retrying
//! read-modify-write loops lose nothing.

use std::sync::Arc;

use tokio::sync::Barrier;

use super::helpers::{bounded, create, get, mod_revision, value};
use crate::store::{Store, StoreError};

/// Writers racing from the same read: exactly one may win each round.
pub async fn concurrent_cas_has_one_winner(store: Arc<dyn Store>) {
    const WRITERS: usize = 16;
    let mut read = create(&store, "/cas/k", "start").await;
    for round in 0..5 {
        let barrier = Arc::new(Barrier::new(WRITERS));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|i| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .update("/cas/k", value(&format!("{round}-{i}")), read)
                        .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut conflicts = Vec::new();
        for task in tasks {
            match bounded("a CAS writer", task).await.expect("writer task") {
                Ok(rev) => winners.push(rev),
                Err(StoreError::Conflict {
                    expected, actual, ..
                }) => conflicts.push((expected, actual)),
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let won = winners[0];
        assert!(
            conflicts.iter().all(|&c| c == (read, won)),
            "round {round}: {conflicts:?}"
        );
        assert_eq!(mod_revision(&store, "/cas/k").await, won);
        read = won;
    }
}

/// Read-modify-write loops retrying on conflict lose no increment, and
/// conflicts use no revisions.
pub async fn concurrent_increments_are_exact(store: Arc<dyn Store>) {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let created = create(&store, "/inc/n", "0").await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..EACH {
                    loop {
                        let current = get(&store, "/inc/n").await.expect("present");
                        let n: usize = std::str::from_utf8(&current.value)
                            .expect("utf-8")
                            .parse()
                            .expect("a number");
                        match store
                            .update("/inc/n", value(&(n + 1).to_string()), current.mod_revision)
                            .await
                        {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(e) => panic!("unexpected error: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        bounded("an incrementing task", task)
            .await
            .expect("incrementing task");
    }
    let total = TASKS * EACH;
    let last = get(&store, "/inc/n").await.expect("present");
    assert_eq!(last.value, value(&total.to_string()));
    assert_eq!(last.create_revision, created);
    assert_eq!(
        last.mod_revision,
        created + total as i64,
        "conflicts must not use revisions"
    );
}
