//! `fs`: files, relative to the TaskRun's working directory.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use mlua::{IntoLua, IntoLuaMulti, Lua, MultiValue, Table};

use super::{Args, ModuleTable, RunCtx, fail};

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "fs")?;
    add_soft(&m, "fs.read", read)?;
    add_soft(&m, "fs.write", |lua, c, a| write(lua, c, a, false))?;
    add_soft(&m, "fs.append", |lua, c, a| write(lua, c, a, true))?;
    m.add("fs.exists", exists)?;
    add_soft(&m, "fs.mkdir", mkdir)?;
    add_soft(&m, "fs.rm", rm)?;
    // Upstream's name for removing a tree; `rm` removes trees too.
    add_soft(&m, "fs.rm_r", rm)?;
    add_soft(&m, "fs.ls", ls)?;
    m.add("fs.tmpname", tmpname)?;
    add_soft(&m, "fs.copy", copy)?;
    m.add("fs.basename", basename)?;
    m.add("fs.dirname", dirname)?;
    Ok(m.into_table())
}

/// Adds a file operation: as in sloth-runner, when it fails it returns
/// `nil, message` (the caller decides); a wrong argument still raises.
fn add_soft<R, F>(m: &ModuleTable, func: &'static str, f: F) -> mlua::Result<()>
where
    R: IntoLuaMulti,
    F: Fn(&Lua, &RunCtx, Args) -> mlua::Result<R> + 'static,
{
    m.add(func, move |lua, c, a| soften(lua, f(lua, c, a)))
}

fn io_fail(func: &str, what: &str, path: &Path, e: std::io::Error) -> mlua::Error {
    mlua::Error::external(IoFailed(format!(
        "{func}: cannot {what} {}: {e}",
        path.display()
    )))
}

/// An operation on a file that failed (not a wrong argument).
#[derive(Debug)]
struct IoFailed(String);

impl std::fmt::Display for IoFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IoFailed {}

/// The value, or `nil, message` when the file operation failed; other
/// errors (wrong arguments, a stop) still raise.
fn soften(lua: &Lua, result: mlua::Result<impl IntoLuaMulti>) -> mlua::Result<MultiValue> {
    match result {
        Ok(value) => {
            let mut values = value.into_lua_multi(lua)?;
            // Nothing (or nil) would read as a failure: success is true.
            if values.front().is_none_or(mlua::Value::is_nil) {
                values = MultiValue::from_vec(vec![mlua::Value::Boolean(true)]);
            }
            Ok(values)
        }
        Err(mlua::Error::ExternalError(e)) if e.downcast_ref::<IoFailed>().is_some() => {
            Ok(MultiValue::from_vec(vec![
                mlua::Value::Nil,
                e.to_string().into_lua(lua)?,
            ]))
        }
        Err(e) => Err(e),
    }
}

fn read(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<mlua::String> {
    let path = ctx.path(&args.string(1, "path")?);
    let bytes = std::fs::read(&path).map_err(|e| io_fail("fs.read", "read", &path, e))?;
    lua.create_string(&bytes)
}

fn write(_: &Lua, ctx: &RunCtx, args: Args, append: bool) -> mlua::Result<()> {
    let func = if append { "fs.append" } else { "fs.write" };
    let path = ctx.path(&args.string(1, "path")?);
    let content = match args.get(2) {
        mlua::Value::String(s) => s.as_bytes().to_vec(),
        mlua::Value::Integer(i) => i.to_string().into_bytes(),
        mlua::Value::Number(x) => x.to_string().into_bytes(),
        other => {
            return Err(fail(
                func,
                format!(
                    "argument 2 (content) must be a string, got {}",
                    super::type_name(&other)
                ),
            ));
        }
    };
    let result = if append {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&content))
    } else {
        std::fs::write(&path, &content)
    };
    result.map_err(|e| io_fail(func, "write", &path, e))
}

fn exists(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<bool> {
    let path = ctx.path(&args.string(1, "path")?);
    Ok(std::fs::symlink_metadata(path).is_ok())
}

fn mkdir(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<()> {
    let path = ctx.path(&args.string(1, "path")?);
    std::fs::create_dir_all(&path).map_err(|e| io_fail("fs.mkdir", "create", &path, e))
}

/// Removes a file or a directory tree; true when something was removed.
fn rm(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<bool> {
    let path = ctx.path(&args.string(1, "path")?);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_fail("fs.rm", "remove", &path, e)),
    };
    let result = if meta.is_dir() {
        std::fs::remove_dir_all(&path)
    } else {
        std::fs::remove_file(&path)
    };
    result
        .map(|()| true)
        .map_err(|e| io_fail("fs.rm", "remove", &path, e))
}

fn ls(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let path = ctx.path(&args.opt_string(1, "path")?.unwrap_or_else(|| ".".into()));
    let entries = std::fs::read_dir(&path).map_err(|e| io_fail("fs.ls", "list", &path, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_fail("fs.ls", "list", &path, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    lua.create_sequence_from(names)
}

/// Creates an empty file with a fresh name in the system's temporary
/// directory and returns its path.
fn tmpname(_: &Lua, ctx: &RunCtx, _args: Args) -> mlua::Result<String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    for _ in 0..100 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(
            "sloth-{}-{}-{n}-{nanos:x}",
            ctx.taskrun,
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => return Ok(path.to_string_lossy().into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_fail("fs.tmpname", "create", &path, e)),
        }
    }
    Err(fail("fs.tmpname", "cannot find a free temporary name"))
}

/// Copies a file; into a directory when `dst` is one.
fn copy(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<()> {
    let src = ctx.path(&args.string(1, "src")?);
    let mut dst: PathBuf = ctx.path(&args.string(2, "dst")?);
    if dst.is_dir()
        && let Some(name) = src.file_name()
    {
        dst = dst.join(name);
    }
    std::fs::copy(&src, &dst).map(|_| ()).map_err(|e| {
        mlua::Error::external(IoFailed(format!(
            "fs.copy: cannot copy {} to {}: {e}",
            src.display(),
            dst.display()
        )))
    })
}

fn basename(_: &Lua, _: &RunCtx, args: Args) -> mlua::Result<String> {
    let path = args.string(1, "path")?;
    Ok(Path::new(&path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default())
}

fn dirname(_: &Lua, _: &RunCtx, args: Args) -> mlua::Result<String> {
    let path = args.string(1, "path")?;
    Ok(match Path::new(&path).parent() {
        Some(p) if p.as_os_str().is_empty() => ".".into(),
        Some(p) => p.to_string_lossy().into_owned(),
        None if path.starts_with('/') => "/".into(),
        None => ".".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_errors, state};

    #[test]
    fn files_relative_to_the_workdir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        lua.load(
            r#"
            fs.mkdir("a/b/c")
            assert(fs.exists("a/b/c"))
            fs.write("a/f.txt", "one")
            fs.append("a/f.txt", "two")
            fs.append("a/new.txt", 3)
            assert(fs.read("a/f.txt") == "onetwo")
            assert(fs.read("a/new.txt") == "3")
            local names = fs.ls("a")
            assert(#names == 3 and names[1] == "b" and names[2] == "f.txt" and names[3] == "new.txt", table.concat(names, ","))
            fs.copy("a/f.txt", "a/g.txt")
            fs.copy("a/f.txt", "a/b")
            assert(fs.read("a/g.txt") == "onetwo" and fs.read("a/b/f.txt") == "onetwo")
            assert(fs.rm("a/b") == true)
            assert(not fs.exists("a/b"))
            assert(fs.rm("a/g.txt") == true)
            assert(fs.rm("a/g.txt") == false)
            assert(fs.exists(fs.tmpname()))
            assert(fs.tmpname() ~= fs.tmpname())
            assert(fs.basename("/x/y/z.tar.gz") == "z.tar.gz")
            assert(fs.basename("/") == "")
            assert(fs.dirname("/x/y/z") == "/x/y")
            assert(fs.dirname("z") == ".")
            assert(fs.dirname("/") == "/")
            "#,
        )
        .exec()
        .expect("fs");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a/f.txt")).expect("read"),
            "onetwo"
        );
        let names: Vec<String> = lua.load("return fs.ls()").eval().expect("ls");
        assert_eq!(names, vec!["a".to_string(), "output.log".to_string()]);
    }

    #[test]
    fn failed_file_operations_return_nil_and_a_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        lua.load(
            r#"
            local data, err = fs.read("missing")
            assert(data == nil and err:find("fs.read: cannot read .*missing"), tostring(err))
            local names, err = fs.ls("missing")
            assert(names == nil and err:find("fs.ls: cannot list"), tostring(err))
            local ok, err = fs.copy("missing", "b")
            assert(ok == nil and err:find("fs.copy: cannot copy"), tostring(err))
            assert(fs.write("d/x", "y") == nil)
            assert(fs.write("x", "y") == true and fs.mkdir("t/u") == true)
            assert(fs.rm_r("t") == true and not fs.exists("t/u"))
            "#,
        )
        .exec()
        .expect("fs");
    }

    #[test]
    fn bad_arguments_and_io_errors_are_named() {
        assert_errors(&[
            (
                "fs.read()",
                "fs.read: argument 1 (path) must be a string, got nil",
            ),
            (
                "fs.write('x')",
                "fs.write: argument 2 (content) must be a string, got nil",
            ),
            (
                "fs.write(1, 'x')",
                "fs.write: argument 1 (path) must be a string, got number",
            ),
            (
                "fs.append('x', {})",
                "fs.append: argument 2 (content) must be a string, got table",
            ),
            (
                "fs.exists(true)",
                "fs.exists: argument 1 (path) must be a string, got boolean",
            ),
            ("fs.mkdir()", "fs.mkdir: argument 1 (path) must be a string"),
            ("fs.rm()", "fs.rm: argument 1 (path) must be a string"),
            (
                "fs.ls(1)",
                "fs.ls: argument 1 (path) must be a string or nil",
            ),
            ("fs.copy('a')", "fs.copy: argument 2 (dst) must be a string"),
            (
                "fs.basename()",
                "fs.basename: argument 1 (path) must be a string",
            ),
            (
                "fs.dirname({})",
                "fs.dirname: argument 1 (path) must be a string",
            ),
        ]);
    }
}
