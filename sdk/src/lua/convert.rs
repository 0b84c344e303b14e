//! The DSL state (what the file defined) as Workflow objects.

use std::collections::BTreeMap;

use mlua::{Table, Value};

use super::{AddressDelegation, DslError, Evaluation};
use crate::duration::Duration;
use crate::object_name::object_name;
use crate::objects::common::{LabelSelector, LuaPayload, Payload, Placement, PlacementPolicy};
use crate::objects::cronworkflow::{ConcurrencyPolicy, CronWorkflowSpec};
use crate::objects::env::Env;
use crate::objects::workflow::{
    Backoff, RetryPolicy, WORKFLOW_HOOKS, Workflow, WorkflowHook, WorkflowSpec, WorkflowTask,
};
use crate::resource::Object;
use crate::validation::names::LABEL_VALUE_MAX_LEN;
use crate::well_known::{
    ADDRESS_ANNOTATION, AGENT_LABEL, DESCRIPTION_ANNOTATION, ORIGINAL_NAME_ANNOTATION,
    VERSION_ANNOTATION,
};

/// Reads one field, naming the object and line when it has the wrong type.
struct Reader<'a> {
    chunk: &'a str,
    table: &'a Table,
    line: usize,
}

impl Reader<'_> {
    fn at(&self, message: String) -> DslError {
        DslError::At {
            chunk: self.chunk.to_string(),
            line: self.line,
            message,
        }
    }

    fn get<T: mlua::FromLua>(&self, key: &str) -> Result<T, DslError> {
        self.table
            .get::<T>(key)
            .map_err(|e| self.at(format!("{key}: {}", super::lua_message(&e))))
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>, DslError> {
        self.get::<Option<String>>(key)?
            .map(|text| {
                text.parse::<Duration>()
                    .map_err(|e| self.at(format!("{key}: {e}")))
            })
            .transpose()
    }
}

fn line_of(table: &Table) -> usize {
    table
        .get::<Option<usize>>("line")
        .ok()
        .flatten()
        .unwrap_or(0)
}

fn workflow_list(state: &Table, chunk: &str) -> Result<Vec<Table>, DslError> {
    state
        .get::<Vec<Table>>("workflows")
        .map_err(|e| super::error(chunk, &e))
}

/// Every workflow the file defined.
pub(super) fn workflows(
    state: &Table,
    source: &str,
    chunk: &str,
    values: &BTreeMap<String, String>,
) -> Result<Evaluation, DslError> {
    let mut evaluation = Evaluation {
        warnings: state
            .get::<Vec<String>>("warnings")
            .map_err(|e| super::error(chunk, &e))?,
        ..Evaluation::default()
    };
    let tables = workflow_list(state, chunk)?;
    let written: Vec<String> = tables
        .iter()
        .map(|t| t.get::<String>("name"))
        .collect::<Result<_, _>>()
        .map_err(|e| super::error(chunk, &e))?;
    for table in &tables {
        let (workflow, delegations) = workflow(table, source, chunk, values, &written)?;
        if let Some(schedule) = schedule(table, chunk)? {
            evaluation
                .schedules
                .insert(workflow.name().to_string(), schedule);
        }
        let workspace_reader = Reader {
            chunk,
            table,
            line: line_of(table),
        };
        if let Some(dir) = workspace_reader.get::<Option<String>>("workspace")? {
            evaluation
                .workspaces
                .insert(workflow.name().to_string(), dir);
        }
        evaluation.workflows.push(workflow);
        evaluation.delegations.extend(delegations);
    }
    Ok(evaluation)
}

fn workflow(
    table: &Table,
    source: &str,
    chunk: &str,
    values: &BTreeMap<String, String>,
    all_names: &[String],
) -> Result<(Workflow, Vec<AddressDelegation>), DslError> {
    let r = Reader {
        chunk,
        table,
        line: line_of(table),
    };
    let name: String = r.get("name")?;
    let object_name = object_name(
        &name,
        LABEL_VALUE_MAX_LEN,
        all_names.iter().map(String::as_str),
    );
    let own: BTreeMap<String, String> = r.get::<Option<_>>("params")?.unwrap_or_default();
    let params = super::merge_params(&[&own, values]);
    let tasks: Vec<Table> = r.get("tasks")?;
    if tasks.is_empty() {
        return Err(r.at(format!("workflow '{name}' has no tasks")));
    }
    let mut spec = WorkflowSpec {
        params,
        timeout: r.duration("timeout")?,
        concurrency: r.get("concurrency")?,
        fail_fast: r.get::<Option<bool>>("fail_fast")?.unwrap_or(false),
        stack: r.get("stack")?,
        outputs: r.get::<Option<_>>("outputs")?.unwrap_or_default(),
        secrets: r.get::<Option<Vec<String>>>("secrets")?.unwrap_or_default(),
        ..WorkflowSpec::default()
    };
    let mut addresses = BTreeMap::new();
    for t in &tasks {
        let (task, address) = task(t, source, chunk, &name, &spec.params, (&own, values))?;
        if let Some(address) = address {
            addresses.insert(task.name.clone(), address);
        }
        spec.tasks.push(task);
    }
    spec.hooks = hooks(&r, source, &name, &spec.params)?;
    let mut object = Object::new(object_name.clone(), spec);
    object.metadata.labels = r.get::<Option<_>>("labels")?.unwrap_or_default();
    let annotations = &mut object.metadata.annotations;
    if object_name != name {
        annotations.insert(ORIGINAL_NAME_ANNOTATION.to_string(), name.clone());
    }
    if let Some(description) = r.get::<Option<String>>("description")? {
        annotations.insert(DESCRIPTION_ANNOTATION.to_string(), description);
    }
    if let Some(version) = r.get::<Option<String>>("version")? {
        annotations.insert(VERSION_ANNOTATION.to_string(), version);
    }
    let delegations = addresses
        .iter()
        .map(|(task, address)| AddressDelegation {
            workflow: object_name.clone(),
            task: task.clone(),
            address: address.clone(),
        })
        .collect();
    if !addresses.is_empty() {
        let text = serde_json::to_string(&addresses)
            .map_err(|e| r.at(format!("cannot record delegate_to addresses: {e}")))?;
        annotations.insert(ADDRESS_ANNOTATION.to_string(), text);
    }
    Ok((object, delegations))
}

/// The workflow's hooks (`w.hooks`, name -> function), in the order they
/// run, each a Lua payload with the entry `WORKFLOW/hook:NAME`.
fn hooks(
    r: &Reader,
    source: &str,
    workflow: &str,
    params: &BTreeMap<String, String>,
) -> Result<Vec<WorkflowHook>, DslError> {
    let defined: BTreeMap<String, Table> = r.get::<Option<_>>("hooks")?.unwrap_or_default();
    let selector: BTreeMap<String, String> =
        r.get::<Option<_>>("hooks_selector")?.unwrap_or_default();
    Ok(WORKFLOW_HOOKS
        .iter()
        .filter(|name| defined.contains_key(**name))
        .map(|name| WorkflowHook {
            name: (*name).to_string(),
            run: lua_payload(
                source,
                format!("{workflow}/{HOOK_ENTRY_PREFIX}{name}"),
                params,
            ),
            agent_selector: (!selector.is_empty()).then(|| LabelSelector {
                match_labels: selector.clone(),
                match_expressions: Vec::new(),
            }),
        })
        .collect())
}

/// The prefix of a workflow hook's task part of its entry: `WF/hook:NAME`.
pub(super) const HOOK_ENTRY_PREFIX: &str = "hook:";

/// A Lua payload running `entry` of the file `source`.
fn lua_payload(source: &str, entry: String, params: &BTreeMap<String, String>) -> Payload {
    Payload {
        shell: None,
        lua: Some(LuaPayload {
            script: source.to_string(),
            entry: Some(entry),
            params: params
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
            input: BTreeMap::new(),
            modules: Default::default(),
        }),
        command: None,
    }
}

/// The CronWorkflow options of a workflow that has a `schedule` (its
/// `workflowSpec` left empty: the workflow fills it).
fn schedule(table: &Table, chunk: &str) -> Result<Option<CronWorkflowSpec>, DslError> {
    let r = Reader {
        chunk,
        table,
        line: line_of(table),
    };
    let Some(schedule) = r.get::<Option<String>>("schedule")? else {
        return Ok(None);
    };
    let policy = match r.get::<Option<String>>("concurrency_policy")?.as_deref() {
        Some("Forbid") => ConcurrencyPolicy::Forbid,
        Some("Replace") => ConcurrencyPolicy::Replace,
        _ => ConcurrencyPolicy::Allow,
    };
    Ok(Some(CronWorkflowSpec {
        schedule,
        timezone: r.get::<Option<String>>("timezone")?.unwrap_or_default(),
        concurrency_policy: policy,
        starting_deadline: r.duration("starting_deadline")?,
        suspend: r.get::<Option<bool>>("suspend")?.unwrap_or(false),
        successful_history_limit: r.get("successful_history_limit")?,
        failed_history_limit: r.get("failed_history_limit")?,
        workflow_spec: WorkflowSpec::default(),
    }))
}

/// One task, and the address it is delegated to, if any. `params` are the
/// workflow's (its own under the `values`); a TaskDefinitions task gets
/// its own `params` over its group's over the values (`group`).
fn task(
    table: &Table,
    source: &str,
    chunk: &str,
    workflow: &str,
    params: &BTreeMap<String, String>,
    group: (&BTreeMap<String, String>, &BTreeMap<String, String>),
) -> Result<(WorkflowTask, Option<String>), DslError> {
    let r = Reader {
        chunk,
        table,
        line: line_of(table),
    };
    let name = r.get::<String>("name")?;
    let own: BTreeMap<String, String> = r.get::<Option<_>>("params")?.unwrap_or_default();
    let params = if r.get::<Option<bool>>("legacy")?.unwrap_or(false) {
        let (group, values) = group;
        super::merge_params(&[values, group, &own])
    } else {
        super::merge_params(&[params, &own])
    };
    let has_hooks = r.get::<Option<Table>>("hooks")?.is_some();
    let lua_entry = || lua_payload(source, format!("{workflow}/{name}"), &params);
    let run = match r.get::<Value>("command")? {
        // A shell command with Lua hooks runs as Lua: the agent calls
        // exec.run(command) between the hooks.
        Value::String(_) | Value::Function(_) if has_hooks => lua_entry(),
        Value::String(s) => Payload {
            shell: Some(
                s.to_str()
                    .map_err(|e| r.at(format!("command: {e}")))?
                    .to_string(),
            ),
            lua: None,
            command: None,
        },
        Value::Function(_) => lua_entry(),
        _ => return Err(r.at(format!("task '{name}' has no command"))),
    };
    let mut labels: BTreeMap<String, String> = r.get::<Option<_>>("selector")?.unwrap_or_default();
    if let Some(agent) = r.get::<Option<String>>("agent")? {
        labels.insert(AGENT_LABEL.to_string(), agent);
    }
    let retries = r.get::<Option<u32>>("retries")?.map(|limit| RetryPolicy {
        limit,
        backoff: None,
        retry_on: Default::default(),
    });
    let retries = match (retries, r.get::<Option<String>>("backoff")?) {
        (Some(mut policy), Some(strategy)) => {
            policy.backoff = Some(Backoff {
                duration: Duration::from_secs(1),
                factor: (strategy == "exponential").then_some(2.0),
                max: None,
            });
            Some(policy)
        }
        (retries, _) => retries,
    };
    let placement = r
        .get::<Option<String>>("placement")?
        .map(|p| {
            let policy = match p.as_str() {
                "LeastLoaded" => PlacementPolicy::LeastLoaded,
                "RoundRobin" => PlacementPolicy::RoundRobin,
                "Spread" => PlacementPolicy::Spread,
                other => return Err(r.at(format!("placement: unknown policy {other:?}"))),
            };
            Ok(Placement { policy })
        })
        .transpose()?;
    let task = WorkflowTask {
        name,
        run,
        depends_on: r
            .get::<Option<Vec<String>>>("depends_on")?
            .unwrap_or_default()
            .to_vec(),
        when: r.get("when")?,
        agent_selector: (!labels.is_empty()).then(|| LabelSelector {
            match_labels: labels,
            match_expressions: Vec::new(),
        }),
        placement,
        retries,
        timeout: r.duration("timeout")?,
        env: r
            .get::<Option<BTreeMap<String, String>>>("env")?
            .map(Env::from)
            .unwrap_or_default(),
        workdir: r.get("workdir")?,
        locks: r.get::<Option<_>>("locks")?.unwrap_or_default(),
        artifacts: r
            .get::<Option<Vec<String>>>("artifacts")?
            .map(|paths| crate::objects::ArtifactsSpec { paths }),
        ..WorkflowTask::default()
    };
    Ok((task, r.get("address")?))
}

/// The task `workflow`/`task` (names as written; the workflow may also be
/// given by its object name) in what the file defined: its table, with
/// `command` (a function or a shell command), `hooks` and `legacy`.
pub(super) fn find_task(
    state: &Table,
    chunk: &str,
    workflow: &str,
    task: &str,
) -> Result<Table, DslError> {
    let file_error = |message: String| DslError::File {
        chunk: chunk.to_string(),
        message,
    };
    let workflows = workflow_list(state, chunk)?;
    let names = |list: &[Table]| {
        list.iter()
            .filter_map(|t| t.get::<String>("name").ok())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let written: Vec<String> = workflows
        .iter()
        .filter_map(|t| t.get::<String>("name").ok())
        .collect();
    let is_workflow = |name: &str| {
        name == workflow
            || object_name(
                name,
                LABEL_VALUE_MAX_LEN,
                written.iter().map(String::as_str),
            ) == workflow
    };
    let Some(found) = workflows
        .iter()
        .find(|w| w.get::<String>("name").is_ok_and(|n| is_workflow(&n)))
    else {
        return Err(file_error(format!(
            "no workflow '{workflow}' in the file (it defines: {})",
            names(&workflows)
        )));
    };
    if let Some(hook) = task.strip_prefix(HOOK_ENTRY_PREFIX) {
        return hook_entry(found, chunk, workflow, hook);
    }
    let tasks: Vec<Table> = found.get("tasks").map_err(|e| super::error(chunk, &e))?;
    let Some(t) = tasks
        .iter()
        .find(|t| t.get::<String>("name").is_ok_and(|n| n == task))
    else {
        return Err(file_error(format!(
            "workflow '{workflow}' has no task '{task}' (it has: {})",
            names(&tasks)
        )));
    };
    match t.get::<Value>("command") {
        Ok(Value::Function(_) | Value::String(_)) => Ok(t.clone()),
        _ => Err(file_error(format!(
            "task '{workflow}/{task}' has no command"
        ))),
    }
}

/// The workflow hook `hook` of `workflow` as a task table (dsl.lua
/// records it so): its `command` calls the hook with the arguments in
/// `input._hook`.
fn hook_entry(
    workflow_table: &Table,
    chunk: &str,
    workflow: &str,
    hook: &str,
) -> Result<Table, DslError> {
    let hooks: Option<Table> = workflow_table
        .get("hooks")
        .map_err(|e| super::error(chunk, &e))?;
    hooks
        .map(|h| h.get::<Option<Table>>(hook))
        .transpose()
        .map_err(|e| super::error(chunk, &e))?
        .flatten()
        .ok_or_else(|| DslError::File {
            chunk: chunk.to_string(),
            message: format!("workflow '{workflow}' has no hook {hook}"),
        })
}
