//! Workflow hooks (`spec.hooks`) as hook TaskRuns, decided from what is
//! observed like the rest of the plan: `on_start` before the first task,
//! `on_task_start` before each task's first attempt, `on_task_complete`
//! after each task that ran, `on_complete` after everything (the
//! workflow's phase waits for it). One hook TaskRun runs at a time, so
//! hooks run in the order they were triggered. Hook TaskRuns carry the
//! `sloth.dev/hook` label and no `sloth.dev/task` label: they are never
//! tasks of the workflow. Their names are deterministic, so a restarted
//! controller never runs one twice.

use std::collections::BTreeMap;

use sloth_sdk::object_name;
use sloth_sdk::objects::workflow::{TaskPhase, WorkflowHook, WorkflowPhase, WorkflowTask};
use sloth_sdk::objects::{TaskRun, TaskRunPhase, Workflow, WorkflowState};
use sloth_sdk::validation::names::DNS1123_LABEL_MAX_LEN;
use sloth_sdk::well_known::{HOOK_LABEL, TASK_LABEL};

use super::plan::{CONDITION, NewRun, Plan, taskrun_for};

/// The key of a hook's `input` holding its arguments (`task`, `success`);
/// no task name can be it (they start with a letter or digit).
pub const ARGS_KEY: &str = "_hook";

/// Whether `tr` is a workflow hook TaskRun.
pub fn is_hook(tr: &TaskRun) -> bool {
    tr.metadata.labels.contains_key(HOOK_LABEL)
}

/// The name of the hook TaskRun of `hook` (for `task`, if a task hook).
pub fn hook_taskrun_name(wf: &Workflow, hook: &str, task: Option<&str>) -> String {
    let hook = hook.replace('_', "-");
    match task {
        None => format!("{}-hook-{hook}", wf.name()),
        Some(task) => {
            let others = wf.spec.tasks.iter().chain(&wf.spec.finally);
            let task = object_name::object_name(
                task,
                DNS1123_LABEL_MAX_LEN,
                others.map(|t| t.name.as_str()),
            );
            format!("{}-hook-{hook}-{task}", wf.name())
        }
    }
}

struct Hooks<'a> {
    wf: &'a Workflow,
    runs: BTreeMap<&'a str, &'a TaskRun>,
    /// A hook TaskRun is unfinished, or one is created by this plan.
    busy: bool,
}

impl<'a> Hooks<'a> {
    fn get(&self, name: &str) -> Option<&'a WorkflowHook> {
        self.wf.spec.hooks.iter().find(|h| h.name == name)
    }

    fn run_of(&self, hook: &str, task: Option<&str>) -> Option<&'a TaskRun> {
        self.runs
            .get(hook_taskrun_name(self.wf, hook, task).as_str())
            .copied()
    }

    /// Whether `hook` (for `task`) has finished; starts it when it has not
    /// started and no other hook runs. A hook the workflow lacks is done.
    fn done(
        &mut self,
        plan: &mut Plan,
        hook: &str,
        task: Option<&str>,
        args: BTreeMap<String, String>,
    ) -> bool {
        let Some(spec) = self.get(hook) else {
            return true;
        };
        match self.run_of(hook, task) {
            Some(tr) => tr.phase().is_terminal(),
            None => {
                if !self.busy {
                    self.busy = true;
                    plan.create.push(self.new_run(spec, task, args, plan));
                }
                false
            }
        }
    }

    fn new_run(
        &self,
        hook: &WorkflowHook,
        task: Option<&str>,
        args: BTreeMap<String, String>,
        plan: &Plan,
    ) -> NewRun {
        let mut run = hook.run.clone();
        if let Some(lua) = run.lua.as_mut() {
            if hook.name == "on_complete" {
                lua.input = self.results(plan);
            }
            lua.input.insert(ARGS_KEY.to_string(), args);
        }
        let as_task = WorkflowTask {
            name: hook.name.clone(),
            run,
            agent_selector: hook.agent_selector.clone(),
            // A hook that hangs cannot hold the workflow longer than its
            // own timeout.
            timeout: self.wf.spec.timeout,
            ..WorkflowTask::default()
        };
        let mut taskrun = taskrun_for(self.wf, &as_task, 1);
        taskrun.metadata.name = hook_taskrun_name(self.wf, &hook.name, task);
        taskrun.metadata.labels.remove(TASK_LABEL);
        taskrun
            .metadata
            .labels
            .insert(HOOK_LABEL.to_string(), hook.name.clone());
        taskrun.metadata.annotations.clear();
        if let Some(task) = task {
            taskrun
                .metadata
                .annotations
                .insert(HOOK_LABEL.to_string(), task.to_string());
        }
        NewRun {
            task: hook.name.clone(),
            taskrun,
            locks: Vec::new(),
        }
    }

    /// The results of the tasks that succeeded, by task name.
    fn results(&self, plan: &Plan) -> BTreeMap<String, BTreeMap<String, String>> {
        plan.status
            .tasks
            .iter()
            .filter(|(_, t)| t.phase == TaskPhase::Succeeded)
            .filter_map(|(name, t)| {
                let tr = self.runs.get(t.task_run.as_deref()?)?;
                Some((name.clone(), tr.status_or_default().results))
            })
            .collect()
    }

    /// Failed hook TaskRuns: `hook (TaskRun): message`.
    fn failures(&self) -> Vec<String> {
        self.runs
            .values()
            .filter(|tr| is_hook(tr))
            .filter_map(|tr| {
                let status = tr.status_or_default();
                (status.phase == TaskRunPhase::Failed).then(|| {
                    let hook = tr
                        .metadata
                        .labels
                        .get(HOOK_LABEL)
                        .cloned()
                        .unwrap_or_default();
                    let why = if status.message.is_empty() {
                        status.reason
                    } else {
                        status.message
                    };
                    format!("{hook} ({}): {why}", tr.name())
                })
            })
            .collect()
    }
}

fn args(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

/// Adds the workflow's hooks to `plan`: hook TaskRuns to create, task
/// TaskRuns held back until their start hooks finished, and the final
/// phase held back until `on_complete` finished. `taskruns` are all the
/// workflow owns (tasks' and hooks').
pub fn apply(wf: &Workflow, taskruns: &[&TaskRun], plan: &mut Plan) {
    if wf.spec.hooks.is_empty() || wf.spec.state == WorkflowState::Cancelled {
        return;
    }
    let mut hooks = Hooks {
        wf,
        runs: taskruns.iter().map(|tr| (tr.name(), *tr)).collect(),
        busy: taskruns
            .iter()
            .any(|tr| is_hook(tr) && !tr.phase().is_terminal()),
    };
    let final_phase = plan.status.phase;
    let finished = matches!(
        final_phase,
        WorkflowPhase::Succeeded | WorkflowPhase::Failed
    );
    let completion_time = plan.status.completion_time;
    if finished {
        hold(plan);
    }
    let tasks = std::mem::take(&mut plan.create);
    if !hooks.done(plan, "on_start", None, BTreeMap::new()) {
        return;
    }
    // Tasks that ran, in spec order: their on_task_complete.
    let mut all_complete = true;
    for task in wf.spec.tasks.iter().chain(&wf.spec.finally) {
        let Some(status) = plan.status.tasks.get(&task.name) else {
            continue;
        };
        let success = match status.phase {
            TaskPhase::Succeeded => true,
            TaskPhase::Failed if status.task_run.is_some() => false,
            _ => continue,
        };
        let a = args(&[
            ("task", task.name.clone()),
            ("success", success.to_string()),
        ]);
        all_complete &= hooks.done(plan, "on_task_complete", Some(&task.name), a);
    }
    // New first attempts wait for their on_task_start.
    for new in tasks {
        let first = new.taskrun.spec.attempt <= 1;
        let a = args(&[("task", new.task.clone())]);
        if !first || hooks.done(plan, "on_task_start", Some(&new.task), a) {
            plan.create.push(new);
        }
    }
    if !finished || !all_complete {
        return;
    }
    let success = final_phase == WorkflowPhase::Succeeded;
    let a = args(&[("success", success.to_string())]);
    if !hooks.done(plan, "on_complete", None, a) {
        return;
    }
    // Everything ran: the workflow ends, with the hooks that failed said.
    plan.status.phase = final_phase;
    plan.status.completion_time = completion_time;
    plan.requeue_after = None;
    let failures = hooks.failures();
    if !failures.is_empty()
        && let Some(c) = plan
            .status
            .conditions
            .iter_mut()
            .find(|c| c.type_ == CONDITION)
    {
        c.message = format!(
            "{}; workflow hooks failed: {}",
            c.message,
            failures.join("; ")
        );
    }
}

/// Keeps a workflow whose tasks all finished Running while its hooks run
/// (its condition already says how the tasks ended).
fn hold(plan: &mut Plan) {
    plan.status.phase = WorkflowPhase::Running;
    plan.status.completion_time = None;
}
