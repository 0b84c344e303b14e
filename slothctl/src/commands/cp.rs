//! `slothctl cp TASKRUN:PATH DEST`: copies an artifact (a file or a
//! directory, or anything inside one) of a finished TaskRun back, as
//! kubectl cp does from a pod.

use std::path::{Path, PathBuf};

use sloth_sdk::Api;
use sloth_sdk::blob::{Digest, archive};
use sloth_sdk::objects::{ArtifactStatus, TaskRunSpec, artifact};

use super::Context;
use crate::cli::CpArgs;
use crate::error::CliError;
use crate::progress::Progress;

pub(crate) async fn run(ctx: &Context, args: CpArgs) -> anyhow::Result<()> {
    let (name, path) = parse_source(&args.source)?;
    let api: Api<TaskRunSpec> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let taskrun = api.get(&name).await.map_err(|e| ctx.error(e))?;
    let artifacts = taskrun
        .status
        .as_ref()
        .map(|s| s.artifacts.as_slice())
        .unwrap_or_default();
    let found = find(artifacts, &path).ok_or_else(|| {
        let known: Vec<&str> = artifacts.iter().map(|a| a.path.as_str()).collect();
        CliError::failed(if known.is_empty() {
            format!("taskrun/{name} has no artifacts (a task declares them with artifacts: {{paths: [...]}})")
        } else {
            format!(
                "taskrun/{name} has no artifact at {path:?}; its artifacts: {}",
                known.join(", ")
            )
        })
    })?;
    let digest = Digest::parse(&found.digest)
        .map_err(|e| CliError::failed(format!("taskrun/{name}: artifact {:?}: {e}", found.path)))?;
    let scratch = tempfile::Builder::new()
        .prefix("sloth-cp-")
        .suffix(".tar.zst")
        .tempfile()
        .map_err(|e| CliError::failed(format!("cannot create a temporary file: {e}")))?;
    let progress = Progress::on_terminal("downloading", found.size);
    let callback = progress.as_ref().map(Progress::callback);
    ctx.client
        .download_blob(&digest, None, scratch.path(), callback.as_ref())
        .await
        .map_err(|e| match e {
            sloth_sdk::blob::DownloadError::Api(e) => ctx.error(e),
            other => CliError::failed(other.to_string()),
        })?;
    if let Some(progress) = &progress {
        progress.finish();
    }
    let dest = destination(&args.dest, &path);
    let (archive_path, select, out) = (scratch.path().to_path_buf(), path.clone(), dest.clone());
    let done = tokio::task::spawn_blocking(move || {
        archive::unpack_selected(&archive_path, Some(&select), &out)
    })
    .await
    .map_err(|e| CliError::failed(format!("unpacking failed: {e}")))?
    .map_err(|e| CliError::failed(format!("cannot copy {path:?} to {}: {e}", dest.display())))?;
    eprintln!(
        "taskrun/{name}:{path} -> {} ({} entries, {} bytes)",
        dest.display(),
        done.entries,
        done.bytes
    );
    Ok(())
}

/// `NAME:PATH` (also `taskrun/NAME:PATH`).
fn parse_source(source: &str) -> Result<(String, String), CliError> {
    let (name, path) = source
        .split_once(':')
        .ok_or_else(|| CliError::usage(format!("{source:?}: expected TASKRUN:PATH")))?;
    let name = name
        .strip_prefix("taskrun/")
        .or_else(|| name.strip_prefix("taskruns/"))
        .or_else(|| name.strip_prefix("tr/"))
        .unwrap_or(name);
    let path = path.trim_start_matches("./");
    let path = artifact::artifact_path(path);
    if name.is_empty() || path.is_empty() || path.starts_with('/') {
        return Err(CliError::usage(format!(
            "{source:?}: expected TASKRUN:PATH with a path relative to the task's working \
             directory"
        )));
    }
    Ok((name.to_string(), path.to_string()))
}

/// The artifact holding `path`: the artifact itself or a directory
/// artifact it is inside.
fn find<'a>(artifacts: &'a [ArtifactStatus], path: &str) -> Option<&'a ArtifactStatus> {
    artifacts
        .iter()
        .find(|a| a.path == path || path.starts_with(&format!("{}/", a.path)))
}

/// DEST itself, or inside DEST when it is an existing directory and a
/// file is copied (`cp tr:out.txt .`).
fn destination(dest: &Path, path: &str) -> PathBuf {
    let name = Path::new(path).file_name();
    match name {
        Some(name) if dest.is_dir() && !dest.join(name).is_dir() && is_file_path(path) => {
            dest.join(name)
        }
        _ => dest.to_path_buf(),
    }
}

/// A guess before download: a path with an extension is taken for a file
/// when DEST is a directory. Directories are copied into DEST.
fn is_file_path(path: &str) -> bool {
    Path::new(path).extension().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_find_their_artifact() {
        assert_eq!(
            parse_source("taskrun/build-1:./dist/app").ok(),
            Some(("build-1".into(), "dist/app".into()))
        );
        assert!(parse_source("build-1").is_err());
        assert!(parse_source("build-1:/etc/passwd").is_err());
        let artifacts = [ArtifactStatus {
            path: "dist".into(),
            digest: "sha256:x".into(),
            size: 1,
        }];
        assert!(find(&artifacts, "dist/app").is_some());
        assert!(find(&artifacts, "dist").is_some());
        assert!(find(&artifacts, "distx").is_none());
    }
}
