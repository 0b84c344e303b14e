//! Runs one Lua payload to its outcome: a fresh state with a memory limit
//! and the deadline/stop hook, the modules, the call of the script (or its
//! entry) with `(this, params, input)`, and the reading of what it returned.

use std::collections::BTreeMap;
use std::rc::Rc;

use mlua::{Function, Lua, LuaSerdeExt, MultiValue, Table, Value};
use tokio::sync::watch;

use super::{
    ApiCtx, Ctl, HOOK_INSTRUCTIONS, Interrupt, LuaJob, MEMORY_LIMIT, Output, RunCtx, join_args,
    type_name,
};
use crate::concurrency::StopReason;

mod returned;
#[cfg(test)]
mod tests;

pub(super) use returned::describe_error;
use returned::returned;
pub(super) use returned::returned_from_task;

/// Longest message kept in the TaskRun's status (the log has all of it).
const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// How a Lua payload ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LuaOutcome {
    /// The code returned: `ok`, the message and the results.
    Returned {
        ok: bool,
        message: String,
        results: BTreeMap<String, String>,
    },
    /// The code returned results that cannot be recorded.
    InvalidResults(String),
    /// A syntax or runtime error, with its traceback.
    Error(String),
    /// The task's deadline passed.
    TimedOut,
    /// The stop signal fired.
    Stopped(StopReason),
    /// The run could not start (its output log cannot be opened).
    NotStarted(String),
}

/// Runs `job` on a blocking thread; `stop` interrupts it.
pub(crate) async fn run(job: LuaJob, stop: watch::Receiver<Option<StopReason>>) -> LuaOutcome {
    let handle = tokio::runtime::Handle::current();
    match tokio::task::spawn_blocking(move || run_blocking(job, Some(stop), Some(handle))).await {
        Ok(outcome) => outcome,
        Err(e) => LuaOutcome::Error(format!("the Lua thread failed: {e}")),
    }
}

/// Runs `job` on the calling thread.
pub(super) fn run_blocking(
    job: LuaJob,
    stop: Option<watch::Receiver<Option<StopReason>>>,
    handle: Option<tokio::runtime::Handle>,
) -> LuaOutcome {
    let ctl = Ctl::new(job.timeout, stop);
    let out = match Output::open_masked(&job.output, job.masks.clone()) {
        Ok(out) => out,
        Err(e) => {
            return LuaOutcome::NotStarted(format!(
                "cannot open the output log {}: {e}",
                job.output.display()
            ));
        }
    };
    let env = job
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    let ctx = Rc::new(RunCtx {
        ctl: ctl.clone(),
        cwd: job.cwd.clone(),
        out,
        namespace: job.namespace.clone(),
        taskrun: job.taskrun.clone(),
        pid_file: job.pid_file.clone(),
        supervision: job.supervision.clone(),
        env: std::cell::RefCell::new(env),
        api: match (job.client.clone(), handle) {
            (Some(client), Some(handle)) => Some(ApiCtx { client, handle }),
            _ => None,
        },
        locks: std::cell::RefCell::new(BTreeMap::new()),
        secrets: job.secrets.clone(),
        check_mode: job.check_mode,
        metrics: job.metrics.clone(),
        failed_assertions: std::cell::RefCell::new(Vec::new()),
    });
    let lua = Lua::new();
    let mut hook_failures = Vec::new();
    let outcome = match prepare(&lua, &ctx).and_then(|()| dsl_task(&lua, &job)) {
        Err(e) => outcome_of_error(&ctl, &e),
        Ok(Some(task)) => match this_table(&lua, &job) {
            Ok(this) => super::hooks::run_task(&lua, &ctx, &job, &task, this, &mut hook_failures),
            Err(e) => outcome_of_error(&ctl, &e),
        },
        Ok(None) => match call(&lua, &job) {
            Ok(values) => returned(&lua, values),
            Err(e) => outcome_of_error(&ctl, &e),
        },
    };
    super::lock::release_all(&ctx);
    job.hook_failures.set(hook_failures.clone());
    let outcome = with_hook_failures(
        super::infra_test::fail_unreported(&ctx, outcome),
        &hook_failures,
    );
    match &outcome {
        LuaOutcome::Error(text) => ctx.out.error_line(text),
        LuaOutcome::InvalidResults(text) => ctx
            .out
            .error_line(&format!("[ERROR] invalid results: {text}")),
        LuaOutcome::TimedOut => ctx
            .out
            .error_line("[ERROR] the task timed out; the Lua code was stopped"),
        LuaOutcome::Stopped(_) => ctx
            .out
            .error_line("[ERROR] the task was stopped; the Lua code was interrupted"),
        _ => {}
    }
    let mut outcome = outcome;
    let masks = &job.masks;
    match &mut outcome {
        LuaOutcome::Error(text) => *text = cap(masks.text(text)),
        LuaOutcome::Returned {
            message, results, ..
        } => {
            *message = cap(masks.text(message));
            *results = masks.map(std::mem::take(results));
        }
        LuaOutcome::InvalidResults(text) => *text = masks.text(text),
        _ => {}
    }
    outcome
}

/// How an error raised by the Lua code ends the run.
pub(super) fn outcome_of_error(ctl: &super::Ctl, e: &mlua::Error) -> LuaOutcome {
    match ctl.check() {
        Some(Interrupt::TimedOut) => LuaOutcome::TimedOut,
        Some(Interrupt::Stopped(why)) => LuaOutcome::Stopped(why),
        None => LuaOutcome::Error(describe_error(e)),
    }
}

/// The outcome with the failed hooks added to its message (the result
/// stays; a timeout's message is written by the agent, the log has them).
fn with_hook_failures(outcome: LuaOutcome, failures: &[String]) -> LuaOutcome {
    if failures.is_empty() {
        return outcome;
    }
    let note = failures.join("; ");
    let mut outcome = outcome;
    match &mut outcome {
        LuaOutcome::Returned { message, .. } => *message = format!("{message} ({note})"),
        LuaOutcome::Error(text) => *text = format!("{text}\n({note})"),
        _ => {}
    }
    outcome
}

fn cap(mut text: String) -> String {
    if text.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("\n[... truncated; see the log]");
    }
    text
}

/// The limit, the hook, the safety replacements and the modules.
pub(super) fn prepare(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<()> {
    // The limits slothctl applies too: neither the deadline, nor a stop,
    // nor running out of memory can be caught by `pcall`.
    let ctl = ctx.ctl.clone();
    sloth_sdk::lua::limits::install(lua, MEMORY_LIMIT, HOOK_INSTRUCTIONS, move |_| ctl.checked())?;
    harden(lua, ctx)?;
    super::install(lua, ctx)
}

/// `print` and `io.write` to the TaskRun log; no `os.exit`, no processes
/// outside `exec.run`, no stdin; `os.getenv` sees `env.set`.
fn harden(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<()> {
    let globals = lua.globals();
    let out = ctx.clone();
    globals.set(
        "print",
        lua.create_function(move |lua, args: MultiValue| {
            out.out.line(&join_args(lua, args, "\t")?);
            Ok(())
        })?,
    )?;
    let refuse = |what: &'static str, instead: &'static str| {
        lua.create_function(move |_, _: MultiValue| -> mlua::Result<()> {
            Err(mlua::Error::runtime(format!(
                "{what} is not available in Sloth Lua payloads; {instead}"
            )))
        })
    };
    if let Ok(os) = globals.get::<Table>("os") {
        os.set(
            "exit",
            refuse("os.exit", "return false, \"message\" to fail the task")?,
        )?;
        os.set("execute", refuse("os.execute", "use exec.run")?)?;
        let env = ctx.clone();
        os.set(
            "getenv",
            lua.create_function(move |_, name: String| Ok(super::env::lookup(&env, &name)))?,
        )?;
    }
    if let Ok(io) = globals.get::<Table>("io") {
        io.set("popen", refuse("io.popen", "use exec.run")?)?;
        io.set("read", refuse("io.read", "the task has no standard input")?)?;
        let out = ctx.clone();
        io.set(
            "write",
            lua.create_function(move |lua, args: MultiValue| {
                let text = join_args(lua, args, "")?;
                out.out.line(text.strip_suffix('\n').unwrap_or(&text));
                Ok(())
            })?,
        )?;
    }
    Ok(())
}

/// The `this` table: the TaskRun, its namespace, the agent, the attempt and
/// the working directory.
pub(super) fn this_table(lua: &Lua, job: &LuaJob) -> mlua::Result<Table> {
    let this = lua.create_table()?;
    this.set("taskrun", job.taskrun.as_str())?;
    this.set("namespace", job.namespace.as_str())?;
    this.set("agent", job.agent.as_str())?;
    this.set("attempt", job.attempt)?;
    this.set("workdir", job.cwd.to_string_lossy().into_owned())?;
    this.set("check_mode", job.check_mode)?;
    Ok(this)
}

/// A task of a workflow file in the sloth-runner DSL (an entry
/// `WORKFLOW/TASK`): the file is evaluated again and the task found, to be
/// run with its hooks (see hooks.rs). None for other Lua payloads.
fn dsl_task(lua: &Lua, job: &LuaJob) -> mlua::Result<Option<sloth_sdk::lua::TaskEntry>> {
    let payload = &job.payload;
    let Some(entry) = payload.entry.as_deref().filter(|e| e.contains('/')) else {
        return Ok(None);
    };
    let chunk_name = format!("{}.lua", job.taskrun);
    // The file is evaluated with the modules slothctl bundled beside it and
    // its `values`, so every agent runs the same code.
    let bundle = sloth_sdk::lua::modules::Source::Bundle(payload.modules.clone());
    sloth_sdk::lua::modules::install(lua, bundle)?;
    sloth_sdk::lua::install(lua, &values_of(&payload.params))?;
    sloth_sdk::lua::task_entry(lua, &payload.script, &chunk_name, entry)
        .map(Some)
        .map_err(|e| mlua::Error::runtime(e.to_string()))
}

fn call(lua: &Lua, job: &LuaJob) -> mlua::Result<MultiValue> {
    let payload = &job.payload;
    let args = (
        this_table(lua, job)?,
        lua.to_value(&payload.params)?,
        lua.to_value(&payload.input)?,
    );
    let chunk_name = format!("{}.lua", job.taskrun);
    let entry = payload.entry.as_deref().filter(|e| !e.trim().is_empty());
    let chunk = lua
        .load(payload.script.as_str())
        .set_name(format!("={chunk_name}"))
        .into_function()?;
    let values: MultiValue = chunk.call(args.clone())?;
    let function = match entry {
        Some(entry) => entry_function(lua, entry)?,
        None => match values.front() {
            Some(Value::Function(f)) => f.clone(),
            _ => return Ok(values),
        },
    };
    function.call(args)
}

/// The `values` global of a workflow file on the agent: its params (which
/// slothctl merged `--param`/`--values` into), as text.
fn values_of(params: &BTreeMap<String, serde_json::Value>) -> BTreeMap<String, String> {
    params
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// The global function named by `entry` (`main`, `jobs.build`).
fn entry_function(lua: &Lua, entry: &str) -> mlua::Result<Function> {
    let mut current = Value::Table(lua.globals());
    let mut path = String::new();
    for part in entry.split('.') {
        let Value::Table(table) = current else {
            return Err(mlua::Error::runtime(format!(
                "entry {entry:?}: {path} is a {}, not a table",
                type_name(&current)
            )));
        };
        current = table.get::<Value>(part)?;
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(part);
    }
    match current {
        Value::Function(f) => Ok(f),
        other => Err(mlua::Error::runtime(format!(
            "entry {entry:?} is not a function (it is {})",
            type_name(&other)
        ))),
    }
}
