//! The etcd backend: the same `Store` promises on a real etcd cluster
//! (v3 API through `etcd-client`), so that several stateless apiservers can
//! share one source of truth.
//!
//! Store keys map to etcd keys under `prefix` (empty by default: the
//! apiserver's keys already start with `/sloth/`). Revisions are etcd's own.
//! Every compare-and-swap is one Txn on `mod_revision`. etcd does not say
//! what it last compacted, so `compact` records it under a meta key
//! (`<prefix>\0compacted`, outside every data key range because store keys
//! start with `/`).

mod errors;
mod progress;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KvClient, Txn, TxnOp,
    TxnOpResponse,
};
use futures_util::stream::BoxStream;

use sloth_sdk::backoff::Backoff;

use super::{KeyValue, ListOptions, ListResult, Store, StoreError, StoreResult, WatchItem};
use errors::{Classified, backend, classify};

/// The waits between tries of a KV call while etcd is unreachable: 20ms
/// doubling up to 500ms, within the request timeout.
const CALL_BACKOFF: Backoff = Backoff::fixed(Duration::from_millis(20), Duration::from_millis(500));

/// How the etcd backend connects and behaves.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// etcd client URLs (`http://127.0.0.1:2379`); the client balances
    /// across them and fails over when one dies.
    pub endpoints: Vec<String>,
    /// Prepended to every store key.
    pub prefix: String,
    /// How often an idle watch asks etcd for a progress notification.
    pub progress_interval: Duration,
    /// Bounds each call, so that a lost quorum is an error, not a hang.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: String::new(),
            progress_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Which failures of a call are tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    /// A read: any unavailability.
    Reads,
    /// A write: only when it was certainly not sent.
    Writes,
}

/// A `Store` on etcd.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    prefix: Arc<str>,
    options: EtcdOptions,
    /// Whether this etcd answers progress requests in order (known once it
    /// answered a status call).
    progress_requests: Arc<tokio::sync::OnceCell<bool>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.options.endpoints)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// The smallest key greater than every key starting with `prefix` (etcd's
/// range end for a prefix).
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the keyspace.
    vec![0]
}

/// Compacted revisions are stored zero-padded so that they compare as
/// strings the way they compare as numbers.
fn encode_revision(revision: i64) -> String {
    format!("{revision:020}")
}

impl EtcdStore {
    /// A store on the etcd cluster at `options.endpoints`, without waiting
    /// for it to answer: an apiserver starts (and reports not ready) while
    /// etcd is away, and calls fail with a clear error until it is back.
    pub async fn new(options: EtcdOptions) -> StoreResult<Arc<Self>> {
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_timeout(options.request_timeout)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
            .with_require_leader(true);
        let client = Client::connect(&options.endpoints, Some(connect))
            .await
            .map_err(|e| {
                StoreError::Backend(format!(
                    "cannot connect to etcd at {}: {e}",
                    options.endpoints.join(",")
                ))
            })?;
        Ok(Arc::new(Self {
            client,
            prefix: options.prefix.clone().into(),
            options,
            progress_requests: Arc::default(),
        }))
    }

    /// [`new`](Self::new), then checks that etcd answers.
    pub async fn connect(options: EtcdOptions) -> StoreResult<Arc<Self>> {
        let store = Self::new(options).await?;
        store.check().await?;
        Ok(store)
    }

    /// Whether etcd answers, with an error naming the endpoints if not.
    pub async fn check(&self) -> StoreResult<i64> {
        self.current_revision().await.map_err(|e| {
            StoreError::Backend(format!(
                "etcd at {} does not answer: {e}",
                self.options.endpoints.join(",")
            ))
        })
    }

    /// Runs one KV call, trying again while etcd is unreachable: always
    /// when the connection failed (nothing was sent), and on any
    /// unavailability for `Retry::Reads`. Bounded by the request timeout.
    async fn call<T, F, Fut>(&self, retry: Retry, op: F) -> Result<T, etcd_client::Error>
    where
        F: Fn(KvClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.options.request_timeout;
        let mut retries = CALL_BACKOFF.retries();
        loop {
            let delay = retries.next_delay();
            match op(self.client.kv_client()).await {
                Err(e)
                    if errors::retryable(&e, retry == Retry::Reads)
                        && tokio::time::Instant::now() + delay < deadline =>
                {
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    fn etcd_key(&self, key: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + key.len());
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(key.as_bytes());
        out
    }

    fn meta_key(&self) -> Vec<u8> {
        let mut out = self.prefix.as_bytes().to_vec();
        out.extend_from_slice(b"\0compacted");
        out
    }

    fn to_kv(&self, kv: &etcd_client::KeyValue) -> StoreResult<KeyValue> {
        let key = kv
            .key()
            .strip_prefix(self.prefix.as_bytes())
            .ok_or_else(|| backend("etcd returned a key outside the prefix"))?;
        let key = std::str::from_utf8(key).map_err(|_| backend("etcd returned a non-UTF-8 key"))?;
        Ok(KeyValue {
            key: key.to_string(),
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }

    /// The compacted revision as recorded by `compact` (0 when never).
    async fn recorded_compaction(&self) -> StoreResult<(i64, i64)> {
        let meta = self.meta_key();
        let response = self
            .call(Retry::Reads, |mut kv| {
                let meta = meta.clone();
                async move { kv.get(meta, None).await }
            })
            .await
            .map_err(classify_plain)?;
        let mod_revision = response.kvs().first().map_or(0, |kv| kv.mod_revision());
        let compacted = response
            .kvs()
            .first()
            .and_then(|kv| std::str::from_utf8(kv.value()).ok()?.parse().ok())
            .unwrap_or(0);
        Ok((compacted, mod_revision))
    }

    /// Maps an error of a read or watch at `requested`.
    async fn revision_error(&self, e: etcd_client::Error, requested: i64) -> StoreError {
        match classify(&e) {
            Classified::Compacted => StoreError::Expired {
                requested,
                compacted: self
                    .recorded_compaction()
                    .await
                    .map_or(requested, |(c, _)| c.max(requested)),
            },
            Classified::Future => StoreError::FutureRevision {
                requested,
                current: self.current_revision().await.unwrap_or(0),
            },
            Classified::Other => backend(e),
        }
    }

    async fn txn(&self, txn: Txn) -> StoreResult<etcd_client::TxnResponse> {
        self.call(Retry::Writes, |mut kv| {
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
        .map_err(classify_plain)
    }

    /// The current value of `key` after a refused Txn.
    fn first_get(responses: Vec<TxnOpResponse>) -> Option<etcd_client::KeyValue> {
        responses.into_iter().find_map(|r| match r {
            TxnOpResponse::Get(get) => get.kvs().first().cloned(),
            _ => None,
        })
    }

    pub(crate) fn watch_params(&self) -> (Client, Arc<str>, Duration) {
        (
            self.client.clone(),
            self.prefix.clone(),
            self.options.progress_interval,
        )
    }

    /// Whether watches may ask this etcd for progress (see
    /// [`progress::requests_are_ordered`]); false while etcd cannot say.
    pub(crate) async fn progress_requests_allowed(&self) -> bool {
        let answer = self
            .progress_requests
            .get_or_try_init(|| async {
                let status = self.client.clone().status().await?;
                let version = status.version().to_string();
                let ordered = progress::requests_are_ordered(&version);
                if ordered {
                    tracing::info!(version, "etcd answers progress requests in order: idle watches ask for progress");
                } else {
                    tracing::warn!(
                        version,
                        "this etcd may answer a progress request before events it still owes (etcd-io/etcd#15220; fixed in 3.4.31 and 3.5.13): \
                         idle watches rely on etcd's own progress notifications instead (its --experimental-watch-progress-notify-interval, 10m by default)"
                    );
                }
                Ok::<_, etcd_client::Error>(ordered)
            })
            .await;
        answer.copied().unwrap_or(false)
    }
}

fn classify_plain(e: etcd_client::Error) -> StoreError {
    backend(e)
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> StoreResult<i64> {
    header
        .map(etcd_client::ResponseHeader::revision)
        .ok_or_else(|| backend("etcd response without a header"))
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        let etcd_key = self.etcd_key(key);
        let response = self
            .call(Retry::Reads, |mut kv| {
                let etcd_key = etcd_key.clone();
                async move { kv.get(etcd_key, None).await }
            })
            .await
            .map_err(classify_plain)?;
        response.kvs().first().map(|kv| self.to_kv(kv)).transpose()
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> StoreResult<ListResult> {
        let full_prefix = self.etcd_key(prefix);
        let start = match &options.start_after {
            // The smallest key after `start_after`.
            Some(after) => {
                let mut key = self.etcd_key(after);
                key.push(0);
                key.max(full_prefix.clone())
            }
            None => full_prefix.clone(),
        };
        let mut get = GetOptions::new().with_range(range_end(&full_prefix));
        if options.limit > 0 {
            get = get.with_limit(i64::try_from(options.limit).unwrap_or(i64::MAX));
        }
        if let Some(revision) = options.revision {
            get = get.with_revision(revision);
        }
        let listed = self
            .call(Retry::Reads, |mut kv| {
                let (start, get) = (start.clone(), get.clone());
                async move { kv.get(start, Some(get)).await }
            })
            .await;
        let response = match listed {
            Ok(response) => response,
            Err(e) => return Err(self.revision_error(e, options.revision.unwrap_or(0)).await),
        };
        let items = response
            .kvs()
            .iter()
            .map(|kv| self.to_kv(kv))
            .collect::<StoreResult<Vec<_>>>()?;
        let revision = match options.revision {
            Some(revision) => revision,
            None => header_revision(response.header())?,
        };
        let next_key = if response.more() {
            items.last().map(|kv| kv.key.clone())
        } else {
            None
        };
        Ok(ListResult {
            items,
            revision,
            next_key,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> StoreResult<i64> {
        let etcd_key = self.etcd_key(key);
        let txn = Txn::new()
            .when([Compare::create_revision(
                etcd_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(etcd_key, value.to_vec(), None)]);
        let response = self.txn(txn).await?;
        if response.succeeded() {
            header_revision(response.header())
        } else {
            Err(StoreError::AlreadyExists(key.to_string()))
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: i64,
    ) -> StoreResult<i64> {
        let etcd_key = self.etcd_key(key);
        let txn = Txn::new()
            .when([Compare::mod_revision(
                etcd_key.clone(),
                CompareOp::Equal,
                expected_mod_revision,
            )])
            .and_then([TxnOp::put(etcd_key.clone(), value.to_vec(), None)])
            .or_else([TxnOp::get(etcd_key, None)]);
        let response = self.txn(txn).await?;
        if response.succeeded() {
            return header_revision(response.header());
        }
        match Self::first_get(response.op_responses()) {
            None => Err(StoreError::NotFound(key.to_string())),
            Some(current) => Err(StoreError::Conflict {
                key: key.to_string(),
                expected: expected_mod_revision,
                actual: current.mod_revision(),
            }),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> StoreResult<(KeyValue, i64)> {
        let etcd_key = self.etcd_key(key);
        let compare = match expected_mod_revision {
            Some(expected) => Compare::mod_revision(etcd_key.clone(), CompareOp::Equal, expected),
            None => Compare::create_revision(etcd_key.clone(), CompareOp::Greater, 0),
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::delete(
                etcd_key.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(etcd_key, None)]);
        let response = self.txn(txn).await?;
        let revision = header_revision(response.header())?;
        let responses = response.op_responses();
        if response.succeeded() {
            let prev = responses
                .iter()
                .find_map(|r| match r {
                    TxnOpResponse::Delete(d) => d.prev_kvs().first().cloned(),
                    _ => None,
                })
                .ok_or_else(|| backend("etcd deleted without returning the value"))?;
            return Ok((self.to_kv(&prev)?, revision));
        }
        match (Self::first_get(responses), expected_mod_revision) {
            (None, _) => Err(StoreError::NotFound(key.to_string())),
            (Some(current), Some(expected)) => Err(StoreError::Conflict {
                key: key.to_string(),
                expected,
                actual: current.mod_revision(),
            }),
            (Some(_), None) => Err(backend("etcd refused an unconditional delete")),
        }
    }

    async fn watch(
        &self,
        prefix: &str,
        after_revision: i64,
    ) -> StoreResult<BoxStream<'static, StoreResult<WatchItem>>> {
        // etcd reports a compacted start only after the watch is created,
        // and etcd-client swallows that first response: check up front.
        let (compacted, _) = self.recorded_compaction().await?;
        if after_revision < compacted {
            return Err(StoreError::Expired {
                requested: after_revision,
                compacted,
            });
        }
        watch::open(self, prefix, after_revision).await
    }

    async fn compact(&self, revision: i64) -> StoreResult<()> {
        loop {
            let (recorded, meta_revision) = self.recorded_compaction().await?;
            if revision <= recorded {
                return Ok(());
            }
            let compacted = self
                .call(Retry::Writes, |mut kv| async move {
                    kv.compact(revision, None).await
                })
                .await;
            match compacted {
                Ok(_) => {}
                Err(e) => match classify(&e) {
                    // Someone compacted further already (etcd's own
                    // auto-compaction, another apiserver): fine.
                    Classified::Compacted => {}
                    Classified::Future => {
                        return Err(StoreError::FutureRevision {
                            requested: revision,
                            current: self.current_revision().await?,
                        });
                    }
                    Classified::Other => return Err(backend(e)),
                },
            }
            // Record it, only ever upwards (another apiserver may race).
            let meta = self.meta_key();
            let guard = if meta_revision == 0 {
                Compare::create_revision(meta.clone(), CompareOp::Equal, 0)
            } else {
                Compare::mod_revision(meta.clone(), CompareOp::Equal, meta_revision)
            };
            let txn = Txn::new().when([guard]).and_then([TxnOp::put(
                meta,
                encode_revision(revision),
                None,
            )]);
            if self.txn(txn).await?.succeeded() {
                return Ok(());
            }
        }
    }

    async fn current_revision(&self) -> StoreResult<i64> {
        let meta = self.meta_key();
        let response = self
            .call(Retry::Reads, |mut kv| {
                let meta = meta.clone();
                async move {
                    kv.get(meta, Some(GetOptions::new().with_count_only()))
                        .await
                }
            })
            .await
            .map_err(classify_plain)?;
        header_revision(response.header())
    }

    async fn compacted_revision(&self) -> StoreResult<i64> {
        Ok(self.recorded_compaction().await?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_end_of_a_prefix() {
        assert_eq!(range_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(range_end(b"a\xff"), b"b".to_vec());
        assert_eq!(range_end(b""), vec![0]);
    }

    #[test]
    fn revisions_sort_as_strings() {
        assert!(encode_revision(9) < encode_revision(10));
        assert_eq!(encode_revision(42).parse::<i64>().ok(), Some(42));
    }
}
