//! Watch streams: history replayed from the log, then live batches from the
//! writer's broadcast, stitched together by revision.
//!
//! The stream is a plain `unfold` over the watcher's state, not a spawned
//! task: dropping it drops everything, so an abandoned watch costs nothing.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::read::history_page;
use super::schema::{from_api, to_api};
use super::shared::Shared;
use super::writer::Batch;
use crate::store::{Event, StoreError, StoreResult, WatchItem};

/// Log entries read per replay transaction: bounds both the memory of one
/// replay step and how long a read transaction pins old pages.
const REPLAY_PAGE: usize = 1024;

/// `receiver` must have been subscribed before this is called (and before
/// `after` was checked), so that nothing committed in between is missed:
/// whatever the replay also finds is skipped by revision.
pub(super) fn stream(
    shared: Arc<Shared>,
    receiver: broadcast::Receiver<Batch>,
    prefix: String,
    after: i64,
    progress_interval: Duration,
) -> BoxStream<'static, StoreResult<WatchItem>> {
    let mut ticker =
        tokio::time::interval_at(Instant::now() + progress_interval, progress_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let watcher = Watcher {
        shared,
        receiver,
        prefix,
        delivered: after,
        told: after,
        replaying: true,
        done: false,
        ticker,
    };
    futures_util::stream::unfold(watcher, |mut watcher| async move {
        let item = watcher.next_item().await?;
        Some((item, watcher))
    })
    .boxed()
}

struct Watcher {
    shared: Arc<Shared>,
    receiver: broadcast::Receiver<Batch>,
    prefix: String,
    /// Every change up to this revision has been delivered (or did not
    /// match the prefix).
    delivered: i64,
    /// The newest revision the consumer has heard of, by an event or a
    /// progress item: progress is only worth sending when `delivered` has
    /// moved past it, and an idle store should cost idle watches nothing.
    told: i64,
    /// Reading history: at the start, and after falling behind the
    /// broadcast.
    replaying: bool,
    done: bool,
    /// Reset whenever events go out, so progress is only sent on a watch
    /// that has been quiet for a whole interval; a busy watch needs none.
    ticker: Interval,
}

impl Watcher {
    async fn next_item(&mut self) -> Option<StoreResult<WatchItem>> {
        loop {
            if self.done {
                return None;
            }
            if self.replaying {
                match self.replay_page().await {
                    Ok(events) if events.is_empty() => continue,
                    Ok(events) => return Some(Ok(self.send(events))),
                    Err(StoreError::Closed) => {
                        self.done = true;
                        return None;
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            }
            tokio::select! {
                received = self.receiver.recv() => match received {
                    Ok(batch) => {
                        let events = self.take_live(&batch);
                        if !events.is_empty() {
                            return Some(Ok(self.send(events)));
                        }
                    }
                    // Some batches were dropped for us: the log has them.
                    Err(RecvError::Lagged(_)) => self.replaying = true,
                    // The writer is gone: the store was closed or dropped.
                    Err(RecvError::Closed) => self.done = true,
                },
                _ = self.ticker.tick() => {
                    if self.delivered > self.told {
                        self.told = self.delivered;
                        return Some(Ok(WatchItem::Progress(self.delivered)));
                    }
                }
            }
        }
    }

    fn send(&mut self, events: Vec<Event>) -> WatchItem {
        self.ticker.reset();
        if let Some(last) = events.last() {
            self.told = last.revision();
        }
        WatchItem::Events(events)
    }

    async fn replay_page(&mut self) -> StoreResult<Vec<Event>> {
        let prefix = self.prefix.clone();
        let after = from_api(self.delivered);
        let page = self
            .shared
            .read(move |db| history_page(db, &prefix, after, REPLAY_PAGE))
            .await?;
        self.delivered = self.delivered.max(to_api(page.through));
        self.replaying = !page.complete;
        Ok(page.events)
    }

    fn take_live(&mut self, batch: &[Event]) -> Vec<Event> {
        let delivered = self.delivered;
        let events = batch
            .iter()
            .filter(|e| e.revision() > delivered && e.key().starts_with(&self.prefix))
            .cloned()
            .collect();
        if let Some(last) = batch.last() {
            self.delivered = delivered.max(last.revision());
        }
        events
    }
}
