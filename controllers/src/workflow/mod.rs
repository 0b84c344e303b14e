//! The Workflow controller: walks each Workflow's DAG from observed state,
//! creating one TaskRun per attempt.

pub mod backoff;
pub mod controller;
pub mod hooks;
pub mod index;
pub mod plan;
pub mod status_batch;
pub mod status_write;
pub mod substitute;
