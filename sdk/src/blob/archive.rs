//! tar + zstd archives of workspaces and artifacts, and their safe
//! unpacking: entries with absolute paths or `..`, links pointing outside
//! the target and special files are refused; modes are kept, owners are not.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use super::Digest;
use super::digest::HashingWriter;

/// The ignore file of a workspace (gitignore syntax).
pub const IGNORE_FILE: &str = ".slothignore";
/// zstd's default level: fast, and most of the gain.
const ZSTD_LEVEL: i32 = 3;

/// A packed archive: its digest and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packed {
    /// The archive's content address.
    pub digest: Digest,
    /// The archive's size in bytes (compressed).
    pub size: u64,
    /// Files and directories in it.
    pub entries: u64,
}

/// Why packing or unpacking an archive failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error of the file system.
        source: std::io::Error,
    },
    /// A directory to pack could not be walked (or its `.slothignore` read).
    #[error("cannot walk {path}: {message}")]
    Walk {
        /// The directory.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// An entry that would write outside the target (absolute path, `..`, a
    /// link leading out) or is a special file; nothing of it is written.
    #[error("refused archive entry {entry:?}: {why}")]
    Unsafe {
        /// The entry's path as the archive gives it.
        entry: String,
        /// Why it is refused.
        why: String,
    },
    /// The bytes are not a complete tar + zstd archive.
    #[error("the archive is corrupt or truncated: {0}")]
    Corrupt(String),
    /// A path asked for is not in the archive.
    #[error("{0:?} is not in the archive")]
    Missing(String),
}

/// The archive's bytes do not decode (bad zstd or tar, or cut short).
fn corrupt(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Corrupt(e.to_string())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Packs the directory `dir` (a workspace) into `out`: `.slothignore` files
/// are honoured (gitignore syntax) and `.git` is skipped. Entries are in
/// name order with owners cleared, so the same files give the same digest.
pub fn pack_workspace(dir: &Path, out: &Path) -> Result<Packed, ArchiveError> {
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    if !meta.is_dir() {
        return Err(ArchiveError::Walk {
            path: dir.display().to_string(),
            message: "not a directory".into(),
        });
    }
    let paths = walk_sorted(dir, Walk::Workspace)?;
    write_archive(dir, &paths, out)
}

/// Packs `path` (a file or a directory, relative to `root`) with everything
/// under it, named by its path relative to `root`: a task's artifact.
pub fn pack_path(root: &Path, path: &str, out: &Path) -> Result<Packed, ArchiveError> {
    let relative = safe_relative(path).map_err(|why| ArchiveError::Unsafe {
        entry: path.to_string(),
        why,
    })?;
    let full = root.join(&relative);
    let meta = std::fs::symlink_metadata(&full).map_err(io(&full))?;
    let mut paths = vec![relative.clone()];
    if meta.is_dir() {
        for entry in walk_sorted(&full, Walk::Everything)? {
            paths.push(relative.join(entry));
        }
    }
    write_archive(root, &paths, out)
}

/// What a directory walk leaves out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// A workspace: what `.slothignore` files name, and `.git`.
    Workspace,
    /// An artifact: nothing.
    Everything,
}

/// The entries under `dir`, relative to it, in name order (no links
/// followed), so that the same files give the same archive.
fn walk_sorted(dir: &Path, what: Walk) -> Result<Vec<PathBuf>, ArchiveError> {
    let mut builder = ignore::WalkBuilder::new(dir);
    builder
        .standard_filters(false)
        .hidden(false)
        .parents(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b));
    if what == Walk::Workspace {
        builder
            .add_custom_ignore_filename(IGNORE_FILE)
            .filter_entry(|e| e.file_name() != ".git");
    }
    let mut paths = Vec::new();
    for entry in builder.build() {
        let entry = entry.map_err(|e| ArchiveError::Walk {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        if entry.depth() == 0 {
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(dir)
            .map(Path::to_path_buf)
            .map_err(|e| ArchiveError::Walk {
                path: entry.path().display().to_string(),
                message: e.to_string(),
            })?;
        paths.push(relative);
    }
    Ok(paths)
}

fn write_archive(root: &Path, paths: &[PathBuf], out: &Path) -> Result<Packed, ArchiveError> {
    let file = File::create(out).map_err(io(out))?;
    let hashing = HashingWriter::new(BufWriter::new(file));
    let encoder = zstd::Encoder::new(hashing, ZSTD_LEVEL).map_err(io(out))?;
    let mut builder = tar::Builder::new(encoder);
    builder.follow_symlinks(false);
    for relative in paths {
        let full = root.join(relative);
        let meta = std::fs::symlink_metadata(&full).map_err(io(&full))?;
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        // Owners are not kept: the agent's user owns what it unpacks.
        header.set_uid(0);
        header.set_gid(0);
        let _ = header.set_username("");
        let _ = header.set_groupname("");
        let kind = meta.file_type();
        if kind.is_dir() {
            header.set_size(0);
            builder
                .append_data(&mut header, relative, std::io::empty())
                .map_err(io(out))?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&full).map_err(io(&full))?;
            header.set_size(0);
            builder
                .append_link(&mut header, relative, &target)
                .map_err(io(out))?;
        } else if kind.is_file() {
            let reader = File::open(&full).map_err(io(&full))?;
            builder
                .append_data(&mut header, relative, BufReader::new(reader))
                .map_err(io(&full))?;
        }
        // Sockets, fifos and devices are not workspace content.
    }
    let encoder = builder.into_inner().map_err(io(out))?;
    let hashing = encoder.finish().map_err(io(out))?;
    let (mut writer, hasher) = hashing.into_parts();
    writer.flush().map_err(io(out))?;
    let size = hasher.bytes();
    Ok(Packed {
        digest: hasher.finish(),
        size,
        entries: paths.len() as u64,
    })
}

/// `path` as a relative path of normal components only.
fn safe_relative(path: &str) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("it contains `..`".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("it is an absolute path".into());
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err("it names no file".into());
    }
    Ok(out)
}

/// What an unpack wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Files and directories written.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Unpacks the archive `archive` into `dest` (created if missing).
pub fn unpack(archive: &Path, dest: &Path) -> Result<Unpacked, ArchiveError> {
    unpack_selected(archive, None, dest)
}

/// Unpacks the entries of `archive` at or under `select` (kubectl cp
/// style): a file selected is written to `dest` itself, a directory's
/// content goes into `dest`. With no selection, everything into `dest`.
pub fn unpack_selected(
    archive: &Path,
    select: Option<&str>,
    dest: &Path,
) -> Result<Unpacked, ArchiveError> {
    let select = match select {
        Some(s) => Some(safe_relative(s).map_err(|why| ArchiveError::Unsafe {
            entry: s.to_string(),
            why,
        })?),
        None => None,
    };
    let mut tar = open_archive(archive)?;
    let mut done = Unpacked::default();
    // Directory modes are set last: a read-only directory would refuse
    // the files that go into it.
    let mut dir_modes = Vec::new();
    let entries = tar.entries().map_err(corrupt)?;
    for entry in entries {
        let mut entry = entry.map_err(corrupt)?;
        let raw = entry
            .path()
            .map_err(corrupt)?
            .to_string_lossy()
            .into_owned();
        let relative = safe_relative(&raw).map_err(|why| ArchiveError::Unsafe {
            entry: raw.clone(),
            why,
        })?;
        let Some(target_rel) = selected(&relative, select.as_deref()) else {
            continue;
        };
        let target = if target_rel.as_os_str().is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(&target_rel)
        };
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        let kind = entry.header().entry_type();
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        no_links_between(dest, &target, &raw)?;
        match kind {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target).map_err(io(&target))?;
                dir_modes.push((target, mode));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_existing(&target)?;
                let mut out = File::create(&target).map_err(io(&target))?;
                let bytes = std::io::copy(&mut entry, &mut out).map_err(corrupt)?;
                set_mode(&target, mode)?;
                done.bytes += bytes;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(corrupt)?
                    .ok_or_else(|| ArchiveError::Corrupt(format!("link {raw:?} has no target")))?;
                link_stays_inside(&relative, &link).map_err(|why| ArchiveError::Unsafe {
                    entry: raw.clone(),
                    why,
                })?;
                remove_existing(&target)?;
                std::os::unix::fs::symlink(&link, &target).map_err(io(&target))?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(corrupt)?
                    .ok_or_else(|| ArchiveError::Corrupt(format!("link {raw:?} has no target")))?;
                let source =
                    safe_relative(&link.to_string_lossy()).map_err(|why| ArchiveError::Unsafe {
                        entry: raw.clone(),
                        why: format!("hard link target {why}"),
                    })?;
                let Some(source_rel) = selected(&source, select.as_deref()) else {
                    continue;
                };
                let source = dest.join(source_rel);
                no_links_between(dest, &source, &raw)?;
                remove_existing(&target)?;
                std::fs::hard_link(&source, &target).map_err(io(&target))?;
            }
            other => {
                return Err(ArchiveError::Unsafe {
                    entry: raw,
                    why: format!("entries of type {other:?} are not unpacked"),
                });
            }
        }
        done.entries += 1;
    }
    for (dir, mode) in dir_modes.into_iter().rev() {
        set_mode(&dir, mode | 0o700)?;
    }
    if done.entries == 0
        && let Some(select) = select
    {
        return Err(ArchiveError::Missing(select.display().to_string()));
    }
    Ok(done)
}

/// The tar stream inside the zstd file `archive`.
fn open_archive(archive: &Path) -> Result<tar::Archive<impl Read>, ArchiveError> {
    let file = File::open(archive).map_err(io(archive))?;
    let decoder = zstd::Decoder::new(BufReader::new(file)).map_err(corrupt)?;
    Ok(tar::Archive::new(decoder))
}

/// Where `relative` goes relative to the destination, when selected.
fn selected(relative: &Path, select: Option<&Path>) -> Option<PathBuf> {
    match select {
        None => Some(relative.to_path_buf()),
        Some(select) => relative.strip_prefix(select).ok().map(Path::to_path_buf),
    }
}

/// Refuses to write through a symbolic link an earlier entry made (or one
/// already in `dest`) between `dest` and `target`.
fn no_links_between(dest: &Path, target: &Path, entry: &str) -> Result<(), ArchiveError> {
    let Ok(rest) = target.strip_prefix(dest) else {
        return Ok(());
    };
    let mut at = dest.to_path_buf();
    let parts: Vec<_> = rest.components().collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        at.push(part);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(ArchiveError::Unsafe {
                entry: entry.to_string(),
                why: format!("it would be written through the link {}", at.display()),
            });
        }
    }
    Ok(())
}

/// A link at `entry` pointing to `link` must resolve inside the archive's
/// root (lexically, from the link's own directory).
fn link_stays_inside(entry: &Path, link: &Path) -> Result<(), String> {
    if link.is_absolute() {
        return Err(format!("it links to the absolute path {}", link.display()));
    }
    let mut depth: i64 = entry.components().count() as i64 - 1;
    for component in link.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err("it links to an absolute path".into());
            }
        }
        if depth < 0 {
            return Err(format!(
                "it links to {}, outside the directory it is unpacked in",
                link.display()
            ));
        }
    }
    Ok(())
}

fn remove_existing(target: &Path) -> Result<(), ArchiveError> {
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => Err(ArchiveError::Unsafe {
            entry: target.display().to_string(),
            why: "a directory is in the way of a file".into(),
        }),
        Ok(_) => std::fs::remove_file(target).map_err(io(target)),
        Err(_) => Ok(()),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ArchiveError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

/// Reads a whole small archive's file list (tests, `cp` messages).
pub fn list(archive: &Path) -> Result<Vec<String>, ArchiveError> {
    let mut tar = open_archive(archive)?;
    let mut names = Vec::new();
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        names.push(
            entry
                .path()
                .map_err(corrupt)?
                .to_string_lossy()
                .into_owned(),
        );
        // Drain, so that a truncated archive shows as corrupt.
        std::io::copy(&mut entry, &mut std::io::sink()).map_err(corrupt)?;
    }
    Ok(names)
}

/// Writes raw tar bytes compressed, for tests that build hostile archives
/// by hand.
pub fn compress(tar_bytes: &[u8], out: &Path) -> Result<(), ArchiveError> {
    let file = File::create(out).map_err(io(out))?;
    let mut encoder = zstd::Encoder::new(file, ZSTD_LEVEL).map_err(io(out))?;
    encoder.write_all(tar_bytes).map_err(io(out))?;
    encoder.finish().map_err(io(out))?;
    Ok(())
}

/// The digest and size of a file.
pub fn digest_file(path: &Path) -> Result<(Digest, u64), ArchiveError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut hasher = super::Hasher::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let size = hasher.bytes();
    Ok((hasher.finish(), size))
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
