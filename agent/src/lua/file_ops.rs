//! `file_ops`: idempotent file management in the manner of Ansible's file
//! modules. Every function that can change the machine returns a table with
//! `changed`, changes nothing when nothing differs, and in check mode only
//! reports what it would change. Paths are relative to the working directory.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use mlua::{Lua, Table, Value};

use super::exec::check_options;
use super::tools::{self, opt_bool, register, result};
use super::{Args, RunCtx, opt_string_field, type_name};

pub fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let t = register!(lua, ctx, "file_ops", {
        "copy" => copy,
        "move" => move_file,
        "remove" => remove,
        "mkdir" => mkdir,
        "exists" => exists,
        "stat" => stat,
        "checksum" => checksum,
        "chmod" => chmod,
        "chown" => chown,
        "write" => write,
        "append" => append,
        "line_in_file" => line_in_file,
        "block_in_file" => block_in_file,
        "replace" => replace,
        "template" => template,
        "unarchive" => unarchive,
    });
    // sloth-runner's (Ansible's) names for the same functions.
    for (alias, name) in [
        ("lineinfile", "line_in_file"),
        ("blockinfile", "block_in_file"),
        ("file_exists", "exists"),
        ("rm", "remove"),
    ] {
        t.set(alias, t.get::<mlua::Function>(name)?)?;
    }
    Ok(t)
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
    let opts = args.opt_table(3, "options")?;
    check_options(args.func(), opts.as_ref(), &["mode"])?;
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
    let opts = args.opt_table(2, "options")?;
    check_options(args.func(), opts.as_ref(), &["mode"])?;
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
pub fn sha256_hex(bytes: &[u8]) -> String {
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
    let opts = args.opt_table(3, "options")?;
    check_options(args.func(), opts.as_ref(), &["mode"])?;
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

fn regex_of(func: &str, what: &str, pattern: &str) -> mlua::Result<regex::Regex> {
    regex::Regex::new(pattern)
        .map_err(|e| super::fail(func, format!("{what} is not a valid regex: {e}")))
}

/// Text files as lines; a final newline is kept by [`join_lines`].
fn split_lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

fn join_lines(lines: &[String]) -> String {
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// `state` option: "present" (default) or "absent".
fn present(args: &Args, opts: &Table) -> mlua::Result<bool> {
    match opt_string_field(args.func(), Some(opts), "state")?.as_deref() {
        None | Some("present") => Ok(true),
        Some("absent") => Ok(false),
        Some(other) => Err(args.fail(format!(
            "option state must be \"present\" or \"absent\", got {other:?}"
        ))),
    }
}

/// The lines of `path` after ensuring `line` (or the lines matching
/// `regexp`) present or absent, as Ansible's lineinfile does.
pub fn edit_lines(
    lines: &[String],
    line: Option<&str>,
    regexp: Option<&regex::Regex>,
    present: bool,
) -> Vec<String> {
    let matches = |l: &str| match regexp {
        Some(re) => re.is_match(l),
        None => line == Some(l),
    };
    if !present {
        return lines.iter().filter(|l| !matches(l)).cloned().collect();
    }
    let Some(line) = line else {
        return lines.to_vec();
    };
    let mut out = lines.to_vec();
    // The last matching line is replaced; none matching: appended (unless
    // the exact line is already there).
    match out.iter().rposition(|l| matches(l)) {
        Some(i) => out[i] = line.to_string(),
        None if out.iter().any(|l| l == line) => {}
        None => out.push(line.to_string()),
    }
    out
}

/// `file_ops.line_in_file(path, {line, regexp, state, create, mode})`.
fn line_in_file(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = ctx.path(&args.string(1, "path")?);
    let opts = args.table(2, "options")?;
    check_options(
        args.func(),
        Some(&opts),
        &["line", "regexp", "state", "create", "mode"],
    )?;
    let line = opt_string_field(args.func(), Some(&opts), "line")?;
    let regexp = opt_string_field(args.func(), Some(&opts), "regexp")?
        .map(|r| regex_of(args.func(), "option regexp", &r))
        .transpose()?;
    let present = present(&args, &opts)?;
    if present && line.is_none() {
        return Err(args.fail("option line is required unless state is \"absent\""));
    }
    if !present && line.is_none() && regexp.is_none() {
        return Err(args.fail("option line or option regexp is required"));
    }
    let create = match opts.get::<Value>("create")? {
        Value::Nil => true,
        _ => opt_bool(args.func(), Some(&opts), "create")?,
    };
    let mode = opt_mode(&args, Some(&opts))?;
    let current = match read_opt(&args, &path)? {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None if !present => return path_result(lua, ctx, false, &path),
        None if !create => {
            return Err(args.fail(format!(
                "{} does not exist (option create is false)",
                path.display()
            )));
        }
        None => String::new(),
    };
    let lines = edit_lines(
        &split_lines(&current),
        line.as_deref(),
        regexp.as_ref(),
        present,
    );
    let mut text = join_lines(&lines);
    if text == join_lines(&split_lines(&current)) && path.exists() {
        // Only the trailing newline could differ: keep the file as it is.
        text = current;
    }
    let changed = ensure_content(&args, ctx, &path, text.as_bytes(), mode)?;
    path_result(lua, ctx, changed, &path)
}

/// The text with the block between the two marker lines made `block` (or
/// removed); a missing block is appended.
pub fn edit_block(text: &str, begin: &str, end: &str, block: Option<&str>) -> String {
    let lines = split_lines(text);
    let start = lines.iter().position(|l| l == begin);
    let stop = start.and_then(|s| lines[s..].iter().position(|l| l == end).map(|e| s + e));
    let mut wanted = Vec::new();
    if let Some(block) = block {
        wanted.push(begin.to_string());
        wanted.extend(split_lines(block));
        wanted.push(end.to_string());
    }
    let out: Vec<String> = match (start, stop) {
        (Some(s), Some(e)) => lines[..s]
            .iter()
            .cloned()
            .chain(wanted)
            .chain(lines[e + 1..].iter().cloned())
            .collect(),
        _ => lines.into_iter().chain(wanted).collect(),
    };
    join_lines(&out)
}

/// `file_ops.block_in_file(path, {block, marker, state, create, mode})`:
/// the text between `# BEGIN SLOTH MANAGED BLOCK` and `# END ...` markers.
fn block_in_file(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = ctx.path(&args.string(1, "path")?);
    let opts = args.table(2, "options")?;
    check_options(
        args.func(),
        Some(&opts),
        &["block", "marker", "state", "create", "mode"],
    )?;
    let present = present(&args, &opts)?;
    let block = opt_string_field(args.func(), Some(&opts), "block")?;
    if present && block.is_none() {
        return Err(args.fail("option block is required unless state is \"absent\""));
    }
    let marker = opt_string_field(args.func(), Some(&opts), "marker")?
        .unwrap_or_else(|| "# {mark} SLOTH MANAGED BLOCK".into());
    if !marker.contains("{mark}") {
        return Err(args.fail("option marker must contain {mark}"));
    }
    let mode = opt_mode(&args, Some(&opts))?;
    let current = match read_opt(&args, &path)? {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None if !present => return path_result(lua, ctx, false, &path),
        None => String::new(),
    };
    let begin = marker.replace("{mark}", "BEGIN");
    let end = marker.replace("{mark}", "END");
    let text = edit_block(&current, &begin, &end, block.as_deref().filter(|_| present));
    let text = if text == join_lines(&split_lines(&current)) {
        current
    } else {
        text
    };
    let changed = ensure_content(&args, ctx, &path, text.as_bytes(), mode)?;
    path_result(lua, ctx, changed, &path)
}

/// `file_ops.replace(path, regexp, replacement)`: every match (`$1` refers
/// to groups); the number replaced is `count`.
fn replace(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = ctx.path(&args.string(1, "path")?);
    let re = regex_of(
        args.func(),
        "argument 2 (regexp)",
        &args.string(2, "regexp")?,
    )?;
    let replacement = args.string(3, "replacement")?;
    let bytes = std::fs::read(&path).map_err(|e| io_fail(&args, "read", &path, e))?;
    let text = String::from_utf8_lossy(&bytes);
    let count = re.find_iter(&text).count();
    let replaced = re.replace_all(&text, replacement.as_str()).into_owned();
    let changed = ensure_content(&args, ctx, &path, replaced.as_bytes(), None)?;
    let t = path_result(lua, ctx, changed, &path)?;
    t.set("count", count)?;
    Ok(t)
}

/// `file_ops.template(src, dst, vars, {mode})`: renders the template file
/// `src` (`{{ name }}`, as `template.render`) to `dst`.
fn template(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let src = ctx.path(&args.string(1, "src")?);
    let dst = ctx.path(&args.string(2, "dst")?);
    let vars = match args.get(3) {
        Value::Nil => lua.create_table()?,
        _ => args.table(3, "vars")?,
    };
    let opts = args.opt_table(4, "options")?;
    check_options(args.func(), opts.as_ref(), &["mode"])?;
    let mode = opt_mode(&args, opts.as_ref())?;
    let text = std::fs::read_to_string(&src).map_err(|e| io_fail(&args, "read", &src, e))?;
    let rendered = super::template::render(lua, &text, &vars).map_err(|e| {
        args.fail(format!(
            "{}: {}",
            src.display(),
            super::runner::describe_error(&e)
        ))
    })?;
    let changed = ensure_content(&args, ctx, &dst, rendered.as_bytes(), mode)?;
    path_result(lua, ctx, changed, &dst)
}

/// The archive formats `unarchive` knows, by file name.
fn archive_command(src: &Path, into: &Path) -> Option<Vec<String>> {
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
fn sync_tree(args: &Args, ctx: &RunCtx, from: &Path, to: &Path) -> mlua::Result<bool> {
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
fn unarchive(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
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
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn staging_dir(args: &Args) -> mlua::Result<Staging> {
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

#[cfg(test)]
mod tests {
    use super::super::Output;
    use super::super::testing::{assert_error, state};
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        split_lines(text)
    }

    #[test]
    fn line_edits_follow_lineinfile() {
        let re = regex::Regex::new("^port=").expect("regex");
        let base = lines("a\nport=80\nb");
        assert_eq!(
            edit_lines(&base, Some("port=8080"), Some(&re), true),
            lines("a\nport=8080\nb")
        );
        assert_eq!(
            edit_lines(&base, Some("c"), None, true),
            lines("a\nport=80\nb\nc")
        );
        assert_eq!(edit_lines(&base, Some("a"), None, true), base);
        assert_eq!(edit_lines(&base, None, Some(&re), false), lines("a\nb"));
        assert_eq!(
            edit_lines(&base, Some("b"), None, false),
            lines("a\nport=80")
        );
        let block = edit_block("x\n", "# BEGIN", "# END", Some("one\ntwo"));
        assert_eq!(block, "x\n# BEGIN\none\ntwo\n# END\n");
        assert_eq!(
            edit_block(&block, "# BEGIN", "# END", Some("three")),
            "x\n# BEGIN\nthree\n# END\n"
        );
        assert_eq!(edit_block(&block, "# BEGIN", "# END", None), "x\n");
    }

    const SCRIPT: &str = r#"
        local changes = {}
        local function note(name, r) changes[#changes + 1] = name .. "=" .. tostring(r.changed) end
        note("mkdir", file_ops.mkdir("site/conf", {mode = "0750"}))
        note("write", file_ops.write("site/conf/motd", "hello\n", {mode = "0640"}))
        note("line", file_ops.line_in_file("site/conf/app.conf", {regexp = "^port=", line = "port=8080"}))
        note("line_absent", file_ops.lineinfile("site/conf/app.conf", {regexp = "^name=", state = "absent"}))
        note("block", file_ops.block_in_file("site/conf/app.conf", {block = "a=1\nb=2"}))
        note("replace", file_ops.replace("site/conf/app.conf", "(?m)^#(listen)=", "$1="))
        file_ops.write("tpl", "listen {{ port }}\n")
        note("template", file_ops.template("tpl", "site/conf/listen.conf", {port = 8080}))
        note("copy", file_ops.copy("site/conf/listen.conf", "site/listen.copy"))
        note("chmod", file_ops.chmod("site/listen.copy", "0600"))
        note("remove", file_ops.remove("site/gone"))
        return table.concat(changes, ",")
    "#;

    /// The configuration file the script edits.
    fn seed(dir: &Path) {
        std::fs::create_dir_all(dir.join("site/conf")).expect("mkdir");
        std::fs::write(
            dir.join("site/conf/app.conf"),
            "port=80\nname=x\n#listen=all\n",
        )
        .expect("write");
    }

    #[test]
    fn a_second_run_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        seed(dir.path());
        let first: String = lua.load(SCRIPT).eval().expect("first run");
        assert_eq!(
            first,
            "mkdir=true,write=true,line=true,line_absent=true,block=true,replace=true,template=true,copy=true,chmod=true,remove=false"
        );
        let conf = std::fs::read_to_string(dir.path().join("site/conf/app.conf")).expect("read");
        assert_eq!(
            conf,
            "port=8080\nlisten=all\n# BEGIN SLOTH MANAGED BLOCK\na=1\nb=2\n# END SLOTH MANAGED BLOCK\n"
        );
        let second: String = lua.load(SCRIPT).eval().expect("second run");
        assert!(!second.contains("=true"), "{second}");
        let meta = std::fs::metadata(dir.path().join("site/listen.copy")).expect("stat");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let facts: (bool, String, i64, String) = lua
            .load(
                r#"local s = file_ops.stat("site/listen.copy")
                     return s.is_file, s.mode, s.size, file_ops.checksum("site/listen.copy")"#,
            )
            .eval()
            .expect("stat");
        assert!(facts.0);
        assert_eq!(facts.1, "0600");
        assert_eq!(facts.2, 12);
        assert_eq!(facts.3, sha256_hex(b"listen 8080\n"));
    }

    /// Every file under `dir` with its content and mode.
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
        let mut all = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("ls") {
                let path = entry.expect("entry").path();
                let meta = std::fs::metadata(&path).expect("stat");
                if meta.is_dir() {
                    stack.push(path.clone());
                    all.push((path, Vec::new(), meta.mode()));
                } else {
                    all.push((
                        path.clone(),
                        std::fs::read(&path).expect("read"),
                        meta.mode(),
                    ));
                }
            }
        }
        all.sort();
        all
    }

    #[test]
    fn check_mode_reports_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        seed(dir.path());
        std::fs::write(dir.path().join("tpl"), "listen {{ port }}\n").expect("write");
        let out = Output::open(&dir.path().join("output.log")).expect("output");
        let mut ctx = RunCtx::new(
            dir.path().to_path_buf(),
            out,
            super::super::Ctl::new(None, None),
        );
        ctx.check_mode = true;
        let ctx = Rc::new(ctx);
        let lua = Lua::new();
        super::super::install(&lua, &ctx).expect("install");
        // Without the copy of the file that only the template would have made.
        let script: String = SCRIPT
            .lines()
            .filter(|l| !l.contains("listen.copy"))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dir.path().join("site/gone"), "x").expect("write");
        let before = snapshot(dir.path());
        let out: String = lua.load(&script).eval().expect("check run");
        assert_eq!(
            out,
            "mkdir=true,write=true,line=true,line_absent=true,block=true,replace=true,template=true,remove=true"
        );
        let flagged: bool = lua
            .load("return file_ops.write('x', 'y').check_mode")
            .eval()
            .expect("flag");
        assert!(flagged);
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn unarchive_tar_gz_and_zip_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        std::fs::create_dir_all(dir.path().join("src/sub")).expect("mkdir");
        std::fs::write(dir.path().join("src/a.txt"), "a").expect("write");
        std::fs::write(dir.path().join("src/sub/b.txt"), "b").expect("write");
        let status = std::process::Command::new("tar")
            .args(["-czf", "a.tar.gz", "-C", "src", "."])
            .current_dir(dir.path())
            .status()
            .expect("tar");
        assert!(status.success());
        let (first, second): (bool, bool) = lua
            .load(r#"return file_ops.unarchive("a.tar.gz", "out").changed, file_ops.unarchive("a.tar.gz", "out").changed"#)
            .eval()
            .expect("unarchive");
        assert!(first && !second);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out/sub/b.txt")).expect("read"),
            "b"
        );
        if tools::find_program(
            &RunCtx::new(
                dir.path().into(),
                super::super::Output::open(&dir.path().join("o")).expect("o"),
                super::super::Ctl::new(None, None),
            ),
            "zip",
        )
        .is_some()
        {
            let status = std::process::Command::new("zip")
                .args(["-qr", "../a.zip", "."])
                .current_dir(dir.path().join("src"))
                .status()
                .expect("zip");
            assert!(status.success());
            let (first, second): (bool, bool) = lua
                .load(r#"return file_ops.unarchive("a.zip", "z").changed, file_ops.unarchive("a.zip", "z").changed"#)
                .eval()
                .expect("unzip");
            assert!(first && !second);
            assert_eq!(
                std::fs::read_to_string(dir.path().join("z/a.txt")).expect("read"),
                "a"
            );
        }
    }

    #[test]
    fn bad_arguments_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        std::fs::write(dir.path().join("f"), "x\n").expect("write");
        std::fs::write(dir.path().join("a.rar"), "x").expect("write");
        for (code, want) in [
            (
                "file_ops.copy()",
                "file_ops.copy: argument 1 (src) must be a string, got nil",
            ),
            (
                "file_ops.copy('missing', 'b')",
                "file_ops.copy: cannot read",
            ),
            (
                "file_ops.copy('f', 'g', {mode = 'rw'})",
                "file_ops.copy: option mode must be an octal mode",
            ),
            (
                "file_ops.copy('f', 'g', {owner = 'x'})",
                "file_ops.copy: unknown option \"owner\"",
            ),
            ("file_ops.move('m1', 'm2')", "file_ops.move: neither"),
            (
                "file_ops.chmod('f')",
                "file_ops.chmod: argument 2 (mode) must be an octal string",
            ),
            ("file_ops.chmod('missing', '0644')", "file_ops.chmod: "),
            (
                "file_ops.chown('f', 'no-such-user-x')",
                "file_ops.chown: argument 2 (owner): no user",
            ),
            (
                "file_ops.write('f')",
                "file_ops.write: argument 2 (content) must be a string, got nil",
            ),
            (
                "file_ops.line_in_file('f')",
                "file_ops.line_in_file: argument 2 (options) must be a table, got nil",
            ),
            (
                "file_ops.line_in_file('f', {regexp = '('})",
                "file_ops.line_in_file: option regexp is not a valid regex",
            ),
            (
                "file_ops.line_in_file('f', {})",
                "file_ops.line_in_file: option line is required",
            ),
            (
                "file_ops.line_in_file('f', {line = 'x', state = 'gone'})",
                "file_ops.line_in_file: option state must be",
            ),
            (
                "file_ops.line_in_file('nofile', {line = 'x', create = false})",
                "does not exist (option create is false)",
            ),
            (
                "file_ops.block_in_file('f', {})",
                "file_ops.block_in_file: option block is required",
            ),
            (
                "file_ops.block_in_file('f', {block = 'x', marker = '#'})",
                "file_ops.block_in_file: option marker must contain {mark}",
            ),
            (
                "file_ops.replace('f', '[', 'x')",
                "file_ops.replace: argument 2 (regexp) is not a valid regex",
            ),
            (
                "file_ops.template('missing', 'd')",
                "file_ops.template: cannot read",
            ),
            (
                "file_ops.template('f', 'd', 3)",
                "file_ops.template: argument 3 (vars) must be a table",
            ),
            ("file_ops.unarchive('a.rar', 'd')", "file_ops.unarchive: "),
            (
                "file_ops.unarchive('missing.tar', 'd')",
                "file_ops.unarchive: ",
            ),
            (
                "file_ops.checksum('f', 'md5')",
                "file_ops.checksum: argument 2 (algorithm) must be \"sha256\"",
            ),
            (
                "file_ops.stat(1)",
                "file_ops.stat: argument 1 (path) must be a string",
            ),
        ] {
            assert_error(&lua, code, want);
        }
        std::fs::write(dir.path().join("t"), "{{ nope }}").expect("write");
        assert_error(&lua, "file_ops.template('t', 'd', {})", "nope");
    }
}
