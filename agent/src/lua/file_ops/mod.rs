//! `file_ops`: idempotent file management in the manner of Ansible's file
//! modules. Every function that can change the machine returns a table with
//! `changed`, changes nothing when nothing differs, and in check mode only
//! reports what it would change. Paths are relative to the working directory.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use mlua::{Lua, Table, Value};

use super::tools::{self, opt_bool, result};
use super::{Args, ModuleTable, RunCtx, check_options, opt_string_field, type_name};

mod archive;
mod edit;
#[cfg(test)]
mod tests;

use archive::unarchive;
use edit::{block_in_file, line_in_file, replace, template};

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "file_ops")?;
    m.add("file_ops.copy", copy)?;
    m.add("file_ops.move", move_file)?;
    m.add("file_ops.remove", remove)?;
    m.add("file_ops.mkdir", mkdir)?;
    m.add("file_ops.exists", exists)?;
    m.add("file_ops.stat", stat)?;
    m.add("file_ops.checksum", checksum)?;
    m.add("file_ops.chmod", chmod)?;
    m.add("file_ops.chown", chown)?;
    m.add("file_ops.write", write)?;
    m.add("file_ops.append", append)?;
    m.add("file_ops.line_in_file", line_in_file)?;
    m.add("file_ops.block_in_file", block_in_file)?;
    m.add("file_ops.replace", replace)?;
    m.add("file_ops.template", template)?;
    m.add("file_ops.unarchive", unarchive)?;
    // sloth-runner's (Ansible's) names for the same functions.
    m.aliases(&[
        ("lineinfile", "line_in_file"),
        ("blockinfile", "block_in_file"),
        ("file_exists", "exists"),
        ("rm", "remove"),
    ])?;
    Ok(m.into_table())
}

fn io_fail(args: &Args, what: &str, path: &Path, e: std::io::Error) -> mlua::Error {
    args.fail(format!("cannot {what} {}: {e}", path.display()))
}

/// The content of `path`, None when it does not exist.
fn read_opt(args: &Args, path: &Path) -> mlua::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_fail(args, "read", path, e)),
    }
}

/// A mode given as an octal string ("0644", "755") or a number (0o644 = 420).
fn parse_mode(func: &str, what: &str, value: &Value) -> mlua::Result<Option<u32>> {
    let mode = match value {
        Value::Nil => return Ok(None),
        Value::String(s) => u32::from_str_radix(s.to_str()?.trim_start_matches("0o"), 8).ok(),
        Value::Integer(i) => u32::try_from(*i).ok(),
        other => {
            return Err(super::fail(
                func,
                format!(
                    "{what} must be an octal string like \"0644\", got {}",
                    type_name(other)
                ),
            ));
        }
    };
    match mode.filter(|m| *m <= 0o7777) {
        Some(m) => Ok(Some(m)),
        None => Err(super::fail(
            func,
            format!("{what} must be an octal mode like \"0644\""),
        )),
    }
}

fn opt_mode(args: &Args, opts: Option<&Table>) -> mlua::Result<Option<u32>> {
    match opts {
        Some(o) => parse_mode(args.func(), "option mode", &o.get::<Value>("mode")?),
        None => Ok(None),
    }
}

/// Makes `path` hold `content` (and `mode`); true when something differed.
fn ensure_content(
    args: &Args,
    ctx: &RunCtx,
    path: &Path,
    content: &[u8],
    mode: Option<u32>,
) -> mlua::Result<bool> {
    let differs = read_opt(args, path)?.as_deref() != Some(content);
    if differs && !ctx.check_mode {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_fail(args, "create", parent, e))?;
        }
        std::fs::write(path, content).map_err(|e| io_fail(args, "write", path, e))?;
    }
    let mode_changed = match mode {
        Some(mode) => ensure_mode(args, ctx, path, mode)?,
        None => false,
    };
    Ok(differs || mode_changed)
}

/// Sets the permission bits of `path`; true when they differed (a path
/// that does not exist yet in check mode differs).
fn ensure_mode(args: &Args, ctx: &RunCtx, path: &Path, mode: u32) -> mlua::Result<bool> {
    let current = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(_) if ctx.check_mode => return Ok(true),
        Err(e) => return Err(io_fail(args, "stat", path, e)),
    };
    if current == mode {
        return Ok(false);
    }
    if !ctx.check_mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io_fail(args, "chmod", path, e))?;
    }
    Ok(true)
}

fn content_arg(args: &Args, n: usize) -> mlua::Result<Vec<u8>> {
    match args.get(n) {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Integer(i) => Ok(i.to_string().into_bytes()),
        Value::Number(x) => Ok(x.to_string().into_bytes()),
        other => Err(args.fail(format!(
            "argument {n} (content) must be a string, got {}",
            type_name(&other)
        ))),
    }
}

fn path_result(lua: &Lua, ctx: &RunCtx, changed: bool, path: &Path) -> mlua::Result<Table> {
    let t = result(lua, ctx, changed)?;
    t.set("path", path.to_string_lossy().into_owned())?;
    Ok(t)
}

/// `file_ops.copy(src, dst, {mode})`: dst gets src's content.
fn copy(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let src = ctx.path(&args.string(1, "src")?);
    let mut dst = ctx.path(&args.string(2, "dst")?);
    let opts = args.options(3, &["mode"])?;
    let mode = opt_mode(&args, opts.as_ref())?;
    if dst.is_dir()
        && let Some(name) = src.file_name()
    {
        dst = dst.join(name);
    }
    let content = std::fs::read(&src).map_err(|e| io_fail(&args, "read", &src, e))?;
    let changed = ensure_content(&args, ctx, &dst, &content, mode)?;
    let t = path_result(lua, ctx, changed, &dst)?;
    t.set("src", src.to_string_lossy().into_owned())?;
    t.set("dest", dst.to_string_lossy().into_owned())?;
    t.set("size", content.len())?;
    Ok(t)
}

/// `file_ops.move(src, dst)`: renames; unchanged when src is gone and dst there.
fn move_file(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let src = ctx.path(&args.string(1, "src")?);
    let dst = ctx.path(&args.string(2, "dst")?);
    let src_exists = std::fs::symlink_metadata(&src).is_ok();
    if !src_exists {
        if std::fs::symlink_metadata(&dst).is_ok() {
            return path_result(lua, ctx, false, &dst);
        }
        return Err(args.fail(format!(
            "neither {} nor {} exists",
            src.display(),
            dst.display()
        )));
    }
    if !ctx.check_mode {
        std::fs::rename(&src, &dst).map_err(|e| {
            args.fail(format!(
                "cannot move {} to {}: {e}",
                src.display(),
                dst.display()
            ))
        })?;
    }
    path_result(lua, ctx, true, &dst)
}

/// `file_ops.remove(path)`: a file or a whole tree; changed when it existed.
fn remove(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = ctx.path(&args.string(1, "path")?);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return path_result(lua, ctx, false, &path);
        }
        Err(e) => return Err(io_fail(&args, "remove", &path, e)),
    };
    if !ctx.check_mode {
        let removed = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| io_fail(&args, "remove", &path, e))?;
    }
    path_result(lua, ctx, true, &path)
}

/// `file_ops.mkdir(path, {mode})`: with its parents (mkdir -p).
fn mkdir(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = ctx.path(&args.string(1, "path")?);
    let opts = args.options(2, &["mode"])?;
    let mode = opt_mode(&args, opts.as_ref())?;
    let created = !path.is_dir();
    if created && !ctx.check_mode {
        std::fs::create_dir_all(&path).map_err(|e| io_fail(&args, "create", &path, e))?;
    }
    let mode_changed = match mode {
        Some(mode) => ensure_mode(&args, ctx, &path, mode)?,
        None => false,
    };
    path_result(lua, ctx, created || mode_changed, &path)
}

fn exists(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<bool> {
    let path = ctx.path(&args.string(1, "path")?);
    Ok(std::fs::symlink_metadata(path).is_ok())
}

fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

fn group_name(gid: u32) -> Option<String> {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

/// `file_ops.stat(path)`: `{exists, is_file, is_dir, is_symlink, size,
/// mode ("0644"), uid, gid, owner, group, mtime}`.
fn stat(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = ctx.path(&args.string(1, "path")?);
    let t = lua.create_table()?;
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            t.set("exists", false)?;
            return Ok(t);
        }
        Err(e) => return Err(io_fail(&args, "stat", &path, e)),
    };
    t.set("exists", true)?;
    t.set("is_file", meta.is_file())?;
    t.set("is_dir", meta.is_dir())?;
    t.set("is_symlink", meta.file_type().is_symlink())?;
    t.set("size", meta.len())?;
    t.set("mode", format!("{:04o}", meta.mode() & 0o7777))?;
    t.set("uid", meta.uid())?;
    t.set("gid", meta.gid())?;
    t.set("owner", user_name(meta.uid()))?;
    t.set("group", group_name(meta.gid()))?;
    t.set("mtime", meta.mtime())?;
    Ok(t)
}

/// The sha256 of `bytes` as lowercase hex.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `file_ops.checksum(path)`: sha256, lowercase hex.
fn checksum(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<String> {
    let path = ctx.path(&args.string(1, "path")?);
    let algorithm = args.opt_string(2, "algorithm")?;
    if algorithm.as_deref().is_some_and(|a| a != "sha256") {
        return Err(args.fail("argument 2 (algorithm) must be \"sha256\""));
    }
    let bytes = std::fs::read(&path).map_err(|e| io_fail(&args, "read", &path, e))?;
    Ok(sha256_hex(&bytes))
}

/// `file_ops.chmod(path, mode)`.
fn chmod(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = ctx.path(&args.string(1, "path")?);
    let Some(mode) = parse_mode(args.func(), "argument 2 (mode)", &args.get(2))? else {
        return Err(args.fail("argument 2 (mode) must be an octal string like \"0644\", got nil"));
    };
    if !path.exists() {
        return Err(args.fail(format!("{} does not exist", path.display())));
    }
    let changed = ensure_mode(&args, ctx, &path, mode)?;
    path_result(lua, ctx, changed, &path)
}

/// `file_ops.chown(path, owner, [group])`: names or numeric ids.
fn chown(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = ctx.path(&args.string(1, "path")?);
    let owner = args.opt_string(2, "owner")?;
    let group = args.opt_string(3, "group")?;
    let uid = match &owner {
        None => None,
        Some(name) => Some(match name.parse::<u32>() {
            Ok(id) => id,
            Err(_) => nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .map(|u| u.uid.as_raw())
                .ok_or_else(|| args.fail(format!("argument 2 (owner): no user {name:?}")))?,
        }),
    };
    let gid = match &group {
        None => None,
        Some(name) => Some(match name.parse::<u32>() {
            Ok(id) => id,
            Err(_) => nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
                .ok_or_else(|| args.fail(format!("argument 3 (group): no group {name:?}")))?,
        }),
    };
    let meta = std::fs::metadata(&path).map_err(|e| io_fail(&args, "stat", &path, e))?;
    let changed = uid.is_some_and(|u| u != meta.uid()) || gid.is_some_and(|g| g != meta.gid());
    if changed && !ctx.check_mode {
        std::os::unix::fs::chown(&path, uid, gid).map_err(|e| io_fail(&args, "chown", &path, e))?;
    }
    path_result(lua, ctx, changed, &path)
}

/// `file_ops.write(path, content, {mode})`.
fn write(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = ctx.path(&args.string(1, "path")?);
    let content = content_arg(&args, 2)?;
    let opts = args.options(3, &["mode"])?;
    let mode = opt_mode(&args, opts.as_ref())?;
    let changed = ensure_content(&args, ctx, &path, &content, mode)?;
    path_result(lua, ctx, changed, &path)
}

/// `file_ops.append(path, content)`: always a change unless content is empty.
fn append(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = ctx.path(&args.string(1, "path")?);
    let content = content_arg(&args, 2)?;
    let changed = !content.is_empty();
    if changed && !ctx.check_mode {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&content))
            .map_err(|e| io_fail(&args, "append to", &path, e))?;
    }
    path_result(lua, ctx, changed, &path)
}
