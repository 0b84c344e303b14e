//! Writing a set of certificate and key files all or nothing: every file is
//! first written to a temporary file in the target directory, then renamed
//! into place, so no file is ever half-written.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::error::CliError;

/// Mode of private key files.
pub(super) const KEY_MODE: u32 = 0o600;
/// Mode of certificate files.
pub(super) const CERT_MODE: u32 = 0o644;
/// Mode of a directory created for the files.
const DIR_MODE: u32 = 0o700;

/// One file to write.
pub(super) struct Output {
    pub path: PathBuf,
    pub contents: String,
    pub mode: u32,
}

/// Fails with exit 2 naming the first of `paths` that exists, unless `force`.
pub(super) fn refuse_existing(paths: &[&Path], force: bool) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    for path in paths {
        if fs::symlink_metadata(path).is_ok() {
            return Err(CliError::usage(format!(
                "{} already exists (use --force to overwrite it); nothing written",
                path.display()
            ))
            .into());
        }
    }
    Ok(())
}

/// Creates `dir` (mode 0700) unless it exists.
pub(super) fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(DIR_MODE);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))
}

/// Writes every output: all to temporary files first (removed again on any
/// error), then each renamed over its target.
pub(super) fn write_all(outputs: &[Output]) -> anyhow::Result<()> {
    let mut temps: Vec<PathBuf> = Vec::with_capacity(outputs.len());
    let written = outputs.iter().try_for_each(|out| {
        let temp = write_temp(out)?;
        temps.push(temp);
        Ok::<_, anyhow::Error>(())
    });
    if let Err(e) = written {
        remove_all(&temps);
        return Err(e);
    }
    for (i, (out, temp)) in outputs.iter().zip(&temps).enumerate() {
        if let Err(e) = fs::rename(temp, &out.path) {
            remove_all(&temps[i..]);
            return Err(e).with_context(|| format!("cannot write {}", out.path.display()));
        }
    }
    if let Some(dir) = outputs.first().and_then(|o| o.path.parent()) {
        sync_dir(dir);
    }
    Ok(())
}

/// Writes `out` to a new temporary file next to its target; returns its path.
fn write_temp(out: &Output) -> anyhow::Result<PathBuf> {
    let dir = out.path.parent().unwrap_or(Path::new("."));
    let name = out
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempt = 0u32;
    loop {
        let temp = dir.join(format!(".{name}.{}.{attempt}.tmp", std::process::id()));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            // Never readable by others, not even for a moment.
            options.mode(KEY_MODE);
        }
        let mut file = match options.open(&temp) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
                continue;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create {}", temp.display()));
            }
        };
        let result = (|| {
            file.write_all(out.contents.as_bytes())?;
            set_mode(&file, out.mode)?;
            file.sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&temp);
            return Err(e).with_context(|| format!("cannot write {}", temp.display()));
        }
        return Ok(temp);
    }
}

#[cfg(unix)]
fn set_mode(file: &fs::File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_file: &fs::File, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

fn remove_all(paths: &[PathBuf]) {
    for path in paths {
        let _ = fs::remove_file(path);
    }
}

/// Makes the renames durable (best effort).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}
