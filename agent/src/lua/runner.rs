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

/// Longest message kept in the TaskRun's status (the log has all of it).
const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// How a Lua payload ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LuaOutcome {
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
pub async fn run(job: LuaJob, stop: watch::Receiver<Option<StopReason>>) -> LuaOutcome {
    let handle = tokio::runtime::Handle::current();
    match tokio::task::spawn_blocking(move || run_blocking(job, Some(stop), Some(handle))).await {
        Ok(outcome) => outcome,
        Err(e) => LuaOutcome::Error(format!("the Lua thread failed: {e}")),
    }
}

/// Runs `job` on the calling thread.
pub fn run_blocking(
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
    let masks = &job.masks;
    match outcome {
        LuaOutcome::Error(text) => LuaOutcome::Error(cap(masks.text(&text))),
        LuaOutcome::Returned {
            ok,
            message,
            results,
        } => LuaOutcome::Returned {
            ok,
            message: cap(masks.text(&message)),
            results: masks.map(results),
        },
        LuaOutcome::InvalidResults(text) => LuaOutcome::InvalidResults(masks.text(&text)),
        other => other,
    }
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
    match outcome {
        LuaOutcome::Returned {
            ok,
            message,
            results,
        } => LuaOutcome::Returned {
            ok,
            message: format!("{message} ({note})"),
            results,
        },
        LuaOutcome::Error(text) => LuaOutcome::Error(format!("{text}\n({note})")),
        other => other,
    }
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

/// What a workflow file's task returned: as [`returned`], except that
/// returning nothing (or `nil`) fails, naming the function's line.
pub(super) fn returned_from_task(lua: &Lua, values: MultiValue, command: &Value) -> LuaOutcome {
    if matches!(values.front(), None | Some(Value::Nil))
        && matches!(values.get(1), None | Some(Value::Nil))
    {
        let at = match command {
            Value::Function(f) => {
                let info = f.info();
                let src = info.short_src.unwrap_or_default();
                format!("{src}:{}: ", info.line_defined.unwrap_or(0))
            }
            _ => String::new(),
        };
        return LuaOutcome::Returned {
            ok: false,
            message: format!(
                "{at}the task's function returned nil: return true or false [, message [, outputs]]"
            ),
            results: BTreeMap::new(),
        };
    }
    returned(lua, values)
}

/// The verdict of a table returned first: its `success` field (what
/// `exec.run` returns), with its stdout and stderr as the message.
fn table_verdict(table: &Table) -> Option<(bool, String)> {
    let success = match table.get::<Value>("success").ok()? {
        Value::Boolean(b) => b,
        Value::Nil => return None,
        _ => true,
    };
    let text = |key: &str| {
        table
            .get::<Option<String>>(key)
            .ok()
            .flatten()
            .map(|s| s.trim_end().to_string())
            .filter(|s| !s.is_empty())
    };
    let mut message: Vec<String> = Vec::new();
    if let Some(code) = table.get::<Option<i64>>("exit_code").ok().flatten() {
        message.push(format!("exit code {code}"));
    }
    message.extend(text("stdout"));
    message.extend(text("stderr"));
    let message = if message.is_empty() {
        format!("success = {success}")
    } else {
        message.join("\n")
    };
    Some((success, message))
}

/// Reads `ok, message, results` from what the code returned.
fn returned(lua: &Lua, values: MultiValue) -> LuaOutcome {
    let values = values.into_vec();
    let get = |i: usize| values.get(i).cloned().unwrap_or(Value::Nil);
    let verdict = match get(0) {
        Value::Table(t) => table_verdict(&t),
        _ => None,
    };
    let ok = match get(0) {
        _ if verdict.is_some() => verdict.as_ref().is_some_and(|v| v.0),
        Value::Boolean(b) => b,
        // `return nil, "message"` fails; a bare `return nil` does not.
        Value::Nil => matches!(get(1), Value::Nil),
        _ => true,
    };
    let message = match get(1) {
        Value::Nil if verdict.is_some() => verdict.map(|v| v.1),
        Value::Nil => None,
        other => lua
            .coerce_string(other.clone())
            .ok()
            .flatten()
            .map(|s| s.to_string_lossy())
            .or_else(|| Some(format!("({})", type_name(&other)))),
    };
    let message = message.unwrap_or_else(|| {
        if ok {
            "the Lua code completed".into()
        } else {
            "the Lua code returned false".into()
        }
    });
    match results_of(lua, &get(2)) {
        Ok(results) => LuaOutcome::Returned {
            ok,
            message,
            results,
        },
        Err(problem) => LuaOutcome::InvalidResults(problem),
    }
}

/// The results table as `status.results`: string keys with string, number
/// or boolean values, under the same rules and caps as shell results.
pub fn results_of(lua: &Lua, value: &Value) -> Result<BTreeMap<String, String>, String> {
    let table = match value {
        Value::Nil => return Ok(BTreeMap::new()),
        Value::Table(t) => t,
        other => {
            return Err(format!("results must be a table, got {}", type_name(other)));
        }
    };
    let mut results = BTreeMap::new();
    for pair in table.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| describe_error(&e))?;
        let key = match key {
            Value::String(s) => s.to_string_lossy(),
            other => {
                let shown = lua
                    .coerce_string(other.clone())
                    .ok()
                    .flatten()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_else(|| type_name(&other).to_string());
                return Err(format!(
                    "result key {shown} is a {}, not a string",
                    type_name(&other)
                ));
            }
        };
        let text = match &value {
            Value::String(s) => s.to_string_lossy(),
            Value::Boolean(b) => b.to_string(),
            Value::Integer(_) | Value::Number(_) => lua
                .coerce_string(value.clone())
                .ok()
                .flatten()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default(),
            Value::Table(_) => {
                return Err(format!(
                    "result {key:?} is a nested table (values must be strings, numbers or booleans; use json.encode)"
                ));
            }
            other => {
                return Err(format!(
                    "result {key:?} is a {} (values must be strings, numbers or booleans)",
                    type_name(other)
                ));
            }
        };
        crate::results::check_key(&key).map_err(|why| format!("bad result: {why}"))?;
        results.insert(key, text);
        crate::results::check_caps(&results)?;
    }
    Ok(results)
}

/// The text of a Lua error: its message (with the position `chunk:LINE:`
/// of the Lua code that raised it) and its traceback.
pub fn describe_error(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(message) => message.clone(),
        mlua::Error::MemoryError(message) => format!(
            "out of memory (the limit is {} MiB): {message}",
            MEMORY_LIMIT / (1024 * 1024)
        ),
        mlua::Error::CallbackError { traceback, cause } => {
            let inner = describe_error(cause);
            let inner = match position(traceback) {
                Some(at) if !has_position(&inner) => format!("{at} {inner}"),
                _ => inner,
            };
            if inner.contains("stack traceback:") {
                inner
            } else {
                format!("{inner}\n{traceback}")
            }
        }
        mlua::Error::WithContext { context, cause } => {
            format!("{context}: {}", describe_error(cause))
        }
        mlua::Error::ExternalError(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// The text starts with a position `chunk:LINE:`.
fn has_position(text: &str) -> bool {
    let first = text.lines().next().unwrap_or_default();
    first.split(':').nth(1).is_some_and(|n| {
        !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && !first.starts_with(' ')
    })
}

/// `chunk:LINE:` of the first Lua frame in a traceback.
fn position(traceback: &str) -> Option<String> {
    traceback.lines().skip(1).find_map(|line| {
        let line = line.trim_start();
        if line.starts_with("[C]") {
            return None;
        }
        let (place, _) = line.split_once(": ")?;
        let (_, number) = place.rsplit_once(':')?;
        number.parse::<u32>().is_ok().then(|| format!("{place}:"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sloth_sdk::objects::LuaPayload;
    use std::time::{Duration, Instant};

    fn job(dir: &std::path::Path, script: &str, entry: Option<&str>) -> LuaJob {
        LuaJob {
            payload: LuaPayload {
                script: script.into(),
                entry: entry.map(str::to_string),
                params: BTreeMap::from([("name".to_string(), serde_json::json!("world"))]),
                input: BTreeMap::from([(
                    "build".to_string(),
                    BTreeMap::from([("version".to_string(), "1.2.3".to_string())]),
                )]),
                modules: Default::default(),
            },
            namespace: "default".into(),
            taskrun: "t1".into(),
            agent: "a1".into(),
            attempt: 2,
            cwd: dir.to_path_buf(),
            output: dir.join("output.log"),
            pid_file: Some(dir.join("pgid")),
            env: vec![("GREETING".into(), "hello".into())],
            timeout: Some(Duration::from_secs(20)),
            client: None,
            supervision: crate::supervisor::Supervision::unfenced(),
            secrets: Default::default(),
            masks: Default::default(),
            check_mode: false,
            metrics: crate::lua::MetricsSink::default(),
            hook_failures: Default::default(),
        }
    }

    #[test]
    fn secrets_are_read_from_lua_and_masked_in_output_message_and_results() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut job = job(
            dir.path(),
            r#"
            local pw = secret.get("db", "password")
            print("pw is " .. pw .. " and " .. secrets.db.password)
            local ok, err = pcall(secret.get, "other", "k")
            print(err)
            return true, "used " .. pw, { leaked = pw }
            "#,
            None,
        );
        job.secrets = BTreeMap::from([(
            "db".to_string(),
            BTreeMap::from([("password".to_string(), b"hunter2".to_vec())]),
        )]);
        job.masks = crate::masking::Masks::new([&b"hunter2"[..]]);
        let outcome = run_blocking(job, None, None);
        let log = std::fs::read_to_string(dir.path().join("output.log")).expect("log");
        assert!(log.contains("pw is *** and ***"), "{log}");
        assert!(log.contains("\"other\" is not delivered"), "{log}");
        assert!(!log.contains("hunter2"), "{log}");
        let LuaOutcome::Returned {
            ok,
            message,
            results,
        } = outcome
        else {
            panic!("{outcome:?}");
        };
        assert!(ok);
        assert_eq!(message, "used ***");
        assert_eq!(results["leaked"], "***");
    }

    fn run_script(script: &str, entry: Option<&str>) -> (LuaOutcome, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = job(dir.path(), script, entry);
        let outcome = run_blocking(j, None, None);
        let log = std::fs::read_to_string(dir.path().join("output.log")).unwrap_or_default();
        (outcome, log)
    }

    fn returned_ok(outcome: &LuaOutcome) -> (&str, &BTreeMap<String, String>) {
        match outcome {
            LuaOutcome::Returned {
                ok: true,
                message,
                results,
            } => (message, results),
            other => panic!("not a success: {other:?}"),
        }
    }

    #[test]
    fn top_level_code_gets_this_params_and_input() {
        let (outcome, log) = run_script(
            r#"local this, params, input = ...
            print("hi", params.name, 3)
            return true, "done " .. this.taskrun .. " " .. this.attempt,
              {version = input.build.version, n = 3, x = 1.5, yes = true, agent = this.agent}"#,
            None,
        );
        let (message, results) = returned_ok(&outcome);
        assert_eq!(message, "done t1 2");
        assert_eq!(results["version"], "1.2.3");
        assert_eq!(results["n"], "3");
        assert_eq!(results["x"], "1.5");
        assert_eq!(results["yes"], "true");
        assert_eq!(results["agent"], "a1");
        assert_eq!(log, "hi\tworld\t3\n");
    }

    #[test]
    fn a_returned_function_is_called() {
        let (outcome, _) = run_script(
            "return function(this, params, input) return true, params.name end",
            None,
        );
        assert_eq!(returned_ok(&outcome).0, "world");
    }

    #[test]
    fn entry_names_a_global_function() {
        let script = r#"
            jobs = {}
            function jobs.build(this, params) return true, "built " .. params.name end
            function main(this) return false, "main failed" end"#;
        let (outcome, _) = run_script(script, Some("jobs.build"));
        assert_eq!(returned_ok(&outcome).0, "built world");
        let (outcome, _) = run_script(script, Some("main"));
        assert!(
            matches!(&outcome, LuaOutcome::Returned { ok: false, message, .. } if message == "main failed"),
            "{outcome:?}"
        );
        let (outcome, _) = run_script(script, Some("jobs.missing"));
        assert!(
            matches!(&outcome, LuaOutcome::Error(m) if m.contains("\"jobs.missing\" is not a function")),
            "{outcome:?}"
        );
        let (outcome, _) = run_script(script, Some("main.x.y"));
        assert!(
            matches!(&outcome, LuaOutcome::Error(m) if m.contains("main is a function, not a table")),
            "{outcome:?}"
        );
    }

    #[test]
    fn nothing_returned_succeeds_and_nil_with_message_fails() {
        let (outcome, _) = run_script("local x = 1", None);
        assert_eq!(returned_ok(&outcome).0, "the Lua code completed");
        let (outcome, _) = run_script("return nil, 'nope'", None);
        assert!(
            matches!(&outcome, LuaOutcome::Returned { ok: false, message, .. } if message == "nope"),
            "{outcome:?}"
        );
        let (outcome, _) = run_script("return false", None);
        assert!(
            matches!(&outcome, LuaOutcome::Returned { ok: false, message, .. } if message == "the Lua code returned false"),
            "{outcome:?}"
        );
    }

    #[test]
    fn bad_results_are_refused_by_name() {
        for (script, want) in [
            (
                "return true, 'x', {a = {b = 1}}",
                "result \"a\" is a nested table",
            ),
            ("return true, 'x', {1, 2}", "result key 1 is a number"),
            (
                "return true, 'x', 'str'",
                "results must be a table, got string",
            ),
            (
                "return true, 'x', {['bad key'] = 1}",
                "bad result: invalid key \"bad key\"",
            ),
            (
                "return true, 'x', {f = print}",
                "result \"f\" is a function",
            ),
            (
                "local r = {} for i = 1, 65 do r['k' .. i] = 'v' end return true, 'x', r",
                "too many results (at most 64)",
            ),
            (
                "return true, 'x', {k = string.rep('x', 17000)}",
                "results too large",
            ),
        ] {
            let (outcome, log) = run_script(script, None);
            assert!(
                matches!(&outcome, LuaOutcome::InvalidResults(m) if m.contains(want)),
                "{script}: {outcome:?}"
            );
            assert!(log.contains(want), "{log}");
        }
    }

    #[test]
    fn errors_carry_the_line_and_a_traceback_and_go_to_the_log() {
        let (outcome, log) = run_script("local x = 1\nlocal y = = 2", None);
        let LuaOutcome::Error(message) = &outcome else {
            panic!("{outcome:?}")
        };
        assert!(message.contains("t1.lua:2:"), "{message}");
        assert!(log.contains(message.as_str()), "{log}");
        let (outcome, log) = run_script("local x = 1\n\nerror('boom')", None);
        let LuaOutcome::Error(message) = &outcome else {
            panic!("{outcome:?}")
        };
        assert!(message.starts_with("t1.lua:3: boom"), "{message}");
        assert!(message.contains("stack traceback:"), "{message}");
        assert!(log.contains("t1.lua:3: boom"), "{log}");
        let (outcome, _) = run_script("local x = nil\nreturn x.y", None);
        assert!(
            matches!(&outcome, LuaOutcome::Error(m) if m.contains("t1.lua:2: attempt to index")),
            "{outcome:?}"
        );
        let (outcome, _) = run_script(
            "lock.with = nil\nlocal function f()\n  error('inner')\nend\nlocal ok = pcall(f)\nreturn json.encode(setmetatable({}, {__index = function() f() end}).x)",
            None,
        );
        assert!(
            matches!(&outcome, LuaOutcome::Error(m) if m.starts_with("t1.lua:3: inner")),
            "{outcome:?}"
        );
        let (outcome, _) = run_script("\n\nexec.run(42)", None);
        let LuaOutcome::Error(message) = &outcome else {
            panic!("{outcome:?}")
        };
        assert!(
            message
                .starts_with("t1.lua:3: exec.run: argument 1 (cmd) must be a string, got number"),
            "{message}"
        );
    }

    #[test]
    fn endless_loops_time_out_even_under_pcall_and_in_coroutines() {
        for script in [
            "while true do end",
            "while true do pcall(function() while true do end end) end",
            "coroutine.wrap(function() while true do end end)()",
            "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
            "time.sleep(100)",
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut j = job(dir.path(), script, None);
            j.timeout = Some(Duration::from_millis(300));
            let started = Instant::now();
            let outcome = run_blocking(j, None, None);
            assert_eq!(outcome, LuaOutcome::TimedOut, "{script}");
            assert!(started.elapsed() < Duration::from_secs(5), "{script}");
        }
    }

    #[test]
    fn a_stop_interrupts_the_code() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut j = job(dir.path(), "while true do end", None);
        j.timeout = None;
        let (tx, rx) = watch::channel(None);
        let thread = std::thread::spawn(move || run_blocking(j, Some(rx), None));
        std::thread::sleep(Duration::from_millis(100));
        tx.send_replace(Some(StopReason::Deleted));
        let outcome = thread.join().expect("thread");
        assert_eq!(outcome, LuaOutcome::Stopped(StopReason::Deleted));
    }

    #[test]
    fn a_caught_memory_error_stops_the_code() {
        let (outcome, _) = run_script(
            "while true do pcall(function() local t = {} \
             while true do t[#t+1] = string.rep('x', 1e6) end end) end",
            None,
        );
        assert!(
            matches!(&outcome, LuaOutcome::Error(m) if m.contains("memory limit of 256 MiB")),
            "{outcome:?}"
        );
    }

    #[test]
    fn memory_is_limited() {
        let (outcome, _) = run_script(
            "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1024) .. i end",
            None,
        );
        assert!(
            matches!(&outcome, LuaOutcome::Error(m) if m.contains("memory")),
            "{outcome:?}"
        );
    }

    #[test]
    fn dangerous_functions_are_replaced() {
        for (script, want) in [
            ("os.exit(1)", "os.exit is not available"),
            ("os.execute('true')", "use exec.run"),
            ("io.popen('true')", "use exec.run"),
            ("io.read()", "no standard input"),
        ] {
            let (outcome, _) = run_script(script, None);
            assert!(
                matches!(&outcome, LuaOutcome::Error(m) if m.contains(want)),
                "{script}: {outcome:?}"
            );
        }
        let (outcome, log) = run_script(
            "env.set('X_SLOTH', 'y') io.write('a', 1, '\\n') return true, os.getenv('X_SLOTH') .. os.getenv('GREETING')",
            None,
        );
        assert_eq!(returned_ok(&outcome).0, "yhello");
        assert_eq!(log, "a1\n");
    }

    #[test]
    fn modules_are_requirable() {
        let (outcome, _) = run_script(
            "local fs = require('fs') local j = require('json') return fs == _G.fs and j == json, 'm'",
            None,
        );
        assert_eq!(returned_ok(&outcome).0, "m");
    }

    #[test]
    fn dsl_entries_call_the_task_function_of_a_workflow_file() {
        let file = r#"
            local function version() return "1.2.3" end
            local build = task("build_app")
              :command(function(this, params, input)
                local out = exec.run("echo built")
                log.info("building " .. params.name)
                return true, out.stdout:gsub("\n", ""), { version = version(), from = input.build.version }
              end)
              :build()
            local broken = task("broken")
              :command(function() local x = nil; return x.y end)
              :build()
            workflow.define("ci_pipeline"):tasks({ build, broken })
        "#;
        let (outcome, log) = run_script(file, Some("ci-pipeline/build_app"));
        let (message, results) = returned_ok(&outcome);
        assert_eq!(message, "built");
        assert_eq!(results["version"], "1.2.3");
        assert_eq!(results["from"], "1.2.3");
        assert!(log.contains("[INFO] building world"), "{log}");
        let (outcome, _) = run_script(file, Some("ci-pipeline/broken"));
        assert!(
            matches!(&outcome, LuaOutcome::Error(m) if m.contains("t1.lua:11: attempt to index")),
            "{outcome:?}"
        );
        let (outcome, _) = run_script(file, Some("ci-pipeline/missing"));
        assert!(
            matches!(&outcome, LuaOutcome::Error(m) if m.contains("missing")),
            "{outcome:?}"
        );
        let (outcome, _) = run_script("task(", Some("w/t"));
        assert!(
            matches!(&outcome, LuaOutcome::Error(m) if m.contains("t1.lua:1:")),
            "{outcome:?}"
        );
    }

    #[test]
    fn dsl_tasks_decide_by_exec_tables_fail_on_nil_and_legacy_gets_params_first() {
        let file = r#"
            workflow.define("w"):tasks({
              task("table_ok"):command(function() return { success = true, stdout = "out\n", exit_code = 0 } end):build(),
              task("table_bad"):command(function() return { success = false, stderr = "bad\n", exit_code = 2 } end):build(),
              task("nothing"):command(function() end):build(),
            })
            TaskDefinitions = { g = { tasks = { { name = "legacy",
              command = function(params, input) return true, params.name .. " " .. input.build.version end } } } }
        "#;
        let (outcome, _) = run_script(file, Some("w/table_ok"));
        assert_eq!(returned_ok(&outcome).0, "exit code 0\nout");
        let (outcome, _) = run_script(file, Some("w/table_bad"));
        assert!(
            matches!(&outcome, LuaOutcome::Returned { ok: false, message, .. } if message == "exit code 2\nbad"),
            "{outcome:?}"
        );
        let (outcome, _) = run_script(file, Some("w/nothing"));
        assert!(
            matches!(&outcome, LuaOutcome::Returned { ok: false, message, .. }
                if message.starts_with("t1.lua:5: the task's function returned nil")),
            "{outcome:?}"
        );
        let (outcome, _) = run_script(file, Some("g/legacy"));
        assert_eq!(returned_ok(&outcome).0, "world 1.2.3");
    }
}
