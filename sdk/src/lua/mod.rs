//! The sloth-runner workflow DSL, evaluated into [`Workflow`] objects.
//!
//! A workflow file is Lua 5.4 using `task("name"):command(...)...`,
//! `workflow.define(...)` or the `TaskDefinitions = {...}` table. slothctl
//! evaluates it with [`evaluate`] in a sandbox (no `os`, `io`, `debug`,
//! files or network; a memory limit and an instruction budget), and the
//! agent re-evaluates it with [`task_function`] to call a task's Lua
//! function. docs/lua.md describes the forms.

mod convert;
pub mod limits;
pub mod modules;
mod sandbox;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use mlua;

use crate::objects::workflow::Workflow;
use crate::well_known::{ADDRESS_ANNOTATION, AGENT_LABEL, MODULES_ANNOTATION};

/// Memory a workflow file may use while slothctl evaluates it.
pub const MEMORY_LIMIT: usize = 64 * 1024 * 1024;
/// Lua VM instructions a workflow file may run while slothctl evaluates it.
pub const INSTRUCTION_LIMIT: u64 = 200_000_000;
/// Wall-clock time a workflow file may run while slothctl evaluates it.
pub const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
/// The modules whose functions only exist on the agent.
pub const AGENT_MODULES: &[&str] = &[
    "exec",
    "fs",
    "log",
    "json",
    "yaml",
    "env",
    "http",
    "template",
    "lock",
    "time",
    "state",
    "stack",
    "secret",
    "file_ops",
    "facts",
    "infra_test",
    "net",
    "metrics",
    "git",
    "pkg",
    "systemd",
    "docker",
];

/// A problem in a workflow file, with the file and, when known, the line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DslError {
    /// `pipeline.lua:12: unknown task method 'retrys'`.
    #[error("{chunk}:{line}: {message}")]
    At {
        /// The file (Lua chunk name).
        chunk: String,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A problem not tied to a line (the memory limit, a missing entry).
    #[error("{chunk}: {message}")]
    File {
        /// The file (Lua chunk name).
        chunk: String,
        /// What is wrong.
        message: String,
    },
}

impl DslError {
    /// The file (chunk name) the error is in.
    pub fn chunk(&self) -> &str {
        match self {
            Self::At { chunk, .. } | Self::File { chunk, .. } => chunk,
        }
    }

    /// The Lua line number, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::At { line, .. } => Some(*line),
            Self::File { .. } => None,
        }
    }

    /// The message without the file and line.
    pub fn message(&self) -> &str {
        match self {
            Self::At { message, .. } | Self::File { message, .. } => message,
        }
    }
}

/// A task written `delegate_to({address = "host:port"})`: the caller finds
/// the agent whose `spec.address` is `address` (see [`resolve_addresses`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressDelegation {
    /// The workflow the task belongs to.
    pub workflow: String,
    /// The task's name.
    pub task: String,
    /// The `address` it names, `host:port` as an agent's `spec.address`.
    pub address: String,
}

/// Everything [`evaluate_file`] found in a workflow file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// The workflows, in the order the file defines them (TaskDefinitions
    /// groups last, by name). No namespace is set.
    pub workflows: Vec<Workflow>,
    /// Tasks delegated by address, also recorded in [`ADDRESS_ANNOTATION`].
    pub delegations: Vec<AddressDelegation>,
    /// `file:line: ...` notes on accepted-but-ignored forms (`on_success`,
    /// `on_failure`, tasks in no workflow).
    pub warnings: Vec<String>,
    /// What the file printed with `print` while it was evaluated.
    pub printed: Vec<String>,
    /// The workflows defined with a `schedule`, by name: each is applied
    /// as a CronWorkflow (see [`Evaluation::object`]).
    pub schedules: BTreeMap<String, crate::objects::CronWorkflowSpec>,
    /// The files beside the workflow file it uses (`require`, `import`),
    /// bundled into every Lua task: path -> source.
    pub modules: modules::Bundle,
    /// The workspace directories (`workspace = "."`, relative to the file)
    /// by workflow name: slothctl packs, uploads and references them.
    pub workspaces: BTreeMap<String, String>,
}

impl Evaluation {
    /// What applying `workflow` sends: the Workflow, or for a scheduled one
    /// a CronWorkflow of the same name, labels and annotations whose
    /// `workflowSpec` is the workflow's spec.
    pub fn object(&self, workflow: &Workflow) -> Result<serde_json::Value, serde_json::Error> {
        match self.schedules.get(workflow.name()) {
            None => serde_json::to_value(workflow),
            Some(spec) => {
                let mut cron = crate::objects::CronWorkflow::new(
                    workflow.name(),
                    crate::objects::CronWorkflowSpec {
                        workflow_spec: workflow.spec.clone(),
                        ..spec.clone()
                    },
                );
                cron.metadata = workflow.metadata.clone();
                serde_json::to_value(&cron)
            }
        }
    }
}

/// Evaluates a workflow file in a fresh sandboxed Lua state; `values` is
/// the Lua global `values` (slothctl's `--param`s) and overrides the
/// workflows' `params` defaults.
pub fn evaluate(
    source: &str,
    chunk_name: &str,
    values: &BTreeMap<String, String>,
) -> Result<Vec<Workflow>, DslError> {
    evaluate_file(source, chunk_name, values).map(|e| e.workflows)
}

/// [`evaluate`], with the delegations by address, warnings and printed lines.
pub fn evaluate_file(
    source: &str,
    chunk_name: &str,
    values: &BTreeMap<String, String>,
) -> Result<Evaluation, DslError> {
    evaluate_beside(source, chunk_name, values, None)
}

/// [`evaluate_file`] for a file in `dir`: `require`/`import` read the
/// files beside it, and those it uses are bundled into its Lua tasks.
pub fn evaluate_beside(
    source: &str,
    chunk_name: &str,
    values: &BTreeMap<String, String>,
    dir: Option<&std::path::Path>,
) -> Result<Evaluation, DslError> {
    let (lua, printed) = sandbox::new_state(chunk_name).map_err(|e| error(chunk_name, &e))?;
    install(&lua, values).map_err(|e| error(chunk_name, &e))?;
    let recorded = dir
        .map(|dir| modules::install(&lua, modules::Source::Dir(dir.to_path_buf())))
        .transpose()
        .map_err(|e| error(chunk_name, &e))?;
    let state = run(&lua, source, chunk_name)?;
    let mut evaluation = convert::workflows(&state, source, chunk_name, values)?;
    evaluation.printed = printed.take();
    if let (Some(dir), Some(recorded)) = (dir, recorded) {
        modules::bundle_named(dir, source, &recorded).map_err(|message| DslError::File {
            chunk: chunk_name.to_string(),
            message,
        })?;
        evaluation.modules = recorded.take();
        bundle_into(&mut evaluation);
    }
    Ok(evaluation)
}

/// Puts the bundled modules into every Lua task of every workflow, and
/// their paths into the [`MODULES_ANNOTATION`].
fn bundle_into(evaluation: &mut Evaluation) {
    if evaluation.modules.is_empty() {
        return;
    }
    let paths: Vec<&str> = evaluation.modules.keys().map(String::as_str).collect();
    let listed = paths.join(",");
    for workflow in &mut evaluation.workflows {
        let spec = &mut workflow.spec;
        let runs = spec.tasks.iter_mut().map(|t| &mut t.run);
        for run in runs.chain(spec.hooks.iter_mut().map(|h| &mut h.run)) {
            if let Some(lua) = run.lua.as_mut() {
                lua.modules = evaluation.modules.clone();
            }
        }
        workflow
            .metadata
            .annotations
            .insert(MODULES_ANNOTATION.to_string(), listed.clone());
    }
}

/// The Lua registry key of the DSL state.
const STATE_KEY: &str = "sloth.dsl";

/// Installs the DSL globals (`task`, `workflow`, `values`) into `lua`; the
/// agent calls it on a state that has its own modules. Installing again
/// only replaces `values`.
pub fn install(lua: &mlua::Lua, values: &BTreeMap<String, String>) -> mlua::Result<()> {
    lua.globals()
        .set("values", lua.create_table_from(values.clone())?)?;
    if lua
        .named_registry_value::<Option<mlua::Table>>(STATE_KEY)?
        .is_some()
    {
        return Ok(());
    }
    let where_ = lua.create_function(|lua, level: usize| {
        Ok(lua
            .inspect_stack(level, |d| {
                let source = d.source();
                let name = source
                    .source
                    .map(|s| s.trim_start_matches(['=', '@']).to_string());
                (name, d.current_line())
            })
            .unwrap_or((None, None)))
    })?;
    let check_duration = lua.create_function(|_, text: String| {
        Ok(match text.parse::<crate::duration::Duration>() {
            Ok(_) => (true, None),
            Err(e) => (false, Some(e.to_string())),
        })
    })?;
    let state: mlua::Table = lua
        .load(include_str!("dsl.lua"))
        .set_name("=sloth-dsl")
        .call((where_, check_duration))?;
    lua.set_named_registry_value(STATE_KEY, state)
}

/// Evaluates the file in `lua` (installing the DSL first when needed) and
/// returns the function command of `entry`, `"WORKFLOW/TASK"` (names as
/// written in the file; the workflow may also be its object name).
pub fn task_function(
    lua: &mlua::Lua,
    source: &str,
    chunk_name: &str,
    entry: &str,
) -> Result<mlua::Function, DslError> {
    match task_entry(lua, source, chunk_name, entry)?.command {
        mlua::Value::Function(f) => Ok(f),
        _ => Err(DslError::File {
            chunk: chunk_name.to_string(),
            message: format!("task '{entry}' has no Lua function command"),
        }),
    }
}

/// What the agent runs for one task of a workflow file.
#[derive(Clone, Debug)]
pub struct TaskEntry {
    /// A Lua function, or a shell command (a task with hooks).
    pub command: mlua::Value,
    /// The TaskDefinitions form: `command(params, input)` instead of
    /// `command(this, params, input)`.
    pub legacy: bool,
    /// The task's hooks by name (`on_success`, `on_failure`, `on_timeout`,
    /// `pre_hook`, `post_hook`).
    pub hooks: BTreeMap<String, mlua::Function>,
}

/// Evaluates the file in `lua` (installing the DSL first when needed) and
/// returns the task named by `entry`, `"WORKFLOW/TASK"`.
pub fn task_entry(
    lua: &mlua::Lua,
    source: &str,
    chunk_name: &str,
    entry: &str,
) -> Result<TaskEntry, DslError> {
    // Task names never contain '/', workflow names might.
    let Some((workflow, task)) = entry.rsplit_once('/') else {
        return Err(DslError::File {
            chunk: chunk_name.to_string(),
            message: format!("the entry {entry:?} is not WORKFLOW/TASK"),
        });
    };
    if lua
        .named_registry_value::<Option<mlua::Table>>(STATE_KEY)
        .map_err(|e| error(chunk_name, &e))?
        .is_none()
    {
        install(lua, &BTreeMap::new()).map_err(|e| error(chunk_name, &e))?;
    }
    let state = run(lua, source, chunk_name)?;
    let table = convert::find_task(&state, chunk_name, workflow, task)?;
    let read = |e: mlua::Error| error(chunk_name, &e);
    Ok(TaskEntry {
        command: table.get("command").map_err(read)?,
        legacy: table
            .get::<Option<bool>>("legacy")
            .map_err(read)?
            .unwrap_or(false),
        hooks: table
            .get::<Option<BTreeMap<String, mlua::Function>>>("hooks")
            .map_err(read)?
            .unwrap_or_default(),
    })
}

/// Parameter layers merged in order: a key of a later layer wins. The
/// TaskDefinitions form merges `[--param/--values, group params, task
/// params]`; the fluent form `[workflow params, --param/--values, task
/// params]`.
pub fn merge_params(layers: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let mut merged = BTreeMap::new();
    for layer in layers {
        merged.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    merged
}

/// Runs the file in `lua` and the DSL's end-of-file checks; returns the state.
fn run(lua: &mlua::Lua, source: &str, chunk_name: &str) -> Result<mlua::Table, DslError> {
    let fail = |e: mlua::Error| error(chunk_name, &e);
    let state: mlua::Table = lua.named_registry_value(STATE_KEY).map_err(fail)?;
    state
        .get::<mlua::Function>("reset")
        .and_then(|f| f.call::<()>((chunk_name, source)))
        .map_err(fail)?;
    lua.load(source)
        .set_name(format!("={chunk_name}"))
        .set_mode(mlua::ChunkMode::Text)
        .exec()
        .map_err(fail)?;
    state
        .get::<mlua::Function>("finish")
        .and_then(|f| f.call::<()>(()))
        .map_err(fail)?;
    Ok(state)
}

/// A Lua error as a [`DslError`]: `file:line: message` when Lua said where.
fn error(chunk: &str, e: &mlua::Error) -> DslError {
    let text = lua_message(e);
    let text = text
        .split("\nstack traceback:")
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    match split_position(&text) {
        Some((line, message)) => DslError::At {
            chunk: chunk.to_string(),
            line,
            message: message.to_string(),
        },
        None => DslError::File {
            chunk: chunk.to_string(),
            message: text
                .strip_prefix(&format!("{chunk}: "))
                .map_or(text.clone(), str::to_string),
        },
    }
}

fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        mlua::Error::WithContext { cause, .. } => lua_message(cause),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(message) => message.clone(),
        mlua::Error::MemoryError(_) => format!(
            "the workflow file used more than {} MiB of memory",
            MEMORY_LIMIT / (1024 * 1024)
        ),
        other => other.to_string(),
    }
}

/// `"SRC:12: msg"` -> `(12, "msg")`: the first `:digits:` in the text.
fn split_position(text: &str) -> Option<(usize, &str)> {
    let bytes = text.as_bytes();
    let first_line = text.find('\n').unwrap_or(text.len());
    let mut i = 0;
    while i < first_line {
        if bytes[i] == b':' {
            let digits = bytes[i + 1..first_line]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let end = i + 1 + digits;
            if digits > 0 && bytes.get(end) == Some(&b':') {
                let line = text[i + 1..end].parse().ok()?;
                return Some((line, text[end + 1..].trim_start()));
            }
        }
        i += 1;
    }
    None
}

/// Replaces the [`ADDRESS_ANNOTATION`] of `workflow` by agent selectors:
/// `agent_at(address)` names the agent whose `spec.address` is `address`.
/// The error names the task and the address no agent has.
pub fn resolve_addresses(
    workflow: &mut Workflow,
    agent_at: impl Fn(&str) -> Option<String>,
) -> Result<(), String> {
    for delegation in address_delegations(workflow)? {
        let agent = agent_at(&delegation.address).ok_or_else(|| {
            format!(
                "workflow {:?}, task {:?}: delegate_to: no agent has the address {:?}",
                delegation.workflow, delegation.task, delegation.address
            )
        })?;
        if let Some(task) = workflow
            .spec
            .tasks
            .iter_mut()
            .find(|t| t.name == delegation.task)
        {
            task.agent_selector
                .get_or_insert_with(Default::default)
                .match_labels
                .insert(AGENT_LABEL.to_string(), agent);
        }
    }
    workflow.metadata.annotations.remove(ADDRESS_ANNOTATION);
    Ok(())
}

/// The delegations by address recorded in `workflow`'s [`ADDRESS_ANNOTATION`].
pub fn address_delegations(workflow: &Workflow) -> Result<Vec<AddressDelegation>, String> {
    let Some(text) = workflow.metadata.annotations.get(ADDRESS_ANNOTATION) else {
        return Ok(Vec::new());
    };
    let map: BTreeMap<String, String> =
        serde_json::from_str(text).map_err(|e| format!("annotation {ADDRESS_ANNOTATION}: {e}"))?;
    Ok(map
        .into_iter()
        .map(|(task, address)| AddressDelegation {
            workflow: workflow.metadata.name.clone(),
            task,
            address,
        })
        .collect())
}
