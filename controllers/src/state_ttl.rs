//! Expiry of state entries: an entry whose `spec.expiresAt` has passed is
//! deleted (readers already treat it as absent from that instant; this
//! only frees the storage). The delete carries the resourceVersion judged,
//! so an entry set again meanwhile is judged again, never lost.

use chrono::{DateTime, Utc};
use sloth_sdk::Client;
use sloth_sdk::objects::{StateEntry, StateEntrySpec};
use tokio_util::sync::CancellationToken;

use crate::expiry;
use crate::gc::Ttl;

/// Judges at `now` whether `entry` is due for deletion.
pub fn judge(entry: &StateEntry, now: DateTime<Utc>) -> Ttl {
    if entry.metadata.deletion_timestamp.is_some() {
        return Ttl::Keep;
    }
    match entry.spec.expires_at {
        None => Ttl::Keep,
        Some(at) if at <= now => Ttl::Delete,
        Some(at) => Ttl::DueAt(at),
    }
}

/// Deletes expired state entries until `shutdown`.
pub async fn run(client: Client, shutdown: CancellationToken) {
    expiry::run::<StateEntrySpec, _, _, _>(
        client,
        "state-ttl",
        judge,
        |_, entry| async move {
            tracing::debug!(
                namespace = entry.namespace(),
                key = entry.spec.key,
                "deleted an expired state entry"
            );
        },
        shutdown,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::at;

    fn entry(expires: Option<i64>) -> StateEntry {
        StateEntry::new(
            "k-1",
            StateEntrySpec {
                key: "k".into(),
                value: 1.into(),
                expires_at: expires.map(at),
                updated_by: None,
            },
        )
    }

    #[test]
    fn an_entry_is_deleted_once_it_expires() {
        assert_eq!(judge(&entry(None), at(0)), Ttl::Keep);
        assert_eq!(judge(&entry(Some(10)), at(0)), Ttl::DueAt(at(10)));
        assert_eq!(judge(&entry(Some(10)), at(10)), Ttl::Delete);
        let mut deleting = entry(Some(10));
        deleting.metadata.deletion_timestamp = Some(at(11));
        assert_eq!(judge(&deleting, at(20)), Ttl::Keep);
    }
}
