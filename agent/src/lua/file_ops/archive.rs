//! `unarchive`: extracting an archive into a staging directory and syncing
//! the tree into place, so an unchanged archive changes nothing.

use super::*;

/// The archive formats `unarchive` knows, by file name.
pub(super) fn archive_command(src: &Path, into: &Path) -> Option<Vec<String>> {
    let name = src.file_name()?.to_string_lossy().to_ascii_lowercase();
    let (src, into) = (
        src.to_string_lossy().into_owned(),
        into.to_string_lossy().into_owned(),
    );
    let argv: &[&str] = if name.ends_with(".zip") {
        &["unzip", "-q", "-o", &src, "-d", &into]
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        &["tar", "-xzf", &src, "-C", &into]
    } else if name.ends_with(".tar") {
        &["tar", "-xf", &src, "-C", &into]
    } else {
        return None;
    };
    Some(argv.iter().map(|s| s.to_string()).collect())
}

/// Makes the tree `to` hold every file of `from` (extra files in `to`
/// stay); true when something differed.
pub(super) fn sync_tree(args: &Args, ctx: &RunCtx, from: &Path, to: &Path) -> mlua::Result<bool> {
    let mut changed = false;
    if !to.is_dir() {
        changed = true;
        if !ctx.check_mode {
            std::fs::create_dir_all(to).map_err(|e| io_fail(args, "create", to, e))?;
        }
    }
    let entries = std::fs::read_dir(from).map_err(|e| io_fail(args, "list", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_fail(args, "list", from, e))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let meta =
            std::fs::symlink_metadata(&source).map_err(|e| io_fail(args, "stat", &source, e))?;
        if meta.is_dir() {
            changed |= sync_tree(args, ctx, &source, &target)?;
        } else if meta.is_file() {
            let content = std::fs::read(&source).map_err(|e| io_fail(args, "read", &source, e))?;
            changed |= ensure_content(args, ctx, &target, &content, Some(meta.mode() & 0o7777))?;
        }
    }
    Ok(changed)
}

/// `file_ops.unarchive(src, dst)`: extracts a .tar, .tar.gz/.tgz (with the
/// `tar` command) or .zip (with `unzip`) into dst; changed when a file of
/// dst differed from the archive's.
pub(super) fn unarchive(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let src = ctx.path(&args.string(1, "src")?);
    let dst = ctx.path(&args.string(2, "dst")?);
    if !src.is_file() {
        return Err(args.fail(format!("{} is not a file", src.display())));
    }
    let staging = staging_dir(&args)?;
    let Some(argv) = archive_command(&src, &staging.0) else {
        return Err(args.fail(format!(
            "{}: unknown archive type (known: .tar, .tar.gz, .tgz, .zip)",
            src.display()
        )));
    };
    tools::run_ok(ctx, args.func(), &argv, None, None)?;
    let changed = sync_tree(&args, ctx, &staging.0, &dst)?;
    path_result(lua, ctx, changed, &dst)
}

/// A fresh directory for extracting into, removed when dropped.
pub(super) struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn staging_dir(args: &Args) -> mlua::Result<Staging> {
    let base = std::env::temp_dir();
    let name = format!(
        "sloth-unarchive-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let dir = base.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| io_fail(args, "create", &dir, e))?;
    Ok(Staging(dir))
}
