//! Size and count limits validation enforces, public so that writers (the
//! agent trimming a log tail, slothctl building a workflow) can stay inside
//! them instead of learning them from a rejection.

/// Largest shell or Lua script in a payload.
pub const MAX_SCRIPT_BYTES: usize = 256 * 1024;
/// Most annotation bytes (keys plus values) on one object.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;
/// Most entries in a TaskRun's `status.results`.
pub const MAX_RESULTS: usize = 64;
/// Most bytes (keys plus values) in a TaskRun's `status.results`.
pub const MAX_RESULTS_BYTES: usize = 16 * 1024;
/// Largest `status.logTail`; the full log stays on the agent.
pub const MAX_LOG_TAIL_BYTES: usize = 64 * 1024;
/// Most tasks in a Workflow, `spec.tasks` and `spec.finally` together.
pub const MAX_WORKFLOW_TASKS: usize = 1000;
/// Highest `retries.limit` of a workflow task.
pub const MAX_RETRY_LIMIT: u32 = 100;
/// Highest `spec.capacity` of an Agent.
pub const MAX_AGENT_CAPACITY: u32 = 10_000;
/// Highest `retries.backoff.factor`: with the 100 retries allowed, a
/// larger factor only ever means "wait `max`" after a few attempts.
pub const MAX_BACKOFF_FACTOR: f64 = 10.0;
