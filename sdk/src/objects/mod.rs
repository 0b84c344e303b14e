//! The kinds of object Sloth stores.

pub mod agent;
pub mod common;
pub mod cronworkflow;
pub mod env;
pub mod event;
pub mod lock;
pub mod secret;
pub mod stack;
pub mod taskrun;
pub mod workflow;

pub use agent::{Agent, AgentPhase, AgentResources, AgentSpec, AgentStatus, Taint};
pub use common::{
    LabelSelector, LabelSelectorRequirement, LuaPayload, Payload, Placement, PlacementPolicy,
    SelectorOperator,
};
pub use cronworkflow::{ConcurrencyPolicy, CronWorkflow, CronWorkflowSpec, CronWorkflowStatus};
pub use env::{Env, EnvFromSource, EnvVar, SecretFile, SecretKeySelector, SecretRef, SecretUse};
pub use event::{Event, EventSpec, EventStatus, EventType, ObjectReference};
pub use lock::{Lock, LockSpec, LockStatus};
pub use secret::{Secret, SecretSpec, SecretStatus};
pub use stack::{Stack, StackRun, StackSpec, StackStatus};
pub use taskrun::{TaskRun, TaskRunPhase, TaskRunSpec, TaskRunStatus};
pub use workflow::{
    Backoff, RetryOn, RetryPolicy, TaskPhase, TaskStatus, Workflow, WorkflowPhase, WorkflowSpec,
    WorkflowState, WorkflowStatus, WorkflowTask,
};
pub mod state;
pub use state::{StateEntry, StateEntrySpec, StateEntryStatus};
pub mod artifact;
pub use artifact::{ArtifactInput, ArtifactStatus, ArtifactsSpec, BlobRef};
