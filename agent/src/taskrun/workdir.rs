//! A run's directories: the fresh run directory and the working directory
//! inside it (or under a root the agent allows).

use std::path::{Path, PathBuf};

/// The directory the script runs in: the run directory, or `spec.workdir`
/// inside it; an absolute workdir only under a root the agent allows
/// (--allow-workdir-root). Admission refuses `..`; it is checked here
/// again, as the agent is the last line.
pub(super) fn cwd_for(
    run_dir: &Path,
    workdir: Option<&str>,
    roots: &[PathBuf],
) -> Result<PathBuf, String> {
    let Some(w) = workdir.filter(|w| !w.is_empty()) else {
        return Ok(run_dir.to_path_buf());
    };
    let path = Path::new(w);
    if path
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(format!("workdir {w:?} must not contain `..`"));
    }
    if !path.is_absolute() {
        return Ok(run_dir.join(path));
    }
    if roots.iter().any(|root| path.starts_with(root)) {
        return Ok(path.to_path_buf());
    }
    Err(format!(
        "workdir {w:?} is outside the TaskRun's run directory: this agent allows absolute \
         workdirs only under {} (sloth-agent --allow-workdir-root DIR)",
        if roots.is_empty() {
            "no root".to_string()
        } else {
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    ))
}

/// A fresh run directory (an earlier TaskRun of the same name may have left
/// one) and the working directory.
pub(super) async fn prepare(run_dir: &Path, cwd: &Path) -> Result<(), String> {
    match tokio::fs::remove_dir_all(run_dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(format!(
                "cannot clear the run directory {}: {e}",
                run_dir.display()
            ));
        }
    }
    for dir in [run_dir, cwd] {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("cannot create the directory {}: {e}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdir_stays_in_the_run_dir_or_an_allowed_root() {
        let run = Path::new("/w/default/t1");
        let none: &[PathBuf] = &[];
        assert_eq!(cwd_for(run, None, none).as_deref(), Ok(run));
        assert_eq!(cwd_for(run, Some(""), none).as_deref(), Ok(run));
        assert_eq!(
            cwd_for(run, Some("src/app"), none).as_deref(),
            Ok(Path::new("/w/default/t1/src/app"))
        );
        let e = cwd_for(run, Some("../../../../etc"), none).expect_err("escape");
        assert!(e.contains(".."), "{e}");
        let e = cwd_for(run, Some("/etc"), none).expect_err("absolute");
        assert!(e.contains("--allow-workdir-root"), "{e}");
        let roots = [PathBuf::from("/srv/builds")];
        assert_eq!(
            cwd_for(run, Some("/srv/builds/x"), &roots).as_deref(),
            Ok(Path::new("/srv/builds/x"))
        );
        assert!(cwd_for(run, Some("/srv/buildsx"), &roots).is_err());
        assert!(cwd_for(run, Some("/srv/builds/../etc"), &roots).is_err());
    }
}
