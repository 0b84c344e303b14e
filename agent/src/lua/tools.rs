//! What the infrastructure modules share: result tables with `changed`
//! (and check mode), finding programs on PATH, and running them through
//! `exec`'s supervised runner with the command line they ran shown in
//! results and errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mlua::{Lua, Table, Value};

use super::exec::{Program, Ran, run_program};
use super::{RunCtx, fail, type_name};

/// A result table `{changed = changed}`; in check mode it also says
/// `check_mode = true` (the change was only reported, not made).
pub(super) fn result(lua: &Lua, ctx: &RunCtx, changed: bool) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("changed", changed)?;
    if ctx.check_mode {
        t.set("check_mode", true)?;
    }
    Ok(t)
}

/// `program` on the run's PATH, if it is there.
pub(super) fn find_program(ctx: &RunCtx, program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return is_executable(&path).then_some(path);
    }
    let path = super::env::lookup(ctx, "PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `argv` as one shell-quoted line, as shown in results and errors.
pub(super) fn shell_line(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// Runs `argv` (its first element the program) under supervision; an
/// absent program is the error "`program` is not installed".
pub(super) fn run(
    ctx: &RunCtx,
    func: &str,
    argv: &[String],
    cwd: Option<&Path>,
    timeout: Option<Duration>,
) -> mlua::Result<Ran> {
    let Some((program, args)) = argv.split_first() else {
        return Err(fail(func, "no command to run"));
    };
    if find_program(ctx, program).is_none() {
        return Err(fail(
            func,
            format!(
                "{program} is not installed (not found on PATH); the command was: {}",
                shell_line(argv)
            ),
        ));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cwd = cwd.map_or_else(|| ctx.cwd.clone(), Path::to_path_buf);
    run_program(
        ctx,
        func,
        &Program {
            program,
            args: &args,
            cwd: &cwd,
            env: &BTreeMap::new(),
            timeout,
        },
    )
}

/// Like [`run`], but a non-zero exit is an error quoting the command line
/// and what the program wrote to stderr.
pub(super) fn run_ok(
    ctx: &RunCtx,
    func: &str,
    argv: &[String],
    cwd: Option<&Path>,
    timeout: Option<Duration>,
) -> mlua::Result<Ran> {
    let ran = run(ctx, func, argv, cwd, timeout)?;
    if !ran.success {
        let why = if ran.timed_out {
            "timed out".to_string()
        } else {
            format!("exited with {}", ran.exit_code)
        };
        let stderr = ran.stderr_text();
        let stderr = stderr.trim();
        let detail = if stderr.is_empty() {
            ran.stdout_text().trim().to_string()
        } else {
            stderr.to_string()
        };
        return Err(fail(
            func,
            format!("`{}` {why}: {detail}", shell_line(argv)),
        ));
    }
    Ok(ran)
}

/// A list argument: a string (one item) or a sequence of strings.
pub(super) fn string_list(
    func: &str,
    n: usize,
    name: &str,
    value: &Value,
) -> mlua::Result<Vec<String>> {
    let bad = |got: &Value| {
        fail(
            func,
            format!(
                "argument {n} ({name}) must be a string or a list of strings, got {}",
                type_name(got)
            ),
        )
    };
    match value {
        Value::String(s) => Ok(vec![s.to_str()?.to_string()]),
        Value::Table(t) => {
            let mut items = Vec::new();
            for item in t.sequence_values::<Value>() {
                match item? {
                    Value::String(s) => items.push(s.to_str()?.to_string()),
                    other => return Err(bad(&other)),
                }
            }
            if items.is_empty() {
                return Err(fail(
                    func,
                    format!("argument {n} ({name}) is an empty list"),
                ));
            }
            Ok(items)
        }
        other => Err(bad(other)),
    }
}

/// Option `key`: a boolean, or nil (false).
pub(super) fn opt_bool(func: &str, opts: Option<&Table>, key: &str) -> mlua::Result<bool> {
    let Some(opts) = opts else { return Ok(false) };
    match opts.get::<Value>(key)? {
        Value::Nil => Ok(false),
        Value::Boolean(b) => Ok(b),
        other => Err(fail(
            func,
            format!("option {key} must be a boolean, got {}", type_name(&other)),
        )),
    }
}

/// Option `key`: a positive integer, or nil.
pub(super) fn opt_count(func: &str, opts: Option<&Table>, key: &str) -> mlua::Result<Option<u64>> {
    let Some(opts) = opts else { return Ok(None) };
    match opts.get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::Integer(i) if i > 0 => Ok(Some(i as u64)),
        Value::Integer(i) => Err(fail(
            func,
            format!("option {key} must be a positive integer, got {i}"),
        )),
        other => Err(fail(
            func,
            format!(
                "option {key} must be a positive integer, got {}",
                type_name(&other)
            ),
        )),
    }
}

/// Option `key`: a sequence of strings (or one string), or nil (empty).
pub(super) fn opt_list(func: &str, opts: Option<&Table>, key: &str) -> mlua::Result<Vec<String>> {
    let Some(opts) = opts else {
        return Ok(Vec::new());
    };
    match opts.get::<Value>(key)? {
        Value::Nil => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.to_str()?.to_string()]),
        Value::Table(t) => t
            .sequence_values::<Value>()
            .map(|v| match v? {
                Value::String(s) => Ok(s.to_str()?.to_string()),
                Value::Integer(i) => Ok(i.to_string()),
                other => Err(fail(
                    func,
                    format!(
                        "option {key}: items must be strings, got {}",
                        type_name(&other)
                    ),
                )),
            })
            .collect(),
        other => Err(fail(
            func,
            format!(
                "option {key} must be a list of strings, got {}",
                type_name(&other)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_lines_quote_what_the_shell_would_split() {
        let argv: Vec<String> = ["docker", "run", "-e", "A=b c", "it's", "x:1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(shell_line(&argv), "docker run -e 'A=b c' 'it'\\''s' x:1");
        assert_eq!(shell_line(&["".to_string()]), "''");
    }
}
