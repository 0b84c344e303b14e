//! Watches on etcd: one etcd watch per store watch, fed through a bounded
//! channel by a task that cancels the etcd watch when the consumer goes.
//! Progress comes from etcd's own notifications, and from requests every
//! progress interval where this etcd answers those in order (`progress.rs`).

use etcd_client::{EventType, WatchOptions, WatchResponse};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::errors::backend;
use super::{EtcdStore, range_end};
use crate::store::{Event, KeyValue, StoreError, StoreResult, WatchItem};

/// Watch items buffered between etcd and a slow consumer; beyond it the
/// etcd stream is not read, and gRPC flow control pushes back on etcd.
const BUFFER: usize = 64;

pub(super) async fn open(
    store: &EtcdStore,
    prefix: &str,
    after_revision: i64,
) -> StoreResult<BoxStream<'static, StoreResult<WatchItem>>> {
    let (client, etcd_prefix, progress_interval) = store.watch_params();
    let key = store.etcd_key(prefix);
    let options = WatchOptions::new()
        .with_range(range_end(&key))
        .with_start_revision(after_revision + 1)
        .with_prev_key()
        .with_progress_notify();
    let ask_for_progress = store.progress_requests_allowed().await;
    let (mut watcher, mut stream) = client
        .watch_client()
        .watch(key, Some(options))
        .await
        .map_err(backend)?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let converter = Converter {
        prefix: etcd_prefix,
    };
    tokio::spawn(async move {
        let mut last = after_revision;
        let mut ticker = tokio::time::interval(progress_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            let item = tokio::select! {
                () = tx.closed() => break,
                _ = ticker.tick(), if ask_for_progress => {
                    if let Err(e) = watcher.request_progress().await {
                        Some(Err(backend(e)))
                    } else {
                        None
                    }
                }
                message = stream.message() => match message {
                    Ok(Some(response)) => converter.convert(&response, &mut last),
                    Ok(None) => Some(Err(backend("the etcd watch stream ended"))),
                    Err(e) => Some(Err(backend(e))),
                },
            };
            let Some(item) = item else { continue };
            let last_item = item.is_err();
            if tx.send(item).await.is_err() || last_item {
                break;
            }
        }
        let _ = watcher.cancel().await;
    });
    Ok(ReceiverStream::new(rx).boxed())
}

struct Converter {
    prefix: std::sync::Arc<str>,
}

impl Converter {
    /// What one etcd watch response means for the consumer, if anything;
    /// `last` is the revision delivered so far.
    fn convert(&self, response: &WatchResponse, last: &mut i64) -> Option<StoreResult<WatchItem>> {
        if response.compact_revision() != 0 {
            return Some(Err(StoreError::Expired {
                requested: *last,
                compacted: response.compact_revision(),
            }));
        }
        if response.canceled() {
            return Some(Err(backend(format!(
                "etcd cancelled the watch: {}",
                response.cancel_reason()
            ))));
        }
        if response.created() {
            return None;
        }
        let revision = response.header().map(etcd_client::ResponseHeader::revision);
        if response.events().is_empty() {
            // A progress notification: everything up to here was sent.
            let revision = revision?;
            *last = (*last).max(revision);
            return Some(Ok(WatchItem::Progress(revision)));
        }
        let mut events = Vec::with_capacity(response.events().len());
        for event in response.events() {
            match self.event(event) {
                Ok(event) => {
                    *last = (*last).max(event.revision());
                    events.push(event);
                }
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(WatchItem::Events(events)))
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> StoreResult<KeyValue> {
        let key = kv
            .key()
            .strip_prefix(self.prefix.as_bytes())
            .and_then(|k| std::str::from_utf8(k).ok())
            .ok_or_else(|| backend("etcd sent a key outside the prefix"))?;
        Ok(KeyValue {
            key: key.to_string(),
            value: bytes::Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }

    fn event(&self, event: &etcd_client::Event) -> StoreResult<Event> {
        let kv = event
            .kv()
            .ok_or_else(|| backend("etcd sent an event without a key"))?;
        let prev = event.prev_kv().map(|p| self.kv(p)).transpose()?;
        match event.event_type() {
            EventType::Put => Ok(Event::Put {
                kv: self.kv(kv)?,
                prev,
            }),
            EventType::Delete => {
                let revision = kv.mod_revision();
                let prev = match prev {
                    Some(prev) => prev,
                    // The old value is compacted away: report what is known.
                    None => KeyValue {
                        mod_revision: revision,
                        ..self.kv(kv)?
                    },
                };
                Ok(Event::Delete { prev, revision })
            }
        }
    }
}
