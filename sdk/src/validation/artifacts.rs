//! Workspaces and artifacts: digests that parse, artifact paths that stay
//! inside the run directory, and no two upstream artifacts on one path.

use std::collections::HashMap;

use super::FieldErrors;
use crate::blob::Digest;
use crate::objects::artifact::paths_overlap;
use crate::objects::{ArtifactsSpec, BlobRef, WorkflowTask};

/// Most artifact paths one task declares.
pub(super) const MAX_ARTIFACT_PATHS: usize = 32;

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
            format!(
                "must have at most {MAX_ARTIFACT_PATHS} paths (has {})",
                spec.paths.len()
            ),
        );
    }
    for (i, p) in spec.paths.iter().enumerate() {
        let at = format!("{path}.paths[{i}]");
        let parts = std::path::Path::new(p).components();
        if p.trim_end_matches('/').is_empty() || p.contains('\0') {
            errs.push(
                at,
                format!("invalid value {p:?}: must name a file or directory"),
            );
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
pub(super) fn validate_upstream_clashes(
    tasks: &[WorkflowTask],
    section: &str,
    errs: &mut FieldErrors,
) {
    // Indexed once (first declaration wins, as a scan would find it): every
    // status write of a Workflow is validated, and scanning the tasks per
    // pair of dependencies cost seconds for 1,000 tasks in layers of 50.
    let mut declared: HashMap<&str, &[String]> = HashMap::with_capacity(tasks.len());
    for task in tasks {
        let paths = task
            .artifacts
            .as_ref()
            .map_or(&[][..], |a| a.paths.as_slice());
        declared.entry(task.name.as_str()).or_insert(paths);
    }
    let declared = |name: &str| declared.get(name).copied().unwrap_or_default();
    for (i, task) in tasks.iter().enumerate() {
        // Only dependencies that declare artifacts can clash; the common
        // workflow has none and skips the pairs entirely.
        let with_artifacts: Vec<&String> = task
            .depends_on
            .iter()
            .filter(|dep| !declared(dep).is_empty())
            .collect();
        for (k, a) in with_artifacts.iter().enumerate() {
            for b in &with_artifacts[k + 1..] {
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

#[cfg(test)]
mod tests {
    use crate::objects::{ArtifactsSpec, BlobRef, WorkflowSpec, WorkflowTask};
    use crate::resource::Object;
    use crate::validation::Validate;

    fn task(name: &str, deps: &[&str], artifacts: &[&str]) -> WorkflowTask {
        WorkflowTask {
            artifacts: (!artifacts.is_empty()).then(|| ArtifactsSpec {
                paths: artifacts.iter().map(|p| p.to_string()).collect(),
            }),
            ..crate::dag::tests::task(name, deps)
        }
    }

    fn errors(tasks: Vec<WorkflowTask>, workspace: Option<&str>) -> String {
        let mut wf = Object::new(
            "wf",
            WorkflowSpec {
                tasks,
                workspace: workspace.map(|d| BlobRef {
                    digest: d.into(),
                    size: 1,
                }),
                ..WorkflowSpec::default()
            },
        );
        wf.metadata.namespace = "default".into();
        match WorkflowSpec::validate(&wf) {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    /// Every write of a Workflow is validated, status writes included: the
    /// clash check once scanned all tasks per pair of dependencies, about 3 s
    /// per write (release build) for the bench's 1,000 tasks in layers of
    /// 50, and minutes unoptimised. Indexed, it is milliseconds; the bound
    /// leaves room for a loaded machine and a debug build.
    #[test]
    fn a_wide_layered_workflow_validates_quickly() {
        let width = 50;
        let name = |layer: usize, j: usize| format!("l{layer}-t{j}");
        let tasks: Vec<WorkflowTask> = (0..1000 / width)
            .flat_map(|layer| {
                (0..width).map(move |j| {
                    let deps: Vec<String> = if layer == 0 {
                        Vec::new()
                    } else {
                        (0..width).map(|k| name(layer - 1, k)).collect()
                    };
                    let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
                    task(&name(layer, j), &deps, &[])
                })
            })
            .collect();
        let wf = Object::new(
            "wf",
            WorkflowSpec {
                tasks,
                ..WorkflowSpec::default()
            },
        );
        let started = std::time::Instant::now();
        assert_eq!(WorkflowSpec::validate(&wf), Ok(()));
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(10),
            "validating took {took:?}"
        );
    }

    #[test]
    fn upstream_artifacts_on_one_path_are_refused_at_apply_time() {
        let ok = errors(
            vec![
                task("a", &[], &["out/a.txt"]),
                task("b", &[], &["out/b.txt"]),
                task("c", &["a", "b"], &[]),
            ],
            None,
        );
        assert_eq!(ok, "");
        let clash = errors(
            vec![
                task("a", &[], &["dist/"]),
                task("b", &[], &["dist/app"]),
                task("c", &["a", "b"], &[]),
            ],
            None,
        );
        assert!(clash.contains("spec.tasks[2].dependsOn"), "{clash}");
        assert!(clash.contains("\"dist/\" of task \"a\""), "{clash}");
    }

    #[test]
    fn artifact_paths_stay_inside_and_digests_parse() {
        let bad = errors(
            vec![task("a", &[], &["/etc/passwd", "../up", "ok.txt"])],
            None,
        );
        assert!(bad.contains("spec.tasks[0].artifacts.paths[0]"), "{bad}");
        assert!(bad.contains("spec.tasks[0].artifacts.paths[1]"), "{bad}");
        assert!(!bad.contains("paths[2]"), "{bad}");
        let bad = errors(vec![task("a", &[], &[])], Some("sha256:nothex"));
        assert!(bad.contains("spec.workspace.digest"), "{bad}");
    }
}
