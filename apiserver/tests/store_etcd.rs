//! The etcd backend against a real etcd (one fresh member per case, since
//! the cases check exact revisions): the shared conformance suite, plus
//! what only this backend promises (a key prefix, several endpoints).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sloth_apiserver::store::etcd::{EtcdOptions, EtcdStore};
use sloth_apiserver::store::{ListOptions, Store};
use sloth_tests::Etcd;

fn options(etcd: &Etcd, prefix: &str) -> EtcdOptions {
    EtcdOptions {
        endpoints: etcd.client_urls(),
        prefix: prefix.into(),
        progress_interval: Duration::from_millis(100),
        ..EtcdOptions::default()
    }
}

async fn start_etcd(size: usize) -> Etcd {
    tokio::task::spawn_blocking(move || Etcd::start_cluster(size))
        .await
        .expect("start etcd")
}

/// The member must outlive the store, so it travels with it.
async fn fresh_store() -> (Arc<dyn Store>, Etcd) {
    let etcd = start_etcd(1).await;
    let store: Arc<dyn Store> = EtcdStore::connect(options(&etcd, ""))
        .await
        .expect("connect to etcd");
    (store, etcd)
}

mod conformance {
    sloth_apiserver::store_conformance_tests!(super::fresh_store);
}

fn value(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_keep_two_installations_apart() {
    let etcd = start_etcd(1).await;
    let a = EtcdStore::connect(options(&etcd, "/team-a"))
        .await
        .expect("connect");
    let b = EtcdStore::connect(options(&etcd, "/team-b"))
        .await
        .expect("connect");
    a.create("/sloth/x", value("a")).await.expect("create in a");
    b.create("/sloth/x", value("b")).await.expect("create in b");
    let listed = a.list("/", ListOptions::default()).await.expect("list a");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].key, "/sloth/x");
    assert_eq!(listed.items[0].value, value("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_etcd_is_a_clear_error() {
    let options = EtcdOptions {
        endpoints: vec!["http://127.0.0.1:1".into()],
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(1),
        ..EtcdOptions::default()
    };
    let error = EtcdStore::connect(options)
        .await
        .expect_err("nothing listens on port 1");
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_member_cluster_survives_losing_one() {
    let mut etcd = start_etcd(3).await;
    let store = EtcdStore::connect(options(&etcd, ""))
        .await
        .expect("connect");
    let first = store.create("/ha/a", value("1")).await.expect("create");
    etcd.kill9(0);
    // The client fails over to the remaining members (a write may fail
    // while the cluster notices; it must then not have happened).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let second = loop {
        match store.update("/ha/a", value("2"), first).await {
            Ok(rev) => break rev,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "no failover: {e}");
                let got = store.get("/ha/a").await;
                if let Ok(Some(kv)) = got
                    && kv.mod_revision != first
                {
                    break kv.mod_revision;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let kv = store.get("/ha/a").await.expect("get").expect("present");
    assert_eq!((kv.value, kv.mod_revision), (value("2"), second));
}
