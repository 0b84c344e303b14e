//! Workspaces: `apply --workspace DIR`, `run --workspace DIR` and Lua's
//! `workflow.define("x", { workspace = "." })`. The directory is packed
//! (tar + zstd, `.slothignore` honoured, `.git` skipped), uploaded once
//! (the server is asked first) and referenced by digest.

use std::path::Path;

use serde_json::Value;
use sloth_sdk::blob::archive;
use sloth_sdk::objects::BlobRef;
use sloth_sdk::well_known::WORKSPACE_DIR_ANNOTATION;

use super::Context;
use crate::error::CliError;
use crate::manifest::Resolved;
use crate::progress::{Progress, human};

/// Packs and uploads `dir`; its reference.
pub(crate) async fn upload_dir(ctx: &Context, dir: &Path) -> Result<BlobRef, CliError> {
    let shown = dir.display().to_string();
    let scratch = tempfile::Builder::new()
        .prefix("sloth-workspace-")
        .suffix(".tar.zst")
        .tempfile()
        .map_err(|e| CliError::failed(format!("cannot create a temporary file: {e}")))?;
    let (source, out) = (dir.to_path_buf(), scratch.path().to_path_buf());
    let packed = tokio::task::spawn_blocking(move || archive::pack_workspace(&source, &out))
        .await
        .map_err(|e| CliError::failed(format!("packing {shown} failed: {e}")))?
        .map_err(|e| CliError::usage(format!("--workspace {shown}: {e}")))?;
    let progress = Progress::on_terminal("uploading workspace", packed.size);
    let callback = progress.as_ref().map(Progress::callback);
    let uploaded = ctx
        .client
        .put_blob(
            scratch.path(),
            &packed.digest,
            packed.size,
            None,
            callback.as_ref(),
        )
        .await
        .map_err(|e| {
            ctx.error(e)
                .with_context(&format!("cannot upload the workspace {shown}"))
        })?;
    if let Some(progress) = &progress {
        progress.finish();
    }
    eprintln!(
        "workspace {shown}: {} entries, {} ({}) {}",
        packed.entries,
        human(packed.size as f64),
        packed.digest,
        if uploaded {
            "uploaded"
        } else {
            "already stored"
        }
    );
    Ok(BlobRef {
        digest: packed.digest.to_string(),
        size: packed.size,
    })
}

/// `apply`: uploads `--workspace DIR` (for every Workflow, CronWorkflow
/// and TaskRun) and the workspaces Lua files declared (for theirs).
pub(crate) async fn attach(
    ctx: &Context,
    objects: &mut [Resolved],
    flag: Option<&Path>,
) -> Result<(), CliError> {
    let shared = match flag {
        Some(dir) => Some(upload_dir(ctx, dir).await?),
        None => None,
    };
    for object in objects.iter_mut() {
        let declared = take_declared_dir(&mut object.value);
        let blob = match (&shared, declared) {
            (Some(blob), _) => Some(blob.clone()),
            (None, Some(dir)) => Some(upload_dir(ctx, Path::new(&dir)).await?),
            (None, None) => None,
        };
        if let Some(blob) = blob {
            set_workspace(object, &blob)?;
        }
    }
    Ok(())
}

/// Removes the Lua file's workspace request (never sent to the server).
fn take_declared_dir(value: &mut Value) -> Option<String> {
    let annotations = value
        .get_mut("metadata")?
        .get_mut("annotations")?
        .as_object_mut()?;
    let dir = annotations.remove(WORKSPACE_DIR_ANNOTATION)?;
    dir.as_str().map(str::to_string)
}

fn set_workspace(object: &mut Resolved, blob: &BlobRef) -> Result<(), CliError> {
    let encoded = serde_json::to_value(blob)
        .map_err(|e| CliError::failed(format!("cannot encode the workspace: {e}")))?;
    let spec = match object.kind.kind {
        "Workflow" | "TaskRun" => object.value.get_mut("spec"),
        "CronWorkflow" => object
            .value
            .get_mut("spec")
            .and_then(|s| s.get_mut("workflowSpec")),
        _ => None,
    };
    if let Some(spec) = spec.and_then(Value::as_object_mut) {
        spec.insert("workspace".into(), encoded);
    }
    Ok(())
}
