//! A Stack's bookkeeping as pure functions: who is next in line, the
//! history entries of a run's start and end, the outputs of a successful
//! run, and the environment its TaskRuns get.

use std::collections::BTreeMap;

use sloth_sdk::meta::Time;
use sloth_sdk::objects::{StackRun, StackStatus, TaskRun, TaskRunPhase, Workflow, WorkflowPhase};
use sloth_sdk::well_known::{APPLIED_BY_ANNOTATION, TASK_LABEL};

pub use crate::cron::children::is_finished;
use crate::workflow::substitute::{MissingResult, Values, substitute};

/// The prefix of the environment variables holding a stack's outputs.
pub const OUTPUT_ENV_PREFIX: &str = "SLOTH_STACK_OUTPUT_";
/// The environment variable naming the stack a TaskRun runs for.
pub const STACK_ENV: &str = "SLOTH_STACK";

pub fn has_started(wf: &Workflow) -> bool {
    wf.status.as_ref().is_some_and(|s| s.start_time.is_some())
}

/// The unfinished, not yet started Workflow of `wf`'s stack that comes
/// before it in creation order (then name), if any: only the first in
/// line may take the stack.
pub fn ahead_of<'a>(wf: &Workflow, stack_workflows: &[&'a Workflow]) -> Option<&'a Workflow> {
    let key = |w: &Workflow| (w.metadata.creation_timestamp, w.name().to_string());
    stack_workflows
        .iter()
        .copied()
        .filter(|other| {
            other.name() != wf.name()
                && other.metadata.deletion_timestamp.is_none()
                && !is_finished(other)
                && !has_started(other)
                && key(other) < key(wf)
        })
        .min_by_key(|other| key(other))
}

/// `status` with `wf` holding the stack and its run recorded as started.
pub fn started(status: &StackStatus, wf: &Workflow, limit: usize, now: Time) -> StackStatus {
    let mut next = status.clone();
    next.current = Some(wf.name().to_string());
    if !next.history.iter().any(|r| r.uid == wf.metadata.uid) {
        next.runs += 1;
        next.history.push(StackRun {
            workflow: wf.name().to_string(),
            uid: wf.metadata.uid.clone(),
            phase: WorkflowPhase::Running,
            start_time: Some(now),
            completion_time: None,
            applied_by: applied_by(wf),
        });
    }
    trim(&mut next.history, limit);
    next
}

/// `status` with `wf`'s run finished: its entry updated (or added), the
/// outputs replaced on success, and the stack freed if `wf` held it.
pub fn finished(
    status: &StackStatus,
    wf: &Workflow,
    outputs: Option<BTreeMap<String, String>>,
    limit: usize,
) -> StackStatus {
    let mut next = status.clone();
    let wf_status = wf.status_or_default();
    let run = StackRun {
        workflow: wf.name().to_string(),
        uid: wf.metadata.uid.clone(),
        phase: wf_status.phase,
        start_time: wf_status.start_time,
        completion_time: wf_status.completion_time,
        applied_by: applied_by(wf),
    };
    match next.history.iter_mut().find(|r| r.uid == wf.metadata.uid) {
        Some(entry) => *entry = run,
        None => {
            next.runs += 1;
            next.history.push(run);
        }
    }
    trim(&mut next.history, limit);
    if let Some(outputs) = outputs {
        next.outputs = outputs;
    }
    if next.current.as_deref() == Some(wf.name()) {
        next.current = None;
    }
    next
}

/// `status` freed from a holder that is gone (deleted while it ran): its
/// entry, if still Running, becomes Cancelled.
pub fn freed(status: &StackStatus, holder: &str) -> StackStatus {
    let mut next = status.clone();
    next.current = None;
    for run in next.history.iter_mut().filter(|r| r.workflow == holder) {
        if run.phase == WorkflowPhase::Running {
            run.phase = WorkflowPhase::Cancelled;
        }
    }
    next
}

fn trim(history: &mut Vec<StackRun>, limit: usize) {
    let excess = history.len().saturating_sub(limit.max(1));
    history.drain(..excess);
}

fn applied_by(wf: &Workflow) -> String {
    wf.metadata
        .annotations
        .get(APPLIED_BY_ANNOTATION)
        .cloned()
        .unwrap_or_default()
}

/// The results of each task's latest succeeded attempt.
pub fn results(taskruns: &[&TaskRun]) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut latest: BTreeMap<&str, &TaskRun> = BTreeMap::new();
    for tr in taskruns {
        let succeeded = tr
            .status
            .as_ref()
            .is_some_and(|s| s.phase == TaskRunPhase::Succeeded);
        if let (true, Some(task)) = (succeeded, tr.metadata.labels.get(TASK_LABEL)) {
            let newer = latest
                .get(task.as_str())
                .is_none_or(|seen| seen.spec.attempt < tr.spec.attempt);
            if newer {
                latest.insert(task, tr);
            }
        }
    }
    latest
        .into_iter()
        .map(|(task, tr)| {
            let results = tr
                .status
                .as_ref()
                .map(|s| s.results.clone())
                .unwrap_or_default();
            (task.to_string(), results)
        })
        .collect()
}

/// `spec.outputs` with task results and params substituted.
pub fn outputs(
    wf: &Workflow,
    results: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>, MissingResult> {
    let values = Values {
        params: &wf.spec.params,
        results,
    };
    wf.spec
        .outputs
        .iter()
        .map(|(k, v)| Ok((k.clone(), substitute(v, values)?)))
        .collect()
}

/// The environment a TaskRun of a stack's workflow gets: `SLOTH_STACK` and
/// `SLOTH_STACK_OUTPUT_<NAME>` (upper-cased) per current output.
pub fn env(stack: &str, outputs: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = outputs
        .iter()
        .map(|(k, v)| {
            (
                format!("{OUTPUT_ENV_PREFIX}{}", k.to_ascii_uppercase()),
                v.clone(),
            )
        })
        .collect();
    env.insert(STACK_ENV.to_string(), stack.to_string());
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use sloth_sdk::objects::{WorkflowSpec, WorkflowStatus};

    fn wf(name: &str, created: i64, phase: Option<WorkflowPhase>) -> Workflow {
        let mut w = Workflow::new(name, WorkflowSpec::default());
        w.metadata.uid = format!("uid-{name}");
        w.metadata.creation_timestamp = DateTime::from_timestamp(1_800_000_000 + created, 0);
        w.status = phase.map(|phase| WorkflowStatus {
            phase,
            start_time: DateTime::from_timestamp(1_800_000_000 + created, 0),
            completion_time: DateTime::from_timestamp(1_800_000_100, 0),
            ..WorkflowStatus::default()
        });
        w
    }

    #[test]
    fn waiting_workflows_go_in_creation_order() {
        let a = wf("a", 1, None);
        let b = wf("b", 2, None);
        let c = wf("c", 2, None);
        let done = wf("old", 0, Some(WorkflowPhase::Succeeded));
        let all = [&a, &b, &c, &done];
        assert!(ahead_of(&a, &all).is_none());
        assert_eq!(ahead_of(&b, &all).map(|w| w.name()), Some("a"));
        assert_eq!(ahead_of(&c, &all).map(|w| w.name()), Some("a"));
        let rest = [&b, &c];
        // Same second: by name.
        assert!(ahead_of(&b, &rest).is_none());
        assert_eq!(ahead_of(&c, &rest).map(|w| w.name()), Some("b"));
    }

    #[test]
    fn history_records_start_and_end_bounded() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("t");
        let mut status = StackStatus::default();
        for i in 0..3 {
            let mut w = wf(&format!("w{i}"), i, None);
            w.metadata
                .annotations
                .insert(APPLIED_BY_ANNOTATION.into(), "ann".into());
            status = started(&status, &w, 2, now);
            assert_eq!(status.current.as_deref(), Some(w.name()));
            // Started twice (a retried reconcile): recorded once.
            status = started(&status, &w, 2, now);
            w.status = Some(WorkflowStatus {
                phase: WorkflowPhase::Succeeded,
                ..WorkflowStatus::default()
            });
            let outputs = BTreeMap::from([("url".to_string(), format!("u{i}"))]);
            status = finished(&status, &w, Some(outputs), 2);
            assert_eq!(status.current, None);
        }
        assert_eq!(status.runs, 3);
        let names: Vec<_> = status.history.iter().map(|r| r.workflow.as_str()).collect();
        assert_eq!(names, ["w1", "w2"]);
        assert_eq!(status.history[1].phase, WorkflowPhase::Succeeded);
        assert_eq!(status.history[1].applied_by, "ann");
        assert_eq!(status.outputs["url"], "u2");
    }

    #[test]
    fn outputs_substitute_results_and_env_is_upper_case() {
        let mut w = wf("w", 0, None);
        w.spec.outputs =
            BTreeMap::from([("url".into(), "http://$(tasks.up.results.host)/".into())]);
        let results = BTreeMap::from([(
            "up".to_string(),
            BTreeMap::from([("host".to_string(), "h1".to_string())]),
        )]);
        let out = outputs(&w, &results).expect("resolves");
        assert_eq!(out["url"], "http://h1/");
        assert!(outputs(&w, &BTreeMap::new()).is_err());
        let env = env("prod", &out);
        assert_eq!(env["SLOTH_STACK_OUTPUT_URL"], "http://h1/");
        assert_eq!(env["SLOTH_STACK"], "prod");
    }
}
