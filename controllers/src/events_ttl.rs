//! The event TTL controller: deletes Events that last happened more than
//! [`EVENT_TTL`] ago, so that they do not pile up in the store.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sloth_sdk::events::EVENT_TTL;
use sloth_sdk::objects::{Event, EventSpec};
use sloth_sdk::{Api, Client, Error, ListParams};
use tokio_util::sync::CancellationToken;

/// How often Events are swept.
const INTERVAL: Duration = Duration::from_secs(60);
/// Longest a single list or delete call may take before the sweep gives up
/// until the next interval.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most Events deleted in one sweep; the rest wait for the next one.
const MAX_DELETES_PER_SWEEP: usize = 10_000;

/// Runs the sweep at once, then every minute, until `shutdown`.
pub async fn run(client: Client, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            deleted = sweep(&client, Utc::now()) => match deleted {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "expired events deleted"),
                Err(e) => tracing::warn!(error = %e, "event TTL sweep failed"),
            },
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

/// Whether `event` last happened more than [`EVENT_TTL`] before `now`
/// (its `lastTimestamp`, else `firstTimestamp`, else when it was created).
/// An Event without any timestamp is kept.
pub fn expired(event: &Event, now: DateTime<Utc>) -> bool {
    let Some(last) = event
        .spec
        .last_timestamp
        .or(event.spec.first_timestamp)
        .or(event.metadata.creation_timestamp)
    else {
        return false;
    };
    let Ok(ttl) = chrono::TimeDelta::from_std(EVENT_TTL) else {
        return false;
    };
    now.signed_duration_since(last) > ttl
}

/// One pass: lists Events in every namespace and deletes the expired ones;
/// returns how many were deleted.
async fn sweep(client: &Client, now: DateTime<Utc>) -> Result<usize, Error> {
    let all: Api<EventSpec> = Api::all(client.clone());
    let list = timed(all.list(&ListParams::default())).await?;
    let mut deleted = 0;
    for event in list
        .items
        .iter()
        .filter(|e| expired(e, now))
        .take(MAX_DELETES_PER_SWEEP)
    {
        let api: Api<EventSpec> = Api::namespaced(client.clone(), event.namespace());
        match timed(api.delete(event.name())).await {
            Ok(_) => deleted += 1,
            Err(Error::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(
                    namespace = event.namespace(),
                    name = event.name(),
                    error = %e,
                    "cannot delete expired event"
                );
                if e.is_unavailable() {
                    return Err(e);
                }
            }
        }
    }
    Ok(deleted)
}

/// `call`, failing as unavailable when it takes longer than [`CALL_TIMEOUT`].
async fn timed<T>(call: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Unavailable {
                endpoints: String::new(),
                message: format!("no answer within {CALL_TIMEOUT:?}"),
            })
        })
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use sloth_sdk::objects::ObjectReference;

    use super::*;

    fn event(last: Option<DateTime<Utc>>, created: Option<DateTime<Utc>>) -> Event {
        let mut e = Event::new(
            "wf.0123456789abcdef",
            EventSpec {
                involved_object: ObjectReference {
                    kind: "Workflow".into(),
                    name: "wf".into(),
                    ..ObjectReference::default()
                },
                reason: "Started".into(),
                message: "m".into(),
                count: 1,
                last_timestamp: last,
                ..EventSpec::default()
            },
        );
        e.metadata.creation_timestamp = created;
        e
    }

    #[test]
    fn events_expire_an_hour_after_they_last_happened() {
        let now = Utc::now();
        let ago = |mins: i64| Some(now - TimeDelta::minutes(mins));
        assert!(!expired(&event(ago(59), ago(600)), now));
        assert!(expired(&event(ago(61), ago(600)), now));
        // Without lastTimestamp, the creation time counts.
        assert!(!expired(&event(None, ago(30)), now));
        assert!(expired(&event(None, ago(90)), now));
        // Nothing to go by: kept.
        assert!(!expired(&event(None, None), now));
        // Exactly at the TTL: still kept.
        assert!(!expired(&event(ago(60), None), now));
    }
}
