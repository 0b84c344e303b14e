//! The well-known names every crate shares: the `sloth.dev/...` labels and
//! annotations the system writes and selects on, and the system namespace.
//!
//! They live in one place so a controller, the apiserver, the agent and
//! slothctl cannot drift apart on a spelling, and so a reader finds every
//! name the system reserves in one file.

/// The namespace of the system's own Locks: agents' heartbeats and the
/// controllers' leader election.
pub const SYSTEM_NAMESPACE: &str = "sloth-system";
/// The namespace of agents' heartbeat Locks (the [`SYSTEM_NAMESPACE`]).
pub const HEARTBEAT_NAMESPACE: &str = SYSTEM_NAMESPACE;

/// The label naming the Workflow a TaskRun belongs to.
pub const WORKFLOW_LABEL: &str = "sloth.dev/workflow";
/// The label naming the task a TaskRun is an attempt of.
pub const TASK_LABEL: &str = "sloth.dev/task";

/// The label every agent carries with its own name: a selector
/// `{matchLabels: {sloth.dev/agent: NAME}}` targets exactly one agent
/// (the one `delegate_to("NAME")` selects on).
pub const AGENT_LABEL: &str = "sloth.dev/agent";
/// Labels under this prefix are set by admins and operators only (for
/// example `restricted.sloth.dev/tier=secure`): an agent can neither add,
/// change nor remove them on its own Agent, so a selector on them places
/// work only where a person decided it may go.
pub const RESTRICTED_LABEL_PREFIX: &str = "restricted.sloth.dev/";

/// The label naming the CronWorkflow a Workflow was created by.
pub const CRONWORKFLOW_LABEL: &str = "sloth.dev/cronworkflow";
/// The annotation holding the scheduled time (RFC 3339) of a Workflow a
/// CronWorkflow created; absent on manual runs.
pub const SCHEDULED_TIME_ANNOTATION: &str = "sloth.dev/scheduled-time";

/// The label the workflow controller puts on a Workflow of a stack.
pub const STACK_LABEL: &str = "sloth.dev/stack";
/// Who applied a Workflow: set by slothctl from its credentials' user
/// (or `$USER`), recorded in the stack's history.
pub const APPLIED_BY_ANNOTATION: &str = "sloth.dev/applied-by";

/// The annotation the apiserver puts on a Secret it returns without its
/// values (to a viewer): `data` then holds the key names with empty values.
pub const VALUES_HIDDEN: &str = "sloth.dev/values-hidden";

/// The annotation holding a workflow's (or the workflow file's) description.
pub const DESCRIPTION_ANNOTATION: &str = "sloth.dev/description";
/// The annotation holding `workflow.define(...):version(v)`.
pub const VERSION_ANNOTATION: &str = "sloth.dev/version";
/// The annotation holding the `delegate_to({address = ...})` tasks still
/// to resolve to agents: a JSON object `{"TASK": "host:port"}`. See
/// `lua::resolve_addresses`.
pub const ADDRESS_ANNOTATION: &str = "sloth.dev/delegate-addresses";
/// The name as the author wrote it, where the object's name had to be
/// derived from it (`workflow.define("CI_Pipeline")` -> Workflow
/// `ci-pipeline`; on a TaskRun: its task's name, `Build_App`). See
/// `object_name`.
pub const ORIGINAL_NAME_ANNOTATION: &str = "sloth.dev/original-name";

/// The prefix of the labels `sloth-agent --capabilities a,b` sets
/// (`capability.sloth.dev/a=true`): a string agent selector
/// (`:agent_selector("a")` in a Lua workflow file) selects on it, so a
/// capability never collides with a label of the same name.
pub const CAPABILITY_LABEL_PREFIX: &str = "capability.sloth.dev/";

/// The label a capability `name` is carried as (its value is `"true"`).
pub fn capability_label(name: &str) -> String {
    format!("{CAPABILITY_LABEL_PREFIX}{name}")
}

/// The annotation listing the Lua files beside a workflow file that
/// slothctl bundled into the Workflow (`helpers.lua,lib/init.lua`).
pub const MODULES_ANNOTATION: &str = "sloth.dev/lua-modules";
/// The annotation slothctl puts on a Workflow evaluated from a Lua file
/// that declares `workspace = DIR`: the directory (resolved against the
/// file's) to pack and upload. Removed before the object is sent.
pub const WORKSPACE_DIR_ANNOTATION: &str = "sloth.dev/workspace-dir";

/// The annotation `slothctl agent stop NAME` puts on an Agent: its value is
/// the grace period (`5m`) the agent gives its running TaskRuns before it
/// kills them. The agent watches its own Agent, stops taking work, and exits
/// 0 once they ended; a new start of the agent removes the annotation.
pub const STOP_ANNOTATION: &str = "sloth.dev/stop";
/// The TaskRun condition (and the Event reason) of a Lua task whose hook
/// failed without changing the task's result.
pub const HOOK_FAILED_CONDITION: &str = "HookFailed";
/// The label of a workflow hook TaskRun: the hook's name (`on_start`,
/// `on_task_start`, `on_task_complete`, `on_complete`). Such a TaskRun is
/// not a task of its workflow (it has no `sloth.dev/task` label).
pub const HOOK_LABEL: &str = "sloth.dev/hook";
