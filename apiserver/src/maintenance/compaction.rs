//! Periodic compaction: keeps about `retention` of history so that watches
//! can resume after short disconnects, and the store does not grow forever.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Every `interval`, compacts to the newest revision observed at least
/// `retention` ago. Runs until `shutdown`.
pub async fn run(
    store: Arc<dyn Store>,
    interval: Duration,
    retention: Duration,
    shutdown: CancellationToken,
) {
    let mut seen: VecDeque<(Instant, i64)> = VecDeque::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = Instant::now();
        match store.current_revision().await {
            Ok(revision) => seen.push_back((now, revision)),
            Err(e) => {
                tracing::warn!(error = %e, "compaction: cannot read the store revision");
                continue;
            }
        }
        let mut target = None;
        while let Some(&(at, revision)) = seen.front() {
            if now.duration_since(at) < retention {
                break;
            }
            target = Some(revision);
            seen.pop_front();
        }
        let Some(revision) = target else { continue };
        match store.compact(revision).await {
            Ok(()) => tracing::debug!(revision, "compacted"),
            Err(e) => tracing::warn!(revision, error = %e, "compaction failed"),
        }
    }
}
