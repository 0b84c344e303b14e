//! `infra_test`: assertions about the machine (files, ports, HTTP,
//! services, commands, users, packages). Each returns true or false; a
//! failed one is remembered, and the task fails when it ends with one
//! message listing every failure (`infra_test.check()` does so at once).

use std::os::unix::fs::MetadataExt;
use std::rc::Rc;
use std::time::Duration;

use mlua::{Lua, Table, Value};

use super::exec::{Program, run_program};
use super::payload::LuaOutcome;
use super::{Args, ModuleTable, RunCtx, type_name};

/// How long network assertions wait.
const TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "infra_test")?;
    m.add("infra_test.file_exists", |_, c, a| file_exists(c, a, true))?;
    m.add("infra_test.file_absent", |_, c, a| file_exists(c, a, false))?;
    m.add("infra_test.is_directory", is_directory)?;
    m.add("infra_test.file_contains", file_contains)?;
    m.add("infra_test.file_mode", file_mode)?;
    m.add("infra_test.file_owner", |_, c, a| file_owner(c, a, false))?;
    m.add("infra_test.file_group", |_, c, a| file_owner(c, a, true))?;
    m.add("infra_test.port_is_listening", |_, c, a| port(c, a, true))?;
    m.add("infra_test.port_is_closed", |_, c, a| port(c, a, false))?;
    m.add("infra_test.can_connect", can_connect)?;
    m.add("infra_test.http_status", http_status)?;
    m.add("infra_test.http_contains", http_contains)?;
    m.add("infra_test.service_is_running", |_, c, a| {
        service(c, a, "is-active", "running")
    })?;
    m.add("infra_test.service_is_enabled", |_, c, a| {
        service(c, a, "is-enabled", "enabled")
    })?;
    m.add("infra_test.command_succeeds", |_, c, a| {
        command(c, a, Match::Success)
    })?;
    m.add("infra_test.command_stdout_contains", |_, c, a| {
        command(c, a, Match::Contains)
    })?;
    m.add("infra_test.command_output_matches", |_, c, a| {
        command(c, a, Match::Regex)
    })?;
    m.add("infra_test.user_exists", user_exists)?;
    m.add("infra_test.group_exists", group_exists)?;
    m.add("infra_test.package_is_installed", package_is_installed)?;
    m.add("infra_test.failures", |lua, c, _| {
        lua.create_sequence_from(c.failed_assertions.borrow().clone())
    })?;
    m.add("infra_test.check", check)?;
    m.aliases(&[
        ("file_not_exists", "file_absent"),
        ("directory_exists", "is_directory"),
        ("port_open", "port_is_listening"),
        ("port_closed", "port_is_closed"),
        ("http_body_contains", "http_contains"),
        ("assert_all", "check"),
    ])?;
    Ok(m.into_table())
}

/// Records the assertion's outcome; its value.
fn verdict(ctx: &RunCtx, args: &Args, ok: bool, why: impl FnOnce() -> String) -> bool {
    if !ok {
        ctx.failed_assertions
            .borrow_mut()
            .push(format!("{}: {}", args.func(), why()));
    }
    ok
}

/// The failures as one message.
fn listing(failures: &[String]) -> String {
    let mut text = format!(
        "{} infra_test assertion{} failed:",
        failures.len(),
        if failures.len() == 1 { "" } else { "s" }
    );
    for f in failures {
        text.push_str("\n- ");
        text.push_str(f);
    }
    text
}

/// The outcome of a run that ended with unreported failed assertions: failed,
/// listing them.
pub(super) fn fail_unreported(ctx: &RunCtx, outcome: LuaOutcome) -> LuaOutcome {
    let failures = ctx.failed_assertions.take();
    if failures.is_empty() {
        return outcome;
    }
    match outcome {
        LuaOutcome::Returned {
            ok: true, results, ..
        } => LuaOutcome::Returned {
            ok: false,
            message: listing(&failures),
            results,
        },
        LuaOutcome::Returned {
            ok: false,
            message,
            results,
        } => LuaOutcome::Returned {
            ok: false,
            message: format!("{message}\n{}", listing(&failures)),
            results,
        },
        other => other,
    }
}

/// `infra_test.check()`: fails now, listing every failure so far.
fn check(_: &Lua, ctx: &RunCtx, _: Args) -> mlua::Result<bool> {
    let failures = ctx.failed_assertions.take();
    if failures.is_empty() {
        return Ok(true);
    }
    Err(mlua::Error::runtime(listing(&failures)))
}

fn file_exists(ctx: &RunCtx, args: Args, want: bool) -> mlua::Result<bool> {
    let path = ctx.path(&args.string(1, "path")?);
    let exists = std::fs::symlink_metadata(&path).is_ok();
    Ok(verdict(ctx, &args, exists == want, || {
        format!(
            "{} {}",
            path.display(),
            if want { "does not exist" } else { "exists" }
        )
    }))
}

fn is_directory(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<bool> {
    let path = ctx.path(&args.string(1, "path")?);
    Ok(verdict(ctx, &args, path.is_dir(), || {
        format!("{} is not a directory", path.display())
    }))
}

fn file_contains(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<bool> {
    let path = ctx.path(&args.string(1, "path")?);
    let text = args.string(2, "text")?;
    let content = std::fs::read(&path).map(|b| String::from_utf8_lossy(&b).into_owned());
    let ok = content.as_ref().is_ok_and(|c| c.contains(&text));
    Ok(verdict(ctx, &args, ok, || match &content {
        Err(e) => format!("cannot read {}: {e}", path.display()),
        Ok(_) => format!("{} does not contain {text:?}", path.display()),
    }))
}

fn file_mode(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<bool> {
    let path = ctx.path(&args.string(1, "path")?);
    let want = args.text(2, "mode")?;
    let Ok(want_bits) = u32::from_str_radix(want.trim_start_matches("0o"), 8) else {
        return Err(args.fail(format!(
            "argument 2 (mode) {want:?} must be an octal mode like \"0644\""
        )));
    };
    let have = std::fs::metadata(&path).map(|m| m.mode() & 0o7777);
    Ok(verdict(
        ctx,
        &args,
        have.as_ref().is_ok_and(|m| *m == want_bits),
        || match &have {
            Err(e) => format!("cannot stat {}: {e}", path.display()),
            Ok(m) => format!("{} has mode {m:04o}, not {want_bits:04o}", path.display()),
        },
    ))
}

fn file_owner(ctx: &RunCtx, args: Args, group: bool) -> mlua::Result<bool> {
    let path = ctx.path(&args.string(1, "path")?);
    let want = args.string(2, if group { "group" } else { "owner" })?;
    let meta = std::fs::metadata(&path);
    let have = meta.as_ref().ok().map(|m| {
        if group {
            nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(m.gid()))
                .ok()
                .flatten()
                .map_or_else(|| m.gid().to_string(), |g| g.name)
        } else {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(m.uid()))
                .ok()
                .flatten()
                .map_or_else(|| m.uid().to_string(), |u| u.name)
        }
    });
    Ok(verdict(
        ctx,
        &args,
        have.as_deref() == Some(want.as_str()),
        || match (&meta, &have) {
            (Err(e), _) => format!("cannot stat {}: {e}", path.display()),
            (_, have) => format!(
                "{} belongs to {}, not {want}",
                path.display(),
                have.clone().unwrap_or_default()
            ),
        },
    ))
}

fn port_number(args: &Args, n: usize) -> mlua::Result<u16> {
    match args.get(n) {
        Value::Integer(i) if (1..=65535).contains(&i) => Ok(i as u16),
        other => Err(args.fail(format!(
            "argument {n} (port) must be a port number 1-65535, got {}",
            match other {
                Value::Integer(i) => i.to_string(),
                other => type_name(&other).to_string(),
            }
        ))),
    }
}

/// `port_is_listening(port, [host = "127.0.0.1"])` and `port_is_closed`.
fn port(ctx: &RunCtx, args: Args, want_open: bool) -> mlua::Result<bool> {
    let port = port_number(&args, 1)?;
    let host = args
        .opt_string(2, "host")?
        .unwrap_or_else(|| "127.0.0.1".into());
    let open = super::net::tcp_open(ctx, args.func(), &host, port, TIMEOUT)?;
    Ok(verdict(ctx, &args, open == want_open, || {
        let who = if want_open { "nothing" } else { "something" };
        format!("{who} accepts connections on {host}:{port}")
    }))
}

fn can_connect(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<bool> {
    let host = args.string(1, "host")?;
    let port = port_number(&args, 2)?;
    let open = super::net::tcp_open(ctx, args.func(), &host, port, TIMEOUT)?;
    Ok(verdict(ctx, &args, open, || {
        format!("cannot connect to {host}:{port}")
    }))
}

/// GET `url`: (status, body) or why it failed.
fn get(ctx: &RunCtx, args: &Args, url: &str) -> mlua::Result<Result<(u16, String), String>> {
    let request = super::http::Request {
        method: "GET",
        url: url.to_string(),
        body: None,
        headers: Default::default(),
        timeout: TIMEOUT,
    };
    match super::http::fetch(ctx, args.func(), request) {
        Ok(a) => Ok(Ok((
            a.status,
            String::from_utf8_lossy(&a.body).into_owned(),
        ))),
        Err(e) => {
            ctx.ctl.checked()?;
            let text = super::payload::describe_error(&e);
            let prefix = format!("{}: ", args.func());
            Ok(Err(text.strip_prefix(&prefix).unwrap_or(&text).to_string()))
        }
    }
}

fn http_status(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<bool> {
    let url = args.string(1, "url")?;
    let want = match args.get(2) {
        Value::Nil => 200,
        Value::Integer(i) => i,
        other => {
            return Err(args.fail(format!(
                "argument 2 (status) must be a number, got {}",
                type_name(&other)
            )));
        }
    };
    let got = get(ctx, &args, &url)?;
    Ok(verdict(
        ctx,
        &args,
        matches!(&got, Ok((s, _)) if i64::from(*s) == want),
        || match got {
            Ok((s, _)) => format!("GET {url} answered {s}, not {want}"),
            Err(e) => e,
        },
    ))
}

fn http_contains(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<bool> {
    let url = args.string(1, "url")?;
    let text = args.string(2, "text")?;
    let got = get(ctx, &args, &url)?;
    Ok(verdict(
        ctx,
        &args,
        matches!(&got, Ok((_, b)) if b.contains(&text)),
        || match got {
            Ok((s, _)) => format!("GET {url} ({s}): the body does not contain {text:?}"),
            Err(e) => e,
        },
    ))
}

fn service(ctx: &RunCtx, args: Args, verb: &str, state: &str) -> mlua::Result<bool> {
    let name = args.string(1, "name")?;
    if let Err(why) = super::systemd::available(ctx) {
        return Ok(verdict(ctx, &args, false, || {
            format!("cannot tell whether {name} is {state}: {why}")
        }));
    }
    let argv = vec!["systemctl".to_string(), verb.to_string(), name.clone()];
    let ran = super::tools::run(ctx, args.func(), &argv, None, Some(TIMEOUT * 6))?;
    Ok(verdict(ctx, &args, ran.success, || {
        format!("{name} is not {state} ({})", ran.stdout_text().trim())
    }))
}

enum Match {
    Success,
    Contains,
    Regex,
}

fn command(ctx: &RunCtx, args: Args, how: Match) -> mlua::Result<bool> {
    let cmd = args.string(1, "cmd")?;
    let pattern = match how {
        Match::Success => None,
        Match::Contains => Some(args.string(2, "text")?),
        Match::Regex => Some(args.string(2, "regexp")?),
    };
    let regex = match (&how, &pattern) {
        (Match::Regex, Some(p)) => Some(
            regex::Regex::new(p)
                .map_err(|e| args.fail(format!("argument 2 (regexp) is not a valid regex: {e}")))?,
        ),
        _ => None,
    };
    let ran = run_program(
        ctx,
        args.func(),
        &Program {
            program: "bash",
            args: &["-c", &cmd],
            cwd: &ctx.cwd,
            env: &Default::default(),
            timeout: None,
        },
    )?;
    let out = ran.stdout_text();
    let ok = match how {
        Match::Success => ran.success,
        Match::Contains => out.contains(pattern.as_deref().unwrap_or_default()),
        Match::Regex => regex.is_some_and(|r| r.is_match(&out)),
    };
    Ok(verdict(ctx, &args, ok, || match how {
        Match::Success => format!(
            "`{cmd}` exited with {}: {}",
            ran.exit_code,
            ran.stderr_text().trim()
        ),
        _ => format!(
            "the output of `{cmd}` does not match {:?}: {:?}",
            pattern.unwrap_or_default(),
            out.trim()
        ),
    }))
}

fn user_exists(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<bool> {
    let name = args.string(1, "name")?;
    let ok = nix::unistd::User::from_name(&name).ok().flatten().is_some();
    Ok(verdict(ctx, &args, ok, || format!("no user {name}")))
}

fn group_exists(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<bool> {
    let name = args.string(1, "name")?;
    let ok = nix::unistd::Group::from_name(&name)
        .ok()
        .flatten()
        .is_some();
    Ok(verdict(ctx, &args, ok, || format!("no group {name}")))
}

fn package_is_installed(_: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<bool> {
    let name = args.string(1, "name")?;
    let Some(manager) = super::pkg::detect(ctx) else {
        return Ok(verdict(ctx, &args, false, || {
            format!("cannot tell whether {name} is installed: no package manager found")
        }));
    };
    let version = super::pkg::installed_version(ctx, args.func(), manager, &name)?;
    Ok(verdict(ctx, &args, version.is_some(), || {
        format!("{name} is not installed ({manager})")
    }))
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::super::test_http::{Reply, serve};
    use super::super::testing::{assert_error, assert_errors, state};
    use super::*;

    /// Answers every request with 200 "hello sloth".
    fn server() -> u16 {
        serve(|_| Some(Reply::ok("hello sloth"))).port()
    }

    #[test]
    fn passing_assertions_record_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, ctx) = state(dir.path());
        std::fs::write(dir.path().join("f"), "port=80\n").expect("write");
        lua.globals().set("port", server()).expect("set");
        let me = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        lua.globals().set("me", me).expect("set");
        lua.load(
            r#"
            assert(infra_test.file_exists("f"))
            assert(infra_test.file_absent("g"))
            assert(infra_test.is_directory("."))
            assert(infra_test.file_contains("f", "port=80"))
            assert(infra_test.file_owner("f", me))
            assert(infra_test.port_is_listening(port))
            assert(infra_test.http_status("http://127.0.0.1:" .. port .. "/", 200))
            assert(infra_test.http_contains("http://127.0.0.1:" .. port .. "/", "sloth"))
            assert(infra_test.command_succeeds("true"))
            assert(infra_test.command_stdout_contains("echo abc", "b"))
            assert(infra_test.command_output_matches("echo v1.2", "^v\\d"))
            assert(infra_test.user_exists(me))
            assert(infra_test.check() == true)
            "#,
        )
        .exec()
        .expect("assertions");
        assert!(ctx.failed_assertions.borrow().is_empty());
    }

    #[test]
    fn every_failure_is_listed_in_one_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, ctx) = state(dir.path());
        std::fs::write(dir.path().join("f"), "x").expect("write");
        let free = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        lua.globals().set("free", free).expect("set");
        lua.load(
            r#"
            assert(infra_test.file_exists("missing") == false)
            assert(infra_test.file_contains("f", "y") == false)
            assert(infra_test.file_mode("f", "0777") == false)
            assert(infra_test.port_is_listening(free) == false)
            assert(infra_test.command_succeeds("exit 3") == false)
            assert(infra_test.user_exists("no-such-user-sloth") == false)
            assert(#infra_test.failures() == 6)
            "#,
        )
        .exec()
        .expect("assertions");
        let outcome = fail_unreported(
            &ctx,
            LuaOutcome::Returned {
                ok: true,
                message: "done".into(),
                results: Default::default(),
            },
        );
        let LuaOutcome::Returned { ok, message, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert!(!ok);
        assert!(
            message.starts_with("6 infra_test assertions failed:"),
            "{message}"
        );
        for want in [
            "infra_test.file_exists: ",
            "missing does not exist",
            "does not contain \"y\"",
            "not 0777",
            &format!("127.0.0.1:{free}"),
            "`exit 3` exited with 3",
            "no user no-such-user-sloth",
        ] {
            assert!(message.contains(want), "{want}: {message}");
        }
        lua.load("infra_test.file_exists('missing')")
            .exec()
            .expect("one more");
        assert_error(
            &lua,
            "infra_test.check()",
            "1 infra_test assertion failed:\n- infra_test.file_exists",
        );
        assert!(ctx.failed_assertions.borrow().is_empty());
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_errors(&[
            (
                "infra_test.file_exists()",
                "infra_test.file_exists: argument 1 (path) must be a string, got nil",
            ),
            (
                "infra_test.file_mode('f', 'rw')",
                "infra_test.file_mode: argument 2 (mode) \"rw\" must be an octal mode",
            ),
            (
                "infra_test.port_is_listening('x')",
                "infra_test.port_is_listening: argument 1 (port) must be a port number 1-65535, got string",
            ),
            (
                "infra_test.http_status('http://x', 'ok')",
                "infra_test.http_status: argument 2 (status) must be a number",
            ),
            (
                "infra_test.command_output_matches('true', '(')",
                "infra_test.command_output_matches: argument 2 (regexp) is not a valid regex",
            ),
            (
                "infra_test.file_contains('f')",
                "infra_test.file_contains: argument 2 (text) must be a string",
            ),
        ]);
    }
}
