//! One reconcile of a Workflow as a pure function of what is observed: the
//! Workflow and the TaskRuns it owns, at `now`. Nothing else is remembered
//! between reconciles, so a new leader picks up exactly where the old one
//! stopped, and TaskRun names (`<workflow>-<task>-<attempt>`) make every
//! creation idempotent.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sloth_sdk::dag::{Dag, Section};
use sloth_sdk::meta::{API_VERSION, Condition, OwnerReference};
use sloth_sdk::object_name;
use sloth_sdk::objects::workflow::{
    TaskPhase, TaskStatus, WorkflowPhase, WorkflowState, WorkflowStatus, WorkflowTask,
    evaluate_when,
};
use sloth_sdk::objects::{
    ArtifactInput, ArtifactStatus, TaskRun, TaskRunPhase, TaskRunSpec, Workflow,
};
use sloth_sdk::validation::names::DNS1123_LABEL_MAX_LEN;
use sloth_sdk::well_known::{ORIGINAL_NAME_ANNOTATION, TASK_LABEL, WORKFLOW_LABEL};

use super::backoff;
use super::substitute::{Values, substitute_task};

/// Reasons written into workflow and task statuses and into the TaskRuns
/// the controller stops.
pub mod reason {
    pub const CANCELLED: &str = "Cancelled";
    pub const TIMED_OUT: &str = "TimedOut";
    pub const FAIL_FAST: &str = "FailFast";
    pub const UPSTREAM_FAILED: &str = "UpstreamFailed";
    pub const WHEN_FALSE: &str = "WhenFalse";
    pub const INVALID_WHEN: &str = "InvalidWhen";
    pub const MISSING_RESULT: &str = "MissingResult";
    pub const BACKOFF: &str = "Backoff";
    pub const RETRYING: &str = "Retrying";
    pub const TASK_FAILED: &str = "TaskFailed";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const RUNNING: &str = "Running";
}

/// The condition that sums the workflow up, as Tekton's `Succeeded`.
pub const CONDITION: &str = "Succeeded";

/// What one reconcile decides.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub status: WorkflowStatus,
    /// TaskRuns to create, in spec order.
    pub create: Vec<NewRun>,
    /// Unfinished TaskRuns to fail (their agents kill them).
    pub stop: Vec<StopRun>,
    /// When to look again even if nothing changes (backoffs, the timeout).
    pub requeue_after: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewRun {
    pub task: String,
    pub taskrun: TaskRun,
    /// Locks the TaskRun must hold before it is created.
    pub locks: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StopRun {
    pub taskrun: String,
    pub reason: &'static str,
    pub message: String,
}

/// Why the whole workflow stops early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Halt {
    Cancelled,
    TimedOut,
}

fn taskrun_reason(tr: &TaskRun) -> &str {
    tr.status
        .as_ref()
        .map(|s| s.reason.as_str())
        .unwrap_or_default()
}

fn is_final(phase: TaskPhase) -> bool {
    matches!(
        phase,
        TaskPhase::Succeeded | TaskPhase::Failed | TaskPhase::Skipped
    )
}

/// `taskruns` are those the workflow owns, in any order.
pub fn plan(wf: &Workflow, taskruns: &[&TaskRun], now: DateTime<Utc>) -> Plan {
    if is_final_phase(wf.phase()) {
        return left_alone(wf);
    }
    plan_with(wf, &Dag::of(&wf.spec), taskruns, now)
}

/// A finished workflow's plan: nothing to do.
fn left_alone(wf: &Workflow) -> Plan {
    Plan {
        status: wf.status_or_default(),
        create: Vec::new(),
        stop: Vec::new(),
        requeue_after: None,
    }
}

/// [`plan`] with the workflow's graph built already (`dag` must be
/// `Dag::of(&wf.spec)`): the controller keeps it while the spec is the same.
pub fn plan_with(wf: &Workflow, dag: &Dag, taskruns: &[&TaskRun], now: DateTime<Utc>) -> Plan {
    if is_final_phase(wf.phase()) {
        return left_alone(wf);
    }
    let old = wf.status_or_default();
    let start = old.start_time.unwrap_or(now);
    let deadline = wf.spec.timeout.map(|t| start + chrono_duration(t.as_std()));
    let halt = if wf.spec.state == WorkflowState::Cancelled {
        Some(Halt::Cancelled)
    } else if deadline.is_some_and(|d| d <= now) {
        Some(Halt::TimedOut)
    } else {
        None
    };

    let mut runs: BTreeMap<&str, Vec<&TaskRun>> = BTreeMap::new();
    for tr in taskruns {
        if let Some(task) = tr.metadata.labels.get(TASK_LABEL) {
            runs.entry(task.as_str()).or_default().push(tr);
        }
    }
    for attempts in runs.values_mut() {
        attempts.sort_by_key(|tr| tr.spec.attempt);
    }

    let fail_fast = wf.spec.fail_fast
        && wf.spec.tasks.iter().any(|task| {
            runs.get(task.name.as_str())
                .and_then(|r| r.last())
                .is_some_and(|tr| {
                    tr.phase() == TaskRunPhase::Failed
                        && !backoff::retries(
                            task.retries.as_ref(),
                            tr.spec.attempt.max(1),
                            taskrun_reason(tr),
                        )
                })
        });

    let mut walk = Walk {
        wf,
        now,
        halt,
        fail_fast,
        runs,
        dag,
        statuses: BTreeMap::new(),
        phases: vec![TaskPhase::default(); dag.len()],
        results: BTreeMap::new(),
        artifacts: BTreeMap::new(),
        candidates: Vec::new(),
        stop: Vec::new(),
        requeue: deadline.filter(|_| halt.is_none()).map(|d| until(now, d)),
        section: Section::Tasks,
        dag_done: true,
    };
    walk.section(&wf.spec.tasks, Section::Tasks);
    walk.section(&wf.spec.finally, Section::Finally);

    let unfinished = taskruns
        .iter()
        .filter(|tr| !tr.phase().is_terminal() && !super::hooks::is_hook(tr))
        .count();
    let room = wf.spec.concurrency.map_or(usize::MAX, |c| {
        usize::try_from(c)
            .unwrap_or(usize::MAX)
            .saturating_sub(unfinished)
    });
    let create: Vec<NewRun> = walk
        .candidates
        .iter()
        .take(room)
        .map(|(task, attempt)| {
            let mut taskrun = taskrun_for(wf, task, *attempt);
            taskrun.spec.inputs = inputs_of(task, &walk.artifacts);
            NewRun {
                task: task.name.clone(),
                taskrun,
                locks: task.locks.clone(),
            }
        })
        .collect();

    let status = summarize(wf, &old, walk.statuses, halt, start, now);
    let requeue_after = if is_final_phase(status.phase) {
        None
    } else {
        walk.requeue
    };
    let mut plan = Plan {
        status,
        create,
        stop: walk.stop,
        requeue_after,
    };
    super::hooks::apply(wf, taskruns, &mut plan);
    plan
}

/// Whether a workflow in `phase` has ended.
pub fn is_final_phase(phase: WorkflowPhase) -> bool {
    matches!(
        phase,
        WorkflowPhase::Succeeded | WorkflowPhase::Failed | WorkflowPhase::Cancelled
    )
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The time from `now` to `at`, at least a millisecond.
fn until(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    (at - now)
        .to_std()
        .unwrap_or_default()
        .max(Duration::from_millis(1))
}

/// The walk over both sections, upstream tasks first.
struct Walk<'a> {
    wf: &'a Workflow,
    now: DateTime<Utc>,
    halt: Option<Halt>,
    fail_fast: bool,
    runs: BTreeMap<&'a str, Vec<&'a TaskRun>>,
    /// The graph of the workflow's tasks.
    dag: &'a Dag,
    statuses: BTreeMap<String, TaskStatus>,
    /// The phases of `statuses` by task index (Pending until walked): every
    /// not-started task looks up each of its dependencies, which is the
    /// planner's inner loop.
    phases: Vec<TaskPhase>,
    /// Results of the tasks that succeeded.
    results: BTreeMap<String, BTreeMap<String, String>>,
    /// Artifacts of the tasks that succeeded (their dependents' inputs).
    artifacts: BTreeMap<String, Vec<ArtifactStatus>>,
    /// Tasks to start now (already substituted) and their attempt numbers.
    candidates: Vec<(WorkflowTask, u32)>,
    stop: Vec<StopRun>,
    requeue: Option<Duration>,
    /// The section being walked.
    section: Section,
    /// Whether every task of `tasks` has finished: `finally` tasks wait
    /// for it (always true while walking `tasks` itself).
    dag_done: bool,
}

impl<'a> Walk<'a> {
    fn requeue_in(&mut self, delay: Duration) {
        self.requeue = Some(self.requeue.map_or(delay, |r| r.min(delay)));
    }

    /// Why tasks of `section` stop now, if they do.
    fn stopping(&self, section: Section) -> Option<(&'static str, String)> {
        match self.halt {
            Some(Halt::Cancelled) => {
                Some((reason::CANCELLED, "the workflow was cancelled".to_string()))
            }
            Some(Halt::TimedOut) => Some((
                reason::TIMED_OUT,
                format!(
                    "the workflow ran out of its timeout of {}",
                    self.wf.spec.timeout.unwrap_or_default()
                ),
            )),
            None if self.fail_fast && section == Section::Tasks => Some((
                reason::FAIL_FAST,
                "another task failed and the workflow has failFast set".to_string(),
            )),
            None => None,
        }
    }

    fn section(&mut self, tasks: &'a [WorkflowTask], section: Section) {
        self.section = section;
        self.dag_done = section == Section::Tasks
            || self.wf.spec.tasks.iter().all(|t| {
                self.statuses
                    .get(&t.name)
                    .is_some_and(|s| is_final(s.phase))
            });
        let offset = self.dag.indices(section).start;
        for i in self.dag.topological(section) {
            let Some(task) = tasks.get(i - offset) else {
                continue;
            };
            let status = self.task(i, task);
            self.phases[i] = status.phase;
            self.statuses.insert(task.name.clone(), status);
        }
    }

    fn task(&mut self, i: usize, task: &'a WorkflowTask) -> TaskStatus {
        let latest = self
            .runs
            .get(task.name.as_str())
            .and_then(|r| r.last())
            .copied();
        let Some(tr) = latest else {
            return self.not_started(i, task);
        };
        let attempt = tr.spec.attempt.max(1);
        let mut status = TaskStatus {
            phase: TaskPhase::Pending,
            task_run: Some(tr.name().to_string()),
            attempt,
            reason: String::new(),
        };
        match tr.phase() {
            TaskRunPhase::Succeeded => {
                status.phase = TaskPhase::Succeeded;
                let results = tr
                    .status
                    .as_ref()
                    .map(|s| s.results.clone())
                    .unwrap_or_default();
                self.results.insert(task.name.clone(), results);
                let artifacts = tr
                    .status
                    .as_ref()
                    .map(|s| s.artifacts.clone())
                    .unwrap_or_default();
                if !artifacts.is_empty() {
                    self.artifacts.insert(task.name.clone(), artifacts);
                }
            }
            TaskRunPhase::Failed => {
                let why = taskrun_reason(tr);
                if self.stopping(self.section).is_none()
                    && backoff::retries(task.retries.as_ref(), attempt, why)
                {
                    status.phase = TaskPhase::Running;
                    let failed_at = tr
                        .status
                        .as_ref()
                        .and_then(|s| s.completion_time)
                        .unwrap_or(self.now);
                    let due =
                        failed_at + chrono_duration(backoff::delay(task.retries.as_ref(), attempt));
                    if due <= self.now {
                        status.reason = reason::RETRYING.into();
                        self.start(i, task, attempt + 1);
                    } else {
                        status.reason = reason::BACKOFF.into();
                        self.requeue_in(until(self.now, due));
                    }
                } else {
                    status.phase = TaskPhase::Failed;
                    status.reason = if why.is_empty() {
                        "Failed".into()
                    } else {
                        why.into()
                    };
                }
            }
            phase => {
                if phase == TaskRunPhase::Running {
                    status.phase = TaskPhase::Running;
                }
                if let Some((why, message)) = self.stopping(self.section) {
                    self.stop.push(StopRun {
                        taskrun: tr.name().to_string(),
                        reason: why,
                        message,
                    });
                }
            }
        }
        status
    }

    fn not_started(&mut self, i: usize, task: &'a WorkflowTask) -> TaskStatus {
        let skipped = |why: &str| TaskStatus {
            phase: TaskPhase::Skipped,
            reason: why.into(),
            ..TaskStatus::default()
        };
        // A name that is no other task never finishes (validation refuses it).
        let mut ready = !self.dag.waits_for_missing(i);
        for &dep in self.dag.upstream(i) {
            match self.phases[dep] {
                TaskPhase::Failed | TaskPhase::Skipped => {
                    return skipped(reason::UPSTREAM_FAILED);
                }
                TaskPhase::Succeeded => {}
                _ => ready = false,
            }
        }
        if let Some((why, _)) = self.stopping(self.section) {
            return skipped(why);
        }
        if !self.dag_done || !ready {
            return TaskStatus::default();
        }
        let values = Values {
            params: &self.wf.spec.params,
            results: &self.results,
        };
        let task = match substitute_task(task, values) {
            Ok(task) => task,
            Err(missing) => {
                tracing::debug!(task = task.name, "{missing}");
                return TaskStatus {
                    phase: TaskPhase::Failed,
                    reason: reason::MISSING_RESULT.into(),
                    ..TaskStatus::default()
                };
            }
        };
        match task.when.as_deref().map(evaluate_when) {
            Some(Ok(false)) => return skipped(reason::WHEN_FALSE),
            Some(Err(_)) => {
                return TaskStatus {
                    phase: TaskPhase::Failed,
                    reason: reason::INVALID_WHEN.into(),
                    ..TaskStatus::default()
                };
            }
            Some(Ok(true)) | None => {}
        }
        self.push_candidate(i, task, 1);
        TaskStatus::default()
    }

    /// Queues attempt `attempt` of `task`, substituted as for its first.
    fn start(&mut self, i: usize, task: &'a WorkflowTask, attempt: u32) {
        let values = Values {
            params: &self.wf.spec.params,
            results: &self.results,
        };
        // The references resolved for the first attempt; upstream results
        // never change, so this cannot fail where the first did not.
        if let Ok(task) = substitute_task(task, values) {
            self.push_candidate(i, task, attempt);
        }
    }

    /// Queues `task` (substituted); a Lua payload also gets its upstream
    /// tasks' results as its `input`.
    fn push_candidate(&mut self, i: usize, mut task: WorkflowTask, attempt: u32) {
        if let Some(lua) = task.run.lua.as_mut() {
            lua.input = self
                .dag
                .upstream(i)
                .iter()
                .filter_map(|&dep| {
                    let name = self.dag.name(dep);
                    let results = self.results.get(name)?.clone();
                    Some((name.to_string(), results))
                })
                .collect();
        }
        self.candidates.push((task, attempt));
    }
}

/// The Secrets a task's Lua reads: its own and the workflow's, once each
/// (names only: the agent fetches the values).
fn task_secrets(wf: &Workflow, task: &WorkflowTask) -> Vec<String> {
    let mut names = task.secrets.clone();
    for name in &wf.spec.secrets {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// The artifacts of the tasks `task` depends on, unpacked before it runs.
fn inputs_of(
    task: &WorkflowTask,
    artifacts: &BTreeMap<String, Vec<ArtifactStatus>>,
) -> Vec<ArtifactInput> {
    task.depends_on
        .iter()
        .filter_map(|upstream| artifacts.get(upstream).map(|a| (upstream, a)))
        .flat_map(|(upstream, artifacts)| {
            artifacts.iter().map(|a| ArtifactInput {
                task: upstream.clone(),
                path: a.path.clone(),
                digest: a.digest.clone(),
                size: a.size,
            })
        })
        .collect()
}

/// The TaskRun for attempt `attempt` of `task` (already substituted).
pub fn taskrun_for(wf: &Workflow, task: &WorkflowTask, attempt: u32) -> TaskRun {
    let mut tr = TaskRun::new(
        taskrun_name(wf, &task.name, attempt),
        TaskRunSpec {
            run: task.run.clone(),
            agent_selector: task.agent_selector.clone(),
            placement: task.placement.clone(),
            agent_name: None,
            timeout: task.timeout,
            env: task.env.clone(),
            workdir: task.workdir.clone(),
            attempt,
            ttl_after_finished: None,
            env_from: task.env_from.clone(),
            secret_files: task.secret_files.clone(),
            secrets: task_secrets(wf, task),
            check_mode: wf.spec.check_mode,
            workspace: wf.spec.workspace.clone(),
            artifacts: task.artifacts.clone(),
            inputs: Vec::new(),
        },
    );
    tr.metadata.namespace = wf.namespace().to_string();
    tr.metadata.labels = BTreeMap::from([
        (WORKFLOW_LABEL.to_string(), wf.name().to_string()),
        (TASK_LABEL.to_string(), task.name.clone()),
    ]);
    if object_name::slug(&task.name) != task.name {
        tr.metadata
            .annotations
            .insert(ORIGINAL_NAME_ANNOTATION.to_string(), task.name.clone());
    }
    tr.metadata.owner_references = vec![OwnerReference {
        api_version: API_VERSION.to_string(),
        kind: "Workflow".into(),
        name: wf.name().to_string(),
        uid: wf.metadata.uid.clone(),
        controller: Some(true),
    }];
    tr
}

/// `<workflow>-<task>-<attempt>`, the task's name made a valid object name
/// (lowercase, dashes; a hash suffix if two of the workflow's task names
/// would map to the same one). Names that are valid already (the common
/// case) skip the scan of the other tasks.
pub fn taskrun_name(wf: &Workflow, task: &str, attempt: u32) -> String {
    let others = wf.spec.tasks.iter().chain(&wf.spec.finally);
    let task =
        object_name::object_name(task, DNS1123_LABEL_MAX_LEN, others.map(|t| t.name.as_str()));
    format!("{}-{task}-{attempt}", wf.name())
}

/// The workflow's status from its tasks'.
fn summarize(
    wf: &Workflow,
    old: &WorkflowStatus,
    tasks: BTreeMap<String, TaskStatus>,
    halt: Option<Halt>,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> WorkflowStatus {
    let done = tasks.values().all(|t| is_final(t.phase));
    let failed: Vec<String> = wf
        .spec
        .tasks
        .iter()
        .chain(&wf.spec.finally)
        .filter_map(|t| {
            let status = tasks.get(&t.name)?;
            (status.phase == TaskPhase::Failed).then(|| format!("{} ({})", t.name, status.reason))
        })
        .collect();
    let (phase, cond_status, why, message) = match (done, halt) {
        (false, _) => {
            let succeeded = tasks
                .values()
                .filter(|t| t.phase == TaskPhase::Succeeded)
                .count();
            (
                WorkflowPhase::Running,
                "Unknown",
                reason::RUNNING,
                format!("{succeeded} of {} tasks succeeded", tasks.len()),
            )
        }
        (true, Some(Halt::Cancelled)) => (
            WorkflowPhase::Cancelled,
            "False",
            reason::CANCELLED,
            "the workflow was cancelled".into(),
        ),
        (true, Some(Halt::TimedOut)) => (
            WorkflowPhase::Failed,
            "False",
            reason::TIMED_OUT,
            format!(
                "the workflow ran out of its timeout of {}",
                wf.spec.timeout.unwrap_or_default()
            ),
        ),
        (true, None) if !failed.is_empty() => (
            WorkflowPhase::Failed,
            "False",
            reason::TASK_FAILED,
            format!("failed: {}", failed.join(", ")),
        ),
        (true, None) => (
            WorkflowPhase::Succeeded,
            "True",
            reason::SUCCEEDED,
            "all tasks completed".into(),
        ),
    };
    let mut conditions: Vec<Condition> = old
        .conditions
        .iter()
        .filter(|c| c.type_ != CONDITION)
        .cloned()
        .collect();
    let previous = old.conditions.iter().find(|c| c.type_ == CONDITION);
    let transition = previous
        .filter(|c| c.status == cond_status && c.reason == why)
        .and_then(|c| c.last_transition_time)
        .unwrap_or(now);
    conditions.push(Condition {
        type_: CONDITION.into(),
        status: cond_status.into(),
        reason: why.into(),
        message,
        last_transition_time: Some(transition),
    });
    WorkflowStatus {
        phase,
        conditions,
        start_time: Some(start),
        completion_time: is_final_phase(phase).then_some(now),
        tasks,
        observed_generation: wf.metadata.generation,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
