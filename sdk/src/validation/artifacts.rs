//! Workspaces and artifacts: digests that parse, artifact paths that stay
//! inside the run directory, and no two upstream artifacts on one path.

use super::FieldErrors;
use crate::blob::Digest;
use crate::objects::artifact::paths_overlap;
use crate::objects::{ArtifactsSpec, BlobRef, WorkflowTask};

/// Most artifact paths one task declares.
pub const MAX_ARTIFACT_PATHS: usize = 32;

pub(super) fn validate_blob_ref(blob: Option<&BlobRef>, path: &str, errs: &mut FieldErrors) {
    if let Some(blob) = blob
        && let Err(e) = Digest::parse(&blob.digest)
    {
        errs.push(format!("{path}.digest"), e.to_string());
    }
}

pub(super) fn validate_artifacts(spec: Option<&ArtifactsSpec>, path: &str, errs: &mut FieldErrors) {
    let Some(spec) = spec else {
        return;
    };
    if spec.paths.len() > MAX_ARTIFACT_PATHS {
        errs.push(
            format!("{path}.paths"),
            format!("must have at most {MAX_ARTIFACT_PATHS} paths (has {})", spec.paths.len()),
        );
    }
    for (i, p) in spec.paths.iter().enumerate() {
        let at = format!("{path}.paths[{i}]");
        let parts = std::path::Path::new(p).components();
        if p.trim_end_matches('/').is_empty() || p.contains('\0') {
            errs.push(at, format!("invalid value {p:?}: must name a file or directory"));
        } else if std::path::Path::new(p).is_absolute() {
            errs.push(
                at,
                format!("invalid value {p:?}: must be relative to the task's working directory"),
            );
        } else if parts
            .into_iter()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            errs.push(at, format!("invalid value {p:?}: must not contain `..`"));
        }
    }
    for (i, a) in spec.paths.iter().enumerate() {
        for b in &spec.paths[i + 1..] {
            if paths_overlap(a, b) {
                errs.push(
                    format!("{path}.paths[{i}]"),
                    format!("{a:?} and {b:?} overlap: declare one of them"),
                );
            }
        }
    }
}

/// A task whose dependencies declare overlapping artifacts: both would be
/// unpacked on one path in its run directory.
pub(super) fn validate_upstream_clashes(tasks: &[WorkflowTask], section: &str, errs: &mut FieldErrors) {
    let declared = |name: &str| {
        tasks
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.artifacts.as_ref())
            .map(|a| a.paths.as_slice())
            .unwrap_or_default()
    };
    for (i, task) in tasks.iter().enumerate() {
        for (j, a) in task.depends_on.iter().enumerate() {
            for b in &task.depends_on[j + 1..] {
                for pa in declared(a) {
                    if let Some(pb) = declared(b).iter().find(|pb| paths_overlap(pa, pb)) {
                        errs.push(
                            format!("{section}[{i}].dependsOn"),
                            format!(
                                "the artifacts {pa:?} of task {a:?} and {pb:?} of task {b:?} \
                                 would be unpacked on the same path for task {:?}",
                                task.name
                            ),
                        );
                    }
                }
            }
        }
    }
}
