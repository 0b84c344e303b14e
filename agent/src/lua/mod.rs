//! Lua payloads: a TaskRun's `run.lua` runs in a fresh Lua 5.4 state on a
//! blocking thread, with a memory limit, the task's deadline and stop
//! signal enforced by an instruction-count hook, and the modules Sloth's Lua
//! code expects (`exec`, `fs`, `log`, `json`, `yaml`, `env`, `http`,
//! `template`, `lock`, `time`, `state`, `stack`, `secret`, and for
//! infrastructure automation `file_ops`, `facts`, `infra_test`, `net`,
//! `metrics`, `git`, `pkg`, `systemd`, `docker`), each a global and
//! `require`-able.

mod args;
mod docker;
mod env;
mod exec;
mod facts;
mod file_ops;
mod fs;
mod git;
mod hooks;
mod http;
mod infra_test;
mod json;
mod lock;
mod log;
mod metrics;
mod module;
mod net;
mod parallel;
mod payload;
mod pkg;
mod secret;
mod stack;
mod state;
mod systemd;
mod template;
#[cfg(test)]
mod test_http;
mod time;
mod tools;
mod yaml;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mlua::{Lua, MultiValue, Table};
use sloth_sdk::Client;
use sloth_sdk::objects::LuaPayload;
use tokio::sync::watch;

use crate::concurrency::StopReason;
use crate::masking::Masks;
use crate::output_index::{LogWriter, Stream};
use crate::supervisor::Supervision;

pub(crate) use hooks::{HOOK_FAILED, HookSink};
pub(crate) use metrics::Sink as MetricsSink;
pub(crate) use payload::{LuaOutcome, run};

pub(crate) use args::{
    Args, check_options, fail, opt_seconds, opt_string_field, opt_string_map, type_name,
};
pub(crate) use module::ModuleTable;

/// Lua's memory limit per TaskRun.
pub(crate) const MEMORY_LIMIT: usize = 256 * 1024 * 1024;

/// The hook looks at the deadline and the stop signal this often.
pub(crate) const HOOK_INSTRUCTIONS: u32 = 10_000;

/// How long waits inside modules (sleep, child processes, locks, HTTP)
/// sleep between looks at the deadline and the stop signal.
pub(crate) const SLICE: Duration = Duration::from_millis(25);

/// One Lua payload to run.
#[derive(Clone, Debug)]
pub(crate) struct LuaJob {
    pub payload: LuaPayload,
    pub namespace: String,
    pub taskrun: String,
    pub agent: String,
    pub attempt: u32,
    /// The working directory: relative paths of `fs` and `exec.run` start here.
    pub cwd: PathBuf,
    /// `print` and `log.*` lines are appended here.
    pub output: PathBuf,
    /// Where the process group of the running `exec.run` child is recorded.
    pub pid_file: Option<PathBuf>,
    /// The environment `exec.run` children get on top of the agent's.
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    /// For the `lock` module; None leaves it unusable (tests).
    pub client: Option<Client>,
    /// How `exec.run` starts its children.
    pub supervision: Supervision,
    /// The Secrets the TaskRun references: name -> key -> value.
    pub secrets: Secrets,
    /// Delivered values, hidden in everything the run prints or returns.
    pub masks: Masks,
    /// Check mode: modules that change the machine report what they would
    /// change and change nothing.
    pub check_mode: bool,
    /// Where the `metrics` module's values end up, for the TaskRun's status.
    pub metrics: metrics::Sink,
    /// Where the failures of the task's hooks are reported.
    pub hook_failures: HookSink,
}

/// Secret values by Secret name and key.
pub(crate) type Secrets = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// Why Lua code was interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interrupt {
    TimedOut,
    Stopped(StopReason),
}

impl fmt::Display for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut => f.write_str("the task timed out"),
            Self::Stopped(_) => f.write_str("the task was stopped"),
        }
    }
}

impl std::error::Error for Interrupt {}

/// The deadline and stop signal every long wait looks at.
#[derive(Clone, Debug)]
pub(crate) struct Ctl {
    /// Shared by the clones (the instruction hook holds one), so that an
    /// `on_timeout` hook can be given its grace time after the deadline.
    deadline: Arc<Mutex<Option<Instant>>>,
    stop: Option<watch::Receiver<Option<StopReason>>>,
    /// Set from a lock's renewal task once the run lost one of its Locks.
    lock_lost: Arc<AtomicBool>,
}

impl Ctl {
    pub(crate) fn new(
        timeout: Option<Duration>,
        stop: Option<watch::Receiver<Option<StopReason>>>,
    ) -> Self {
        Self {
            deadline: Arc::new(Mutex::new(timeout.map(|t| Instant::now() + t))),
            stop,
            lock_lost: Arc::default(),
        }
    }

    /// The flag that stops the run (reason LockLost) once set; it is shared
    /// with the tasks that renew the run's Locks.
    pub(crate) fn lock_lost_flag(&self) -> Arc<AtomicBool> {
        self.lock_lost.clone()
    }

    /// Why the code must stop now, if it must.
    pub(crate) fn check(&self) -> Option<Interrupt> {
        if let Some(reason) = self.stop.as_ref().and_then(|s| *s.borrow()) {
            return Some(Interrupt::Stopped(reason));
        }
        if self.lock_lost.load(Ordering::Acquire) {
            return Some(Interrupt::Stopped(StopReason::LockLost));
        }
        match self.deadline() {
            Some(deadline) if Instant::now() >= deadline => Some(Interrupt::TimedOut),
            _ => None,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new deadline `grace` from now (for the `on_timeout` hook, which
    /// runs once the task's own deadline has passed).
    pub(crate) fn extend_deadline(&self, grace: Duration) {
        let mut deadline = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        if deadline.is_some() {
            *deadline = Some(Instant::now() + grace);
        }
    }

    /// [`Ctl::check`] as a Lua error.
    pub(crate) fn checked(&self) -> mlua::Result<()> {
        match self.check() {
            Some(why) => Err(mlua::Error::external(why)),
            None => Ok(()),
        }
    }

    /// Time left before the deadline (None: no deadline).
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Sleeps `total` in short slices; fails as soon as the code must stop.
    pub(crate) fn sleep(&self, total: Duration) -> mlua::Result<()> {
        let end = Instant::now() + total;
        loop {
            self.checked()?;
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep(SLICE.min(end - now));
        }
    }

    /// Waits for the answer of work done elsewhere (a thread or a task),
    /// failing as soon as the code must stop.
    pub(crate) fn wait<T>(&self, rx: &std::sync::mpsc::Receiver<T>) -> mlua::Result<T> {
        loop {
            self.checked()?;
            match rx.recv_timeout(SLICE) {
                Ok(value) => return Ok(value),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(mlua::Error::runtime("the worker ended without an answer"));
                }
            }
        }
    }
}

/// The TaskRun's output log, shared by `print` and `log.*` (its stdout)
/// and the errors that end a run (its stderr).
#[derive(Debug)]
pub(crate) struct Output {
    writer: Mutex<Option<LogWriter>>,
    /// Secret values replaced in every line (each line is whole here).
    masks: Masks,
}

impl Output {
    #[cfg(test)]
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        Self::open_masked(path, Masks::default())
    }

    /// Output to `path` with `masks` applied.
    pub(crate) fn open_masked(path: &Path, masks: Masks) -> std::io::Result<Self> {
        Ok(Self {
            writer: Mutex::new(Some(LogWriter::open(path)?)),
            masks,
        })
    }

    /// Appends `text` and a newline to stdout.
    pub(crate) fn line(&self, text: &str) {
        self.write(Stream::Stdout, text);
    }

    /// Appends `text` and a newline to stderr.
    pub(crate) fn error_line(&self, text: &str) {
        self.write(Stream::Stderr, text);
    }

    fn write(&self, stream: Stream, text: &str) {
        let mut guard = match self.writer.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(writer) = guard.as_mut() {
            let mut buf = self.masks.bytes(text.as_bytes());
            buf.push(b'\n');
            if let Err(e) = writer.write(stream, &buf) {
                tracing::warn!("cannot write to the TaskRun output: {e}");
            }
        }
    }
}

/// What the API-backed `lock` module needs.
#[derive(Clone, Debug)]
pub(crate) struct ApiCtx {
    pub client: Client,
    pub handle: tokio::runtime::Handle,
}

/// What the modules of one run share.
#[derive(Debug)]
pub(crate) struct RunCtx {
    pub ctl: Ctl,
    pub cwd: PathBuf,
    pub out: Output,
    pub namespace: String,
    pub taskrun: String,
    pub pid_file: Option<PathBuf>,
    /// How `exec.run` starts its children.
    pub supervision: Supervision,
    /// The children's environment on top of the agent's: None unsets.
    pub env: RefCell<BTreeMap<String, Option<String>>>,
    pub api: Option<ApiCtx>,
    /// Locks held, with the task renewing each.
    pub locks: RefCell<BTreeMap<String, lock::Held>>,
    /// For `secret.get` and the `secrets` global.
    pub secrets: Secrets,
    pub check_mode: bool,
    pub metrics: metrics::Sink,
    /// Failed `infra_test` assertions not yet reported: the run fails
    /// listing them when it ends.
    pub failed_assertions: RefCell<Vec<String>>,
}

impl RunCtx {
    /// A context for tests: working directory `cwd`, output to `out`.
    #[cfg(test)]
    pub(crate) fn new(cwd: PathBuf, out: Output, ctl: Ctl) -> Self {
        Self {
            ctl,
            cwd,
            out,
            namespace: "default".into(),
            taskrun: "test".into(),
            pid_file: None,
            supervision: Supervision::unfenced(),
            env: RefCell::new(BTreeMap::new()),
            api: None,
            locks: RefCell::new(BTreeMap::new()),
            secrets: Secrets::new(),
            check_mode: false,
            metrics: metrics::Sink::default(),
            failed_assertions: RefCell::new(Vec::new()),
        }
    }

    /// `path` relative to the working directory.
    pub(crate) fn path(&self, path: &str) -> PathBuf {
        self.cwd.join(path)
    }

    /// The holder identity written into Locks.
    pub(crate) fn holder(&self) -> String {
        sloth_sdk::lease::taskrun_holder(&self.namespace, &self.taskrun)
    }
}

/// The modules, by the name they are installed under.
pub(crate) fn modules(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Vec<(&'static str, Table)>> {
    Ok(vec![
        ("exec", exec::module(lua, ctx)?),
        ("fs", fs::module(lua, ctx)?),
        ("log", log::module(lua, ctx)?),
        ("json", json::module(lua, ctx)?),
        ("yaml", yaml::module(lua, ctx)?),
        ("env", env::module(lua, ctx)?),
        ("http", http::module(lua, ctx)?),
        ("template", template::module(lua, ctx)?),
        ("lock", lock::module(lua, ctx)?),
        ("time", time::module(lua, ctx)?),
        ("state", state::module(lua, ctx)?),
        ("stack", stack::module(lua, ctx)?),
        ("secret", secret::module(lua, ctx)?),
        ("file_ops", file_ops::module(lua, ctx)?),
        ("facts", facts::module(lua, ctx)?),
        ("infra_test", infra_test::module(lua, ctx)?),
        ("net", net::module(lua, ctx)?),
        ("metrics", metrics::module(lua, ctx)?),
        ("git", git::module(lua, ctx)?),
        ("pkg", pkg::module(lua, ctx)?),
        ("systemd", systemd::module(lua, ctx)?),
        ("docker", docker::module(lua, ctx)?),
    ])
}

/// Installs every module as a global and in `package.preload`.
pub(crate) fn install(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<()> {
    let globals = lua.globals();
    let preload: Option<Table> = globals
        .get::<Option<Table>>("package")?
        .map(|p| p.get::<Table>("preload"))
        .transpose()?;
    globals.set("secrets", secret::global(lua, ctx)?)?;
    for (name, table) in modules(lua, ctx)? {
        globals.set(name, table.clone())?;
        if let Some(preload) = &preload {
            let loader = lua.create_function(move |_, _: MultiValue| Ok(table.clone()))?;
            preload.set(name, loader)?;
        }
    }
    parallel::install(lua)?;
    Ok(())
}

/// The arguments of `print` and `log.*`, as `tostring` shows them.
pub(crate) fn join_args(lua: &Lua, args: MultiValue, sep: &str) -> mlua::Result<String> {
    let tostring: mlua::Function = lua.globals().get("tostring")?;
    let mut parts = Vec::new();
    for value in args {
        let text: mlua::String = tostring.call(value)?;
        parts.push(text.to_string_lossy());
    }
    Ok(parts.join(sep))
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A Lua state with every module, working in `dir`; output to
    /// `dir/output.log`.
    pub(crate) fn state(dir: &Path) -> (Lua, Rc<RunCtx>) {
        state_with(dir, Ctl::new(None, None))
    }

    pub(crate) fn state_with(dir: &Path, ctl: Ctl) -> (Lua, Rc<RunCtx>) {
        let lua = Lua::new();
        let out = Output::open(&dir.join("output.log")).expect("output");
        let ctx = Rc::new(RunCtx::new(dir.to_path_buf(), out, ctl));
        payload::prepare(&lua, &ctx).expect("prepare the state");
        (lua, ctx)
    }

    /// Runs `code` in a fresh state in a temporary directory; it must
    /// succeed. What it wrote to the TaskRun's output.
    pub(crate) fn exec_ok(code: &str) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        if let Err(e) = lua.load(code).exec() {
            panic!("{code}: {e}");
        }
        std::fs::read_to_string(dir.path().join("output.log")).expect("read the output")
    }

    /// Runs `code`, returning its error text.
    pub(crate) fn error(lua: &Lua, code: &str) -> String {
        match lua.load(code).exec() {
            Ok(()) => panic!("no error from {code}"),
            Err(e) => payload::describe_error(&e),
        }
    }

    /// Asserts `code` fails with a message containing `want`.
    pub(crate) fn assert_error(lua: &Lua, code: &str, want: &str) {
        let message = error(lua, code);
        assert!(message.contains(want), "{code}: {message}");
    }

    /// Asserts, in order and in one fresh state, that each `(code, want)`
    /// fails with a message containing `want`.
    pub(crate) fn assert_errors(cases: &[(&str, &str)]) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lua, _ctx) = state(dir.path());
        for (code, want) in cases {
            assert_error(&lua, code, want);
        }
    }
}
