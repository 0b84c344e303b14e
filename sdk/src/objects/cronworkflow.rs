//! CronWorkflow: a Workflow created on a schedule, shaped like Argo's
//! CronWorkflow and Kubernetes' CronJob.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::workflow::{Workflow, WorkflowSpec};
use crate::duration::Duration;
use crate::meta::{API_VERSION, OwnerReference, Time};
use crate::resource::{Object, Spec};
use crate::well_known::{APPLIED_BY_ANNOTATION, CRONWORKFLOW_LABEL, SCHEDULED_TIME_ANNOTATION};

/// A CronWorkflow object: creates a Workflow on a schedule.
pub type CronWorkflow = Object<CronWorkflowSpec>;

/// The schedule and the Workflow it creates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronWorkflowSpec {
    /// 5 fields, 6 fields with seconds first, `@hourly`-style names or
    /// `@every D`.
    pub schedule: String,
    /// IANA timezone the schedule is read in; UTC when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timezone: String,
    /// What to do when a run is due while an earlier one is active (Allow by default).
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// How late a scheduled run may still start; a run later than that is
    /// skipped (with an Event). No limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline: Option<Duration>,
    /// True: no Workflows are created while it is set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// Succeeded Workflows kept (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_history_limit: Option<u32>,
    /// Failed or cancelled Workflows kept (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_history_limit: Option<u32>,
    /// The spec of every Workflow created.
    pub workflow_spec: WorkflowSpec,
}

impl CronWorkflowSpec {
    /// `successfulHistoryLimit` with its default (3) applied.
    pub fn successful_history_limit(&self) -> usize {
        self.successful_history_limit.unwrap_or(3) as usize
    }

    /// `failedHistoryLimit` with its default (1) applied.
    pub fn failed_history_limit(&self) -> usize {
        self.failed_history_limit.unwrap_or(1) as usize
    }
}

/// What happens when a run is due while an earlier one is still active.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ConcurrencyPolicy {
    /// Start it anyway.
    #[default]
    Allow,
    /// Do not start it until the active one has finished (and only if the
    /// run is still within `startingDeadline`).
    Forbid,
    /// Cancel the active runs and start the new one.
    Replace,
}

/// What the cron-workflow controller records of past and active runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronWorkflowStatus {
    /// The latest scheduled time that was run (or skipped as too late).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the latest successful Workflow finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// The Workflows of this CronWorkflow that have not finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
}

impl Spec for CronWorkflowSpec {
    type Status = CronWorkflowStatus;
    const KIND: &'static str = "CronWorkflow";
}

/// A Workflow of `cron` named `name`: labelled, owned by it, applied by
/// `cronworkflow/NAME`, and (for a scheduled run) annotated with its time.
pub fn workflow_for(cron: &CronWorkflow, name: &str, at: Option<Time>) -> Workflow {
    let mut wf = Workflow::new(name, cron.spec.workflow_spec.clone());
    wf.metadata.namespace = cron.namespace().to_string();
    wf.metadata.labels =
        BTreeMap::from([(CRONWORKFLOW_LABEL.to_string(), cron.name().to_string())]);
    wf.metadata.annotations.insert(
        APPLIED_BY_ANNOTATION.to_string(),
        format!("cronworkflow/{}", cron.name()),
    );
    if let Some(at) = at {
        wf.metadata
            .annotations
            .insert(SCHEDULED_TIME_ANNOTATION.to_string(), at.to_rfc3339());
    }
    wf.metadata.owner_references = vec![OwnerReference {
        api_version: API_VERSION.to_string(),
        kind: CronWorkflowSpec::KIND.to_string(),
        name: cron.name().to_string(),
        uid: cron.metadata.uid.clone(),
        controller: Some(true),
    }];
    wf
}
