//! Bytes around a run: before it, the workspace and the upstream tasks'
//! artifacts are unpacked (from the blob cache); after a success, the
//! declared artifacts are packed and uploaded.

use std::path::Path;

use sloth_sdk::blob::archive::{self, ArchiveError};
use sloth_sdk::blob::{Digest, ForTaskRun};
use sloth_sdk::objects::{ArtifactStatus, TaskRunSpec, artifact};

use crate::blob_cache::BlobCache;
use crate::concurrency::RunKey;

/// Reasons of runs that failed over their blobs.
pub(crate) mod reason {
    /// The workspace or an input could not be fetched or unpacked.
    pub(crate) const BLOB_ERROR: &str = "BlobError";
    /// Two upstream artifacts would land on the same path.
    pub(crate) const ARTIFACT_CLASH: &str = "ArtifactClash";
    /// A declared artifact is missing or cannot be uploaded.
    pub(crate) const ARTIFACT_ERROR: &str = "ArtifactError";
}

/// Why the bytes around a run failed it.
#[derive(Debug)]
pub(crate) struct Failed {
    pub reason: &'static str,
    pub message: String,
}

fn failed(reason: &'static str, message: String) -> Failed {
    Failed { reason, message }
}

fn for_run(key: &RunKey) -> ForTaskRun {
    ForTaskRun {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    }
}

/// Unpacks the workspace into `run_dir` and the inputs into `cwd`.
pub(crate) async fn materialize(
    client: &sloth_sdk::Client,
    cache: &BlobCache,
    key: &RunKey,
    spec: &TaskRunSpec,
    run_dir: &Path,
    cwd: &Path,
) -> Result<(), Failed> {
    check_clashes(spec)?;
    if let Some(workspace) = &spec.workspace {
        unpack_blob(
            client,
            cache,
            key,
            &workspace.digest,
            run_dir,
            "the workspace",
        )
        .await?;
    }
    for input in &spec.inputs {
        let what = format!("artifact {:?} of task {:?}", input.path, input.task);
        unpack_blob(client, cache, key, &input.digest, cwd, &what).await?;
    }
    Ok(())
}

/// Two inputs whose paths overlap: the workflow controller's planning
/// cannot always know them before the upstream tasks ran.
fn check_clashes(spec: &TaskRunSpec) -> Result<(), Failed> {
    for (i, a) in spec.inputs.iter().enumerate() {
        for b in &spec.inputs[i + 1..] {
            if artifact::paths_overlap(&a.path, &b.path) {
                return Err(failed(
                    reason::ARTIFACT_CLASH,
                    format!(
                        "the artifacts {:?} of task {:?} and {:?} of task {:?} would be \
                         unpacked on the same path",
                        a.path, a.task, b.path, b.task
                    ),
                ));
            }
        }
    }
    Ok(())
}

async fn unpack_blob(
    client: &sloth_sdk::Client,
    cache: &BlobCache,
    key: &RunKey,
    digest: &str,
    into: &Path,
    what: &str,
) -> Result<(), Failed> {
    let bad = |message: String| failed(reason::BLOB_ERROR, message);
    let digest = Digest::parse(digest).map_err(|e| bad(format!("{what}: {e}")))?;
    let file = cache
        .fetch(client, &digest, &for_run(key))
        .await
        .map_err(|e| bad(format!("{what}: {e}")))?;
    let dest = into.to_path_buf();
    let unpacked = tokio::task::spawn_blocking(move || archive::unpack(&file, &dest))
        .await
        .map_err(|e| bad(format!("{what}: the unpack task failed: {e}")))?;
    match unpacked {
        Ok(done) => {
            tracing::info!(taskrun = %key, %digest, entries = done.entries, bytes = done.bytes, "unpacked {what}");
            Ok(())
        }
        Err(e) => {
            if matches!(e, ArchiveError::Corrupt(_)) {
                // Fetched again on the next attempt.
                cache.forget(&digest);
            }
            Err(bad(format!("cannot unpack {what} ({digest}): {e}")))
        }
    }
}

/// Packs and uploads every declared artifact (paths relative to `cwd`).
pub(crate) async fn upload(
    client: &sloth_sdk::Client,
    cache: &BlobCache,
    key: &RunKey,
    spec: &TaskRunSpec,
    cwd: &Path,
) -> Result<Vec<ArtifactStatus>, Failed> {
    let Some(declared) = &spec.artifacts else {
        return Ok(Vec::new());
    };
    let mut uploaded = Vec::new();
    for path in &declared.paths {
        let path = artifact::artifact_path(path).to_string();
        let bad = |message: String| failed(reason::ARTIFACT_ERROR, message);
        let scratch = cache.scratch("artifact").map_err(bad)?;
        let result = pack_and_put(client, key, cwd, &path, &scratch).await;
        let _ = tokio::fs::remove_file(&scratch).await;
        let (digest, size) = result.map_err(|e| bad(format!("artifact {path:?}: {e}")))?;
        uploaded.push(ArtifactStatus {
            path,
            digest: digest.to_string(),
            size,
        });
    }
    Ok(uploaded)
}

async fn pack_and_put(
    client: &sloth_sdk::Client,
    key: &RunKey,
    cwd: &Path,
    path: &str,
    scratch: &Path,
) -> Result<(Digest, u64), String> {
    let (root, rel, out) = (cwd.to_path_buf(), path.to_string(), scratch.to_path_buf());
    let packed = tokio::task::spawn_blocking(move || archive::pack_path(&root, &rel, &out))
        .await
        .map_err(|e| format!("the pack task failed: {e}"))?
        .map_err(|e| match e {
            ArchiveError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                "it does not exist in the task's working directory".to_string()
            }
            other => other.to_string(),
        })?;
    client
        .put_blob(
            scratch,
            &packed.digest,
            packed.size,
            Some(&for_run(key)),
            None,
        )
        .await
        .map_err(|e| format!("cannot upload it: {e}"))?;
    Ok((packed.digest, packed.size))
}
