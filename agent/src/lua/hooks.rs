//! A task of a workflow file run with its hooks, in one Lua state:
//! `pre_hook`, the command, then `on_success`, `on_failure` or
//! `on_timeout`, then `post_hook`.
//!
//! A hook fails when it raises an error or returns `false`. A failing
//! `pre_hook` fails the task (its command does not run); any other failing
//! hook is written to the log and added to the status message, and leaves
//! the task's result as it was.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlua::{Function, IntoLuaMulti, Lua, MultiValue, Table, Value};
use sloth_sdk::lua::TaskEntry;

use super::payload::{LuaOutcome, describe_error, outcome_of_error, returned_from_task};
use super::{LuaJob, RunCtx};

/// Time an `on_timeout` hook gets once the task's deadline has passed.
const TIMEOUT_HOOK_GRACE: Duration = Duration::from_secs(10);

/// The TaskRun status condition the agent sets when a hook failed; the
/// workflow controller records it as a Warning Event `HookFailed`.
pub(crate) const HOOK_FAILED: &str = sloth_sdk::well_known::HOOK_FAILED_CONDITION;

/// The hook failures of a run, read by the agent once the run ended.
#[derive(Clone, Debug, Default)]
pub(crate) struct HookSink(Arc<Mutex<Vec<String>>>);

impl HookSink {
    pub(crate) fn values(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    pub(super) fn set(&self, failures: Vec<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = failures;
    }
}

/// The task's `params` and `input`, and `this`, as its hooks and command
/// receive them.
struct Args {
    this: Table,
    params: Value,
    input: Value,
    legacy: bool,
}

impl Args {
    /// `(this, params, extra...)`, or in the TaskDefinitions form
    /// `(params, extra...)`.
    fn with(&self, extra: impl IntoLuaMulti, lua: &Lua) -> mlua::Result<MultiValue> {
        let mut args = MultiValue::new();
        if !self.legacy {
            args.push_back(Value::Table(self.this.clone()));
        }
        args.push_back(self.params.clone());
        args.extend(extra.into_lua_multi(lua)?);
        Ok(args)
    }
}

/// Runs `task` with its hooks; hook failures are appended to `failures`.
pub(super) fn run_task(
    lua: &Lua,
    ctx: &RunCtx,
    job: &LuaJob,
    task: &TaskEntry,
    this: Table,
    failures: &mut Vec<String>,
) -> LuaOutcome {
    let args = match (
        mlua::LuaSerdeExt::to_value(lua, &job.payload.params),
        mlua::LuaSerdeExt::to_value(lua, &job.payload.input),
    ) {
        (Ok(params), Ok(input)) => Args {
            this,
            params,
            input,
            legacy: task.legacy,
        },
        (Err(e), _) | (_, Err(e)) => return LuaOutcome::Error(describe_error(&e)),
    };
    let hook = |name: &str, extra: MultiValue, failures: &mut Vec<String>| -> bool {
        let Some(f) = task.hooks.get(name) else {
            return true;
        };
        match call_hook(lua, f, &args, extra) {
            Ok(()) => true,
            Err(why) => {
                ctx.out
                    .error_line(&format!("[ERROR] hook {name} failed: {why}"));
                failures.push(format!("hook {name} failed: {why}"));
                false
            }
        }
    };
    if !hook("pre_hook", MultiValue::new(), failures) {
        let why = failures.pop().unwrap_or_default();
        return LuaOutcome::Returned {
            ok: false,
            message: format!("the task did not run: {why}"),
            results: Default::default(),
        };
    }
    let outcome = command(lua, ctx, task, &args);
    let ok = matches!(outcome, LuaOutcome::Returned { ok: true, .. });
    match &outcome {
        LuaOutcome::Returned {
            ok: true, results, ..
        } => {
            let results = lua.create_table_from(results.clone()).map(Value::Table);
            hook(
                "on_success",
                results.into_lua_multi(lua).unwrap_or_default(),
                failures,
            );
        }
        LuaOutcome::Returned { message, .. } | LuaOutcome::Error(message) => {
            hook("on_failure", one(lua, message), failures);
        }
        LuaOutcome::InvalidResults(message) => {
            hook("on_failure", one(lua, message), failures);
        }
        LuaOutcome::TimedOut => {
            ctx.ctl.extend_deadline(TIMEOUT_HOOK_GRACE);
            let name = if task.hooks.contains_key("on_timeout") {
                "on_timeout"
            } else {
                "on_failure"
            };
            hook(name, one(lua, "the task timed out"), failures);
        }
        // Stopped or never started: nothing more runs.
        LuaOutcome::Stopped(_) | LuaOutcome::NotStarted(_) => return outcome,
    }
    hook(
        "post_hook",
        (ok,).into_lua_multi(lua).unwrap_or_default(),
        failures,
    );
    outcome
}

fn one(lua: &Lua, text: &str) -> MultiValue {
    text.into_lua_multi(lua).unwrap_or_default()
}

/// The command: the task's function with the arguments of its form, or a
/// shell command through `exec.run` (a shell task with hooks).
fn command(lua: &Lua, ctx: &RunCtx, task: &TaskEntry, args: &Args) -> LuaOutcome {
    let called = match &task.command {
        Value::Function(f) => args
            .with(args.input.clone(), lua)
            .and_then(|a| f.call::<MultiValue>(a)),
        Value::String(cmd) => lua
            .globals()
            .get::<Table>("exec")
            .and_then(|exec| exec.get::<Function>("run"))
            .and_then(|run| run.call::<MultiValue>(cmd.clone())),
        other => Err(mlua::Error::runtime(format!(
            "the task's command is a {}, not a function or a shell command",
            other.type_name()
        ))),
    };
    match called {
        Ok(values) => returned_from_task(lua, values, &task.command),
        Err(e) => outcome_of_error(&ctx.ctl, &e),
    }
}

/// Calls one hook: an error or a returned `false` is a failure.
fn call_hook(lua: &Lua, f: &Function, args: &Args, extra: MultiValue) -> Result<(), String> {
    let values = args
        .with(extra, lua)
        .and_then(|a| f.call::<MultiValue>(a))
        .map_err(|e| {
            describe_error(&e)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })?;
    match values.front() {
        Some(Value::Boolean(false)) => Err(match values.get(1) {
            Some(Value::String(s)) => s.to_string_lossy(),
            _ => "it returned false".into(),
        }),
        _ => Ok(()),
    }
}
