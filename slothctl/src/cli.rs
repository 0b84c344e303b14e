//! The command line (clap derive).

use clap::{Args, Parser, Subcommand};

use crate::printer::Format;

/// slothctl controls a Sloth control plane: apply manifests, get, describe
/// and delete objects, run commands on agents and follow their output.
#[derive(Debug, Parser)]
#[command(name = "slothctl", version, about, max_term_width = 100)]
pub struct Cli {
    /// API servers, tried in order (also env SLOTH_SERVER, else
    /// ~/.sloth/config.yaml, else http://127.0.0.1:50053).
    #[arg(
        long,
        global = true,
        env = "SLOTH_SERVER",
        value_delimiter = ',',
        value_name = "URL[,URL]"
    )]
    pub server: Vec<String>,

    /// Namespace of namespaced kinds [default: default].
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,

    #[command(flatten)]
    pub credentials: sloth_sdk::credentials::CredentialFlags,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update objects from YAML or JSON manifests and Lua
    /// workflow files.
    Apply(ApplyArgs),
    /// Print the objects `apply` would send (Lua workflow files evaluated),
    /// without sending anything.
    Render(RenderArgs),
    /// List objects, or show some by name.
    Get(GetArgs),
    /// Show one object in detail.
    Describe(DescribeArgs),
    /// Delete objects by name, by label selector, or as named in manifests.
    Delete(DeleteArgs),
    /// Run a command on an agent as a TaskRun, stream its output and exit
    /// with its exit code.
    Run(RunArgs),
    /// Print the output of a TaskRun.
    Logs(LogsArgs),
    /// Wait until a TaskRun or Workflow finishes: exit 0 when it succeeded,
    /// 1 when it failed, 2 on timeout.
    Wait(WaitArgs),
    /// Cancel workflows (sets spec.state to Cancelled): no new tasks start
    /// and running ones are stopped.
    Cancel(CancelArgs),
    /// Mark agents unschedulable: nothing new is scheduled on them.
    Cordon(CordonArgs),
    /// Mark agents schedulable again.
    Uncordon(CordonArgs),
    /// Add, change (--overwrite) or remove (KEY-) labels of an object, as
    /// kubectl label does.
    Label(LabelArgs),
    /// Seed-compatible agent commands (`agent list`, `agent run`).
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Make TLS certificates for a fleet: a CA, a server certificate and
    /// client certificates (one per user or agent).
    #[command(subcommand)]
    Certs(crate::commands::certs::CertsCommand),
    /// Print the client version.
    Version,
    /// The state store: keys and values of a namespace, shared by tasks
    /// and scripts (set, get, delete, list, incr, cas).
    #[command(subcommand)]
    State(crate::commands::state::StateCommand),
    /// Create an object from another (`create workflow NAME --from
    /// cronworkflow/CRON`).
    #[command(subcommand)]
    Create(crate::commands::create::CreateCommand),
    /// Operations on the apiserver itself (`admin backup FILE`).
    #[command(subcommand)]
    Admin(crate::commands::admin::AdminCommand),
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A manifest file, a Lua workflow file (*.lua), a directory of them
    /// (*.yaml, *.yml, *.json, *.lua), or - for stdin; repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<String>,
    /// Set a workflow param (declared params of every Workflow; every param
    /// of Lua workflows) and the Lua global `values.KEY`; repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Put every Workflow applied (and those of CronWorkflows) in this
    /// Stack (sets spec.stack); the Stack is created on first use.
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
    /// Check mode (dry run on the agents): TaskRuns and Workflows are created
    /// with spec.checkMode true, so Lua modules report what they would
    /// change and change nothing.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// As for apply: a manifest, a Lua workflow file, a directory, or -.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<String>,
    /// Output format: YAML documents separated by `---`, or JSON (one object,
    /// or a List of several).
    #[arg(short = 'o', long, value_enum, default_value_t = RenderFormat::Yaml)]
    pub output: RenderFormat,
    /// As for apply; repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RenderFormat {
    Yaml,
    Json,
}

/// `KEY=VALUE` (the value may contain `=` and be empty).
pub fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Kind: taskrun|taskruns|tr, workflow|workflows|wf, agent|agents|ag,
    /// lock|locks, event|events|ev; or KIND/NAME.
    pub kind: String,
    /// Names of objects to show (all when none).
    pub names: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Label selector, e.g. app=web,tier!=db.
    #[arg(short = 'l', long, value_name = "SELECTOR", default_value = "")]
    pub selector: String,
    /// Field selector, e.g. spec.agentName=a1,status.phase!=Failed.
    #[arg(long, value_name = "SELECTOR", default_value = "")]
    pub field_selector: String,
    /// After listing, print every change until interrupted.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// With --watch: show the event type (ADDED, MODIFIED, DELETED).
    #[arg(long)]
    pub output_watch_events: bool,
    /// Objects in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Tables without the header line.
    #[arg(long)]
    pub no_headers: bool,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Kind, or KIND/NAME.
    pub kind: String,
    /// Names of objects to describe (all matching -l when none).
    pub names: Vec<String>,
    /// Label selector, when no name is given.
    #[arg(short = 'l', long, value_name = "SELECTOR", default_value = "")]
    pub selector: String,
    /// Objects in every namespace, when no name is given.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kind, or KIND/NAME (not with -f).
    pub kind: Option<String>,
    /// Names of objects to delete.
    pub names: Vec<String>,
    /// Delete the objects named in these manifests (as for apply); repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub files: Vec<String>,
    /// Delete every object of KIND matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR", default_value = "")]
    pub selector: String,
    /// Treat objects that do not exist as deleted.
    #[arg(long)]
    pub ignore_not_found: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["agent", "selector"])))]
pub struct RunArgs {
    /// Run on this agent (sets spec.agentName; no scheduling).
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// Let the scheduler pick an agent whose labels match, e.g. gpu=true,zone in (a,b).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Kill the command when it runs longer (spec.timeout), e.g. 30s, 5m.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// An environment variable for the command; repeatable.
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory of the command on the agent.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// The command: one word is a shell script (`'make && make test'`);
    /// several are a command and its arguments, each passed as is.
    #[arg(
        value_name = "COMMAND",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The TaskRun (NAME or taskrun/NAME).
    pub taskrun: String,
    /// Keep printing output as it is written until the TaskRun finishes
    /// (waiting for it to start first).
    #[arg(short = 'f', long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// taskrun|tr or workflow|wf, or KIND/NAME.
    pub kind: String,
    /// The object to wait for (unless given as KIND/NAME).
    pub name: Option<String>,
    /// How long to wait before giving up (exit 2); 0 checks once without
    /// waiting.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub timeout: String,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// workflow|workflows|wf, or KIND/NAME (only workflows can be cancelled).
    pub kind: String,
    /// The workflows to cancel (unless given as KIND/NAME).
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LabelArgs {
    /// KIND NAME or KIND/NAME, then KEY=VALUE to set and KEY- to remove.
    #[arg(value_name = "KIND NAME KEY=VALUE|KEY-", required = true, num_args = 2..)]
    pub args: Vec<String>,
    /// Change the value of a label the object already has.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Debug, Args)]
pub struct CordonArgs {
    /// Agents (NAME or agent/NAME).
    #[arg(value_name = "AGENT", required = true)]
    pub agents: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// List agents (as `get agents`).
    List(AgentListArgs),
    /// Run a shell command on an agent (as `run --agent NAME -- bash -c COMMAND`).
    Run(AgentRunArgs),
}

#[derive(Debug, Args)]
pub struct AgentListArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Label selector, e.g. gpu=true.
    #[arg(short = 'l', long, value_name = "SELECTOR", default_value = "")]
    pub selector: String,
}

#[derive(Debug, Args)]
pub struct AgentRunArgs {
    /// The agent.
    pub name: String,
    /// The shell command (words are joined with spaces).
    #[arg(
        value_name = "COMMAND",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}
