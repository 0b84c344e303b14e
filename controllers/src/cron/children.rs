//! What a CronWorkflow's Workflows say: which are active, which finished
//! ones are past the history limits, when the latest succeeded, and the
//! Workflow a scheduled time creates.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sloth_sdk::Spec;
use sloth_sdk::meta::Time;
use sloth_sdk::objects::{CronWorkflow, CronWorkflowSpec, Workflow, WorkflowPhase, WorkflowSpec};
use sloth_sdk::well_known::{CRONWORKFLOW_LABEL, SCHEDULED_TIME_ANNOTATION};

/// Whether `wf` belongs to `cron` (label and owner uid: not a namesake's).
pub fn owned_by(wf: &Workflow, cron: &CronWorkflow) -> bool {
    wf.namespace() == cron.namespace()
        && wf
            .metadata
            .labels
            .get(CRONWORKFLOW_LABEL)
            .map(String::as_str)
            == Some(cron.name())
        && wf
            .metadata
            .owner_references
            .iter()
            .any(|o| o.kind == CronWorkflowSpec::KIND && o.uid == cron.metadata.uid)
}

pub fn is_finished(wf: &Workflow) -> bool {
    matches!(
        wf.phase(),
        WorkflowPhase::Succeeded | WorkflowPhase::Failed | WorkflowPhase::Cancelled
    )
}

/// The scheduled time a Workflow was created for (none for manual runs).
pub fn scheduled_time(wf: &Workflow) -> Option<DateTime<Utc>> {
    let text = wf.metadata.annotations.get(SCHEDULED_TIME_ANNOTATION)?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The names of the unfinished Workflows, sorted.
pub fn active(owned: &[&Workflow]) -> Vec<String> {
    let mut names: Vec<String> = owned
        .iter()
        .filter(|wf| !is_finished(wf))
        .map(|wf| wf.name().to_string())
        .collect();
    names.sort();
    names
}

/// When the latest successful Workflow finished, or `before`.
pub fn last_successful(owned: &[&Workflow], before: Option<Time>) -> Option<Time> {
    owned
        .iter()
        .filter(|wf| wf.phase() == WorkflowPhase::Succeeded)
        .filter_map(|wf| wf.status_or_default().completion_time)
        .chain(before)
        .max()
}

/// The finished Workflows beyond the history limits, oldest first: the
/// newest `successful` succeeded ones and `failed` failed or cancelled
/// ones are kept.
pub fn beyond_history(owned: &[&Workflow], successful: usize, failed: usize) -> Vec<String> {
    let mut by_outcome: BTreeMap<bool, Vec<(Option<Time>, &str)>> = BTreeMap::new();
    for wf in owned.iter().filter(|wf| is_finished(wf)) {
        let status = wf.status_or_default();
        let ok = status.phase == WorkflowPhase::Succeeded;
        let when = status.completion_time.or(wf.metadata.creation_timestamp);
        by_outcome.entry(ok).or_default().push((when, wf.name()));
    }
    let mut doomed = Vec::new();
    for (ok, mut finished) in by_outcome {
        finished.sort();
        let keep = if ok { successful } else { failed };
        let excess = finished.len().saturating_sub(keep);
        doomed.extend(finished[..excess].iter().map(|(_, name)| name.to_string()));
    }
    doomed
}

/// The name of the Workflow run for scheduled time `at`: the same on every
/// controller, so a creation is idempotent and a leader change never fires
/// a time twice.
pub fn workflow_name(cron: &str, at: DateTime<Utc>) -> String {
    format!("{cron}-{}", at.timestamp())
}

/// `spec` cancelled.
pub fn cancelled(wf: &Workflow) -> Workflow {
    let mut next = wf.clone();
    next.spec = WorkflowSpec {
        state: sloth_sdk::objects::WorkflowState::Cancelled,
        ..next.spec
    };
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use sloth_sdk::objects::WorkflowStatus;

    fn finished(name: &str, phase: WorkflowPhase, done: i64) -> Workflow {
        let mut wf = Workflow::new(name, WorkflowSpec::default());
        wf.status = Some(WorkflowStatus {
            phase,
            completion_time: DateTime::from_timestamp(1_800_000_000 + done, 0),
            ..WorkflowStatus::default()
        });
        wf
    }

    #[test]
    fn history_keeps_the_newest_of_each_outcome() {
        let wfs = [
            finished("s1", WorkflowPhase::Succeeded, 1),
            finished("f1", WorkflowPhase::Failed, 2),
            finished("s2", WorkflowPhase::Succeeded, 3),
            finished("c1", WorkflowPhase::Cancelled, 4),
            finished("s3", WorkflowPhase::Succeeded, 5),
            finished("r", WorkflowPhase::Running, 0),
        ];
        let refs: Vec<&Workflow> = wfs.iter().collect();
        assert_eq!(beyond_history(&refs, 2, 1), ["f1", "s1"]);
        assert_eq!(beyond_history(&refs, 0, 0), ["f1", "c1", "s1", "s2", "s3"]);
        assert_eq!(active(&refs), ["r"]);
        assert_eq!(
            last_successful(&refs, None),
            DateTime::from_timestamp(1_800_000_005, 0)
        );
    }
}
