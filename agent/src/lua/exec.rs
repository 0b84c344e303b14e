//! `exec.run(cmd, {workdir, env, timeout})`: `bash -c cmd` in its own
//! process group under a supervisor (as shell payloads run), its output
//! captured, killed at its own timeout or when the task must stop, and by
//! the supervisor when the agent dies or loses its heartbeat lease.
//! [`run_program`] is that machinery for the modules that run programs.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{ChildStdin, Stdio};
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mlua::{Lua, Table};

use super::{
    Args, Interrupt, ModuleTable, RunCtx, SLICE, check_options, fail, opt_seconds,
    opt_string_field, opt_string_map,
};
use crate::process_group::{self, KILL_GRACE};
use crate::supervised::SUPERVISOR_SLACK;
use crate::supervisor::Message;

/// Most bytes of stdout (and of stderr) kept; the rest is read and dropped.
pub(super) const MAX_CAPTURE: usize = 16 * 1024 * 1024;

const OPTIONS: &[&str] = &["workdir", "env", "timeout"];

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "exec")?;
    m.add("exec.run", run)?;
    // sloth-runner's name: `exec.command("cmd line")` is `exec.run`;
    // `exec.command("prog", "arg", ...)` runs prog without a shell.
    m.add("exec.command", |lua, c, args| match args.get(2) {
        mlua::Value::String(_) => command(lua, c, args),
        _ => run(lua, c, args),
    })?;
    Ok(m.into_table())
}

/// `exec.command(prog, arg...)`: the program and its arguments, no shell.
fn command(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    const F: &str = "exec.command";
    let program = args.string(1, "program")?;
    let mut argv = Vec::new();
    for n in 2.. {
        match args.get(n) {
            mlua::Value::Nil => break,
            _ => argv.push(args.text(n, "arg")?),
        }
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    run_program(
        ctx,
        F,
        &Program {
            program: &program,
            args: &argv,
            cwd: &ctx.cwd,
            env: &BTreeMap::new(),
            timeout: None,
        },
    )?
    .table(lua)
}

fn run(lua: &Lua, ctx: &RunCtx, args: Args) -> mlua::Result<Table> {
    const F: &str = "exec.run";
    let cmd = args.string(1, "cmd")?;
    let opts = args.opt_table(2, "options")?;
    check_options(F, opts.as_ref(), OPTIONS)?;
    let workdir = opt_string_field(F, opts.as_ref(), "workdir")?;
    let extra_env = opt_string_map(F, opts.as_ref(), "env")?;
    let timeout = opt_seconds(F, opts.as_ref(), "timeout")?;
    let cwd = workdir.map_or_else(|| ctx.cwd.clone(), |w| ctx.path(&w));
    let ran = run_program(
        ctx,
        F,
        &Program {
            program: "bash",
            args: &["-c", &cmd],
            cwd: &cwd,
            env: &extra_env,
            timeout,
        },
    )?;
    ran.table(lua)
}

/// One child process to run under supervision.
pub(super) struct Program<'a> {
    pub program: &'a str,
    pub args: &'a [&'a str],
    pub cwd: &'a Path,
    /// On top of the run's environment.
    pub env: &'a BTreeMap<String, String>,
    pub timeout: Option<Duration>,
}

/// What a child process did.
#[derive(Debug)]
pub(super) struct Ran {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
    pub success: bool,
    pub timed_out: bool,
}

impl Ran {
    /// `{stdout, stderr, exit_code, success, timed_out}`.
    pub(super) fn table(&self, lua: &Lua) -> mlua::Result<Table> {
        let result = lua.create_table()?;
        result.set("stdout", lua.create_string(&self.stdout)?)?;
        result.set("stderr", lua.create_string(&self.stderr)?)?;
        result.set("exit_code", self.exit_code)?;
        result.set("success", self.success)?;
        result.set("timed_out", self.timed_out)?;
        Ok(result)
    }

    pub(super) fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub(super) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs `p` in its own process group under a supervisor (as shell payloads
/// run): killed at its own timeout or when the task must stop, and by the
/// supervisor when the agent dies or loses its heartbeat lease. Every
/// module that runs a program (git, docker, pkg, systemd) comes here.
pub(super) fn run_program(ctx: &RunCtx, func: &str, p: &Program) -> mlua::Result<Ran> {
    ctx.ctl.checked()?;
    let mut deadlines = ctx.supervision.deadlines.clone();
    let fence_at = deadlines.borrow_and_update().kill;
    let mut command =
        ctx.supervision
            .supervisor
            .command(fence_at, ctx.pid_file.as_deref(), p.program, p.args);
    command
        .current_dir(p.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in ctx.env.borrow().iter() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command.envs(p.env);
    let mut child = command.spawn().map_err(|e| {
        fail(
            func,
            format!("cannot start {} in {}: {e}", p.program, p.cwd.display()),
        )
    })?;
    let mut pipe = child.stdin.take();
    let stdout = child.stdout.take().map(capture);
    let stderr = child.stderr.take().map(capture);
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    // Why the command is being ended early (None: the option timeout).
    let mut ending: Option<Option<Interrupt>> = None;
    let mut give_up = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(func, format!("cannot wait for {}: {e}", p.program)));
            }
        }
        if deadlines.has_changed().unwrap_or(false) {
            let at = deadlines.borrow_and_update().kill;
            tell(&mut pipe, Message::Fence(at));
        }
        if ending.is_none() {
            if let Some(why) = ctx.ctl.check() {
                ending = Some(Some(why));
            } else if p.timeout.is_some_and(|t| started.elapsed() >= t) {
                ending = Some(None);
            }
            if ending.is_some() {
                tell(&mut pipe, Message::Stop);
                give_up = Some(Instant::now() + KILL_GRACE + SUPERVISOR_SLACK);
            }
        }
        if give_up.is_some_and(|at| Instant::now() >= at) {
            // The supervisor is stuck: kill it; closing its pipe kills the child.
            let _ = child.kill();
            pipe.take();
            give_up = None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(SLICE);
    };
    if let Some(pid_file) = &ctx.pid_file {
        let _ = std::fs::remove_file(pid_file);
    }
    let joined = |h: Option<JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    let (out, err) = (joined(stdout), joined(stderr));
    if let Some(Some(why)) = ending {
        return Err(mlua::Error::external(why));
    }
    let timed_out = ending.is_some();
    Ok(Ran {
        stdout: out,
        stderr: err,
        exit_code: process_group::exit_code(status),
        success: status.success() && !timed_out,
        timed_out,
    })
}

/// Writes `message` to the supervisor; a pipe that fails is dropped (the
/// supervisor is gone, or ends bash when it sees the pipe closed).
fn tell(pipe: &mut Option<ChildStdin>, message: Message) {
    if let Some(writer) = pipe.as_mut()
        && writer.write_all(message.line().as_bytes()).is_err()
    {
        pipe.take();
    }
}

/// Reads a pipe to its end on a thread, keeping the first [`MAX_CAPTURE`] bytes.
fn capture(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = MAX_CAPTURE.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        kept
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_errors, state, state_with};
    use super::super::{Ctl, LuaOutcome};
    use super::*;

    #[test]
    fn runs_bash_in_the_workdir_with_the_run_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, ctx) = state(dir.path());
        ctx.env
            .borrow_mut()
            .insert("FROM_RUN".into(), Some("run".into()));
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let (out, err, code, ok): (String, String, i64, bool) = lua
            .load(
                r#"local r = exec.run("echo $FROM_RUN $OPT; pwd; echo oops >&2; exit 3",
                     {env = {OPT = "opt"}, workdir = "sub"})
                   return r.stdout, r.stderr, r.exit_code, r.success"#,
            )
            .eval()
            .expect("eval");
        let sub = dir.path().join("sub");
        assert_eq!(out, format!("run opt\n{}\n", sub.display()));
        assert_eq!((err.as_str(), code, ok), ("oops\n", 3, false));
        let ok: bool = lua
            .load("local r = exec.run('true') return r.success and r.exit_code == 0 and r.stdout == ''")
            .eval()
            .expect("eval");
        assert!(ok);
    }

    #[test]
    fn env_set_reaches_children() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        let out: String = lua
            .load("env.set('SLOTH_X', 'x1') return exec.run('echo $SLOTH_X').stdout")
            .eval()
            .expect("eval");
        assert_eq!(out, "x1\n");
        assert_eq!(std::env::var("SLOTH_X").ok(), None);
    }

    #[test]
    fn option_timeout_kills_the_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        let started = Instant::now();
        let (ok, timed_out, code): (bool, bool, i64) = lua
            .load("local r = exec.run('sleep 30 & sleep 30', {timeout = 0.2}) return r.success, r.timed_out, r.exit_code")
            .eval()
            .expect("eval");
        assert!(!ok && timed_out, "{code}");
        assert_eq!(code, 128 + 15);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn task_deadline_interrupts_a_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state_with(dir.path(), Ctl::new(Some(Duration::from_millis(200)), None));
        let started = Instant::now();
        let e = lua
            .load("exec.run('sleep 30')")
            .exec()
            .expect_err("interrupted");
        assert!(
            super::super::payload::describe_error(&e).contains("timed out"),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let _ = LuaOutcome::TimedOut;
    }

    #[test]
    fn background_children_do_not_outlive_the_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        let started = Instant::now();
        let out: String = lua
            .load("return exec.run('(sleep 30; echo late) & echo now').stdout")
            .eval()
            .expect("eval");
        assert_eq!(out, "now\n");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_errors(&[
            (
                "exec.run()",
                "exec.run: argument 1 (cmd) must be a string, got nil",
            ),
            (
                "exec.run({})",
                "exec.run: argument 1 (cmd) must be a string, got table",
            ),
            (
                "exec.run('true', 3)",
                "exec.run: argument 2 (options) must be a table or nil, got number",
            ),
            (
                "exec.run('true', {timeout = -1})",
                "exec.run: option timeout must be a non-negative number",
            ),
            (
                "exec.run('true', {timeout = 'soon'})",
                "exec.run: option timeout must be a number of seconds or a duration",
            ),
            (
                "exec.run('true', {env = {A = {}}})",
                "exec.run: option env.A must be a string",
            ),
            (
                "exec.run('true', {workdir = 1})",
                "exec.run: option workdir must be a string",
            ),
            (
                "exec.run('true', {cwd = 'x'})",
                "exec.run: unknown option \"cwd\"",
            ),
            (
                "exec.run('true', {workdir = 'missing'})",
                "exec.run: cannot start bash in",
            ),
        ]);
    }
}
