//! `systemd`: services through `systemctl`, idempotent (starting a running
//! service changes nothing), and unit files written only when their content
//! differs. Where systemd is not running (no systemctl, or PID 1 is not
//! systemd) every call that needs it fails saying so, with the command line
//! it would have run; in check mode the command lines are reported instead.

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use mlua::{Lua, Table};

use super::exec::Ran;
use super::tools::{self, find_program, opt_bool, result, shell_line};
use super::{Args, ModuleTable, RunCtx, opt_string_field};

/// Where unit files go unless told.
pub(super) const UNIT_DIR: &str = "/etc/systemd/system";

/// How long one systemctl call may take.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Ok when systemctl can manage services here; else why not.
pub(super) fn available(ctx: &RunCtx) -> Result<(), String> {
    if find_program(ctx, "systemctl").is_none() {
        return Err("systemctl is not installed (not found on PATH)".into());
    }
    // What sd_booted(3) checks.
    if !Path::new("/run/systemd/system").is_dir() {
        let init = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
        return Err(format!(
            "systemd is not running on this machine (PID 1 is {:?}, not systemd)",
            init.trim()
        ));
    }
    Ok(())
}

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "systemd")?;
    m.add("systemd.start", |lua, c, a| {
        ensure(lua, c, a, "start", Some(("is-active", false)))
    })?;
    m.add("systemd.stop", |lua, c, a| {
        ensure(lua, c, a, "stop", Some(("is-active", true)))
    })?;
    m.add("systemd.restart", |lua, c, a| {
        ensure(lua, c, a, "restart", None)
    })?;
    m.add("systemd.reload", |lua, c, a| {
        ensure(lua, c, a, "reload", None)
    })?;
    m.add("systemd.enable", |lua, c, a| {
        ensure(lua, c, a, "enable", Some(("is-enabled", false)))
    })?;
    m.add("systemd.disable", |lua, c, a| {
        ensure(lua, c, a, "disable", Some(("is-enabled", true)))
    })?;
    m.add("systemd.is_active", |_, c, a| query(c, &a, "is-active"))?;
    m.add("systemd.is_enabled", |_, c, a| query(c, &a, "is-enabled"))?;
    m.add("systemd.status", status)?;
    m.add("systemd.daemon_reload", daemon_reload)?;
    m.add("systemd.write_unit", write_unit)?;
    Ok(m.into_table())
}

fn unit_arg(args: &Args) -> mlua::Result<String> {
    let name = args.string(1, "name")?;
    if name.is_empty() || name.starts_with('-') || name.contains('/') {
        return Err(args.fail(format!("argument 1 (name) {name:?} is not a unit name")));
    }
    Ok(name)
}

fn systemctl(words: &[&str]) -> Vec<String> {
    std::iter::once("systemctl")
        .chain(words.iter().copied())
        .map(str::to_string)
        .collect()
}

/// Runs `argv`, failing with the reason when systemd is not available.
fn run(ctx: &RunCtx, args: &Args, argv: &[String]) -> mlua::Result<Ran> {
    if let Err(why) = available(ctx) {
        return Err(args.fail(format!("{why}; the command was: {}", shell_line(argv))));
    }
    tools::run(ctx, args.func(), argv, None, Some(TIMEOUT))
}

/// Like [`run`], but a failure is an error quoting the command line
/// ([`tools::run_ok`]).
fn run_ok(ctx: &RunCtx, args: &Args, argv: &[String]) -> mlua::Result<Ran> {
    if let Err(why) = available(ctx) {
        return Err(args.fail(format!("{why}; the command was: {}", shell_line(argv))));
    }
    tools::run_ok(ctx, args.func(), argv, None, Some(TIMEOUT))
}

/// `systemctl is-active|is-enabled NAME` as a boolean.
fn query(ctx: &RunCtx, args: &Args, verb: &str) -> mlua::Result<bool> {
    let name = unit_arg(args)?;
    Ok(run(ctx, args, &systemctl(&[verb, &name]))?.success)
}

/// `systemctl VERB NAME`; with `needed_if` (a query and the answer that
/// makes the action needed), skipped when the unit is already as wanted.
fn ensure(
    lua: &Lua,
    ctx: &RunCtx,
    args: Args,
    verb: &str,
    needed_if: Option<(&str, bool)>,
) -> mlua::Result<Table> {
    let name = unit_arg(&args)?;
    let argv = systemctl(&[verb, &name]);
    if !ctx.check_mode
        && let Err(why) = available(ctx)
    {
        return Err(args.fail(format!("{why}; the command was: {}", shell_line(&argv))));
    }
    let needed = match needed_if {
        // Without systemd, check mode can only report the command.
        Some(_) if ctx.check_mode && available(ctx).is_err() => true,
        Some((query_verb, answer)) => {
            run(ctx, &args, &systemctl(&[query_verb, &name]))?.success == answer
        }
        None => true,
    };
    if needed && !ctx.check_mode {
        run_ok(ctx, &args, &argv)?;
    }
    let t = result(lua, ctx, needed)?;
    t.set("command", shell_line(&argv))?;
    Ok(t)
}

/// `systemd.status(name)`: `{active, enabled, output}`.
fn status(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let name = unit_arg(&args)?;
    let active = run(ctx, &args, &systemctl(&["is-active", &name]))?;
    let enabled = run(ctx, &args, &systemctl(&["is-enabled", &name]))?;
    let shown = run(ctx, &args, &systemctl(&["status", "--no-pager", &name]))?;
    let t = lua.create_table()?;
    t.set("active", active.success)?;
    t.set("state", active.stdout_text().trim().to_string())?;
    t.set("enabled", enabled.success)?;
    t.set("output", shown.stdout_text())?;
    Ok(t)
}

/// `systemd.daemon_reload()`.
fn daemon_reload(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let argv = systemctl(&["daemon-reload"]);
    if !ctx.check_mode {
        run_ok(ctx, &args, &argv)?;
    }
    let t = result(lua, ctx, true)?;
    t.set("command", shell_line(&argv))?;
    Ok(t)
}

/// `systemd.write_unit(name, content, {dir, daemon_reload = true})`: the
/// unit file, changed only when its content differs; after a change,
/// `systemctl daemon-reload` runs where systemd is running.
fn write_unit(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    let name = unit_arg(&args)?;
    let content = args.string(2, "content")?;
    let opts = args.options(3, &["dir", "daemon_reload"])?;
    let dir =
        opt_string_field(args.func(), opts.as_ref(), "dir")?.unwrap_or_else(|| UNIT_DIR.into());
    let reload = match opts
        .as_ref()
        .map(|o| o.get::<mlua::Value>("daemon_reload"))
        .transpose()?
    {
        None | Some(mlua::Value::Nil) => true,
        Some(_) => opt_bool(args.func(), opts.as_ref(), "daemon_reload")?,
    };
    let path = ctx.path(&dir).join(&name);
    let current = std::fs::read(&path).ok();
    let changed = current.as_deref() != Some(content.as_bytes());
    if changed && !ctx.check_mode {
        std::fs::create_dir_all(ctx.path(&dir))
            .and_then(|()| std::fs::write(&path, &content))
            .map_err(|e| args.fail(format!("cannot write {}: {e}", path.display())))?;
    }
    let reloaded = changed && reload && !ctx.check_mode && available(ctx).is_ok();
    if reloaded {
        tools::run_ok(
            ctx,
            args.func(),
            &systemctl(&["daemon-reload"]),
            None,
            Some(TIMEOUT),
        )?;
    }
    let t = result(lua, ctx, changed)?;
    t.set("path", path.to_string_lossy().into_owned())?;
    t.set("daemon_reloaded", reloaded)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_error, state};
    use super::super::{Ctl, Output};
    use super::*;

    #[test]
    fn without_systemd_calls_fail_clearly_and_check_mode_reports_commands() {
        if available_here() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        assert_error(
            &lua,
            "systemd.start('nginx')",
            "; the command was: systemctl start nginx",
        );
        assert_error(&lua, "systemd.is_active('nginx')", "systemd.is_active: ");
        let message = super::super::testing::error(&lua, "systemd.daemon_reload()");
        assert!(
            message.contains("systemd is not running on this machine")
                || message.contains("systemctl is not installed"),
            "{message}"
        );
        let out = Output::open(&dir.path().join("o")).expect("output");
        let mut check = RunCtx::new(dir.path().into(), out, Ctl::new(None, None));
        check.check_mode = true;
        let check = Rc::new(check);
        let lua = Lua::new();
        super::super::install(&lua, &check).expect("install");
        let lines: String = lua
            .load(
                r#"local out = {}
                   for _, f in ipairs({"start", "stop", "restart", "reload", "enable", "disable"}) do
                     local r = systemd[f]("web.service")
                     assert(r.changed and r.check_mode)
                     out[#out + 1] = r.command
                   end
                   return table.concat(out, ";")"#,
            )
            .eval()
            .expect("check mode");
        assert_eq!(
            lines,
            "systemctl start web.service;systemctl stop web.service;systemctl restart web.service;\
             systemctl reload web.service;systemctl enable web.service;systemctl disable web.service"
        );
    }

    fn available_here() -> bool {
        Path::new("/run/systemd/system").is_dir()
    }

    #[test]
    fn unit_files_change_only_when_their_content_differs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        let (a, b, c): (bool, bool, bool) = lua
            .load(
                r#"local unit = "[Service]\nExecStart=/bin/true\n"
                   local a = systemd.write_unit("web.service", unit, {dir = "units", daemon_reload = false}).changed
                   local b = systemd.write_unit("web.service", unit, {dir = "units", daemon_reload = false}).changed
                   local c = systemd.write_unit("web.service", unit .. "-- x\n", {dir = "units", daemon_reload = false}).changed
                   return a, b, c"#,
            )
            .eval()
            .expect("write_unit");
        assert!(a && !b && c);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("units/web.service")).expect("read"),
            "[Service]\nExecStart=/bin/true\n-- x\n"
        );
        for (code, want) in [
            (
                "systemd.start()",
                "systemd.start: argument 1 (name) must be a string, got nil",
            ),
            (
                "systemd.start('../x')",
                "systemd.start: argument 1 (name) \"../x\" is not a unit name",
            ),
            (
                "systemd.write_unit('x')",
                "systemd.write_unit: argument 2 (content) must be a string",
            ),
            (
                "systemd.write_unit('x', 'y', {mode = 1})",
                "systemd.write_unit: unknown option \"mode\"",
            ),
            (
                "systemd.write_unit('x', 'y', {dir = 'u', daemon_reload = 1})",
                "systemd.write_unit: option daemon_reload must be a boolean",
            ),
        ] {
            assert_error(&lua, code, want);
        }
    }
}
