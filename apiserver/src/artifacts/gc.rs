//! Garbage collection of blobs no live object references: a blob is
//! deleted once it is older than the grace period (an upload is referenced
//! only after the apply that follows it) and no TaskRun, Workflow or
//! CronWorkflow names its digest.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{ArtifactError, ArtifactStore};
use crate::error::ApiError;
use crate::registry::resources::{Resources, Selectors};

/// The kinds whose objects reference blobs (by a `digest` field).
const REFERRING_KINDS: [&str; 3] = ["TaskRun", "Workflow", "CronWorkflow"];
/// Objects read per page while collecting references.
const PAGE: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] ArtifactError),
}

/// Every digest a stored object references.
pub async fn referenced(resources: &Resources) -> Result<HashSet<String>, ApiError> {
    let mut digests = HashSet::new();
    let everything = Selectors::parse("", "")?;
    for kind in REFERRING_KINDS {
        let mut token = String::new();
        loop {
            let page = resources.list(kind, "", &everything, PAGE, &token).await?;
            for item in &page.items {
                collect_digests(&item.value, &mut digests);
            }
            if page.continue_token.is_empty() {
                break;
            }
            token = page.continue_token;
        }
    }
    Ok(digests)
}

/// Adds the value of every `digest` field in `value`.
pub(crate) fn collect_digests(value: &Value, out: &mut HashSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("digest", Value::String(d)) => {
                        out.insert(d.clone());
                    }
                    _ => collect_digests(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_digests(v, out)),
        _ => {}
    }
}

/// One pass: deletes unreferenced blobs older than `grace`. How many.
pub async fn collect(
    store: &ArtifactStore,
    resources: &Resources,
    grace: Duration,
) -> Result<usize, GcError> {
    // Listed first: a blob uploaded after the references were read is
    // younger than the grace period anyway.
    let blobs = store.list().await?;
    let live = referenced(resources).await?;
    let cutoff =
        chrono::Utc::now() - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let mut deleted = 0;
    for (digest, size, written) in blobs {
        if written > cutoff || live.contains(digest.as_str()) {
            continue;
        }
        store.delete(&digest).await?;
        tracing::info!(%digest, size, "deleted an unreferenced blob");
        deleted += 1;
    }
    Ok(deleted)
}

/// Collects every `interval` until `shutdown`.
pub async fn run(
    store: ArtifactStore,
    resources: Resources,
    interval: Duration,
    grace: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = collect(&store, &resources, grace).await {
            tracing::warn!(error = %e, "artifact garbage collection failed (will retry)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_found_anywhere_in_an_object() {
        let value = serde_json::json!({
            "spec": {"workspace": {"digest": "sha256:a", "size": 1},
                     "inputs": [{"task": "b", "path": "x", "digest": "sha256:b"}]},
            "status": {"artifacts": [{"path": "x", "digest": "sha256:c", "size": 2}]}
        });
        let mut found = HashSet::new();
        collect_digests(&value, &mut found);
        let mut found: Vec<_> = found.into_iter().collect();
        found.sort();
        assert_eq!(found, ["sha256:a", "sha256:b", "sha256:c"]);
    }
}
