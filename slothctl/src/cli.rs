//! The command line (clap derive).

use clap::{Args, Parser, Subcommand};

use crate::printer::{Format, Output};

/// slothctl controls a Sloth control plane: apply manifests, get, describe
/// and delete objects, run commands on agents and follow their output.
#[derive(Debug, Parser)]
#[command(name = "slothctl", version, about, max_term_width = 100)]
pub(crate) struct Cli {
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

    /// Namespace of namespaced kinds (also env SLOTH_NAMESPACE) [default:
    /// the context's, else default].
    #[arg(
        short = 'n',
        long,
        global = true,
        env = "SLOTH_NAMESPACE",
        value_name = "NS"
    )]
    pub namespace: Option<String>,

    /// The config file's context to use instead of its currentContext.
    #[arg(long, global = true, env = "SLOTH_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,

    /// The config file [default: ~/.sloth/config.yaml].
    #[arg(long, global = true, env = "SLOTH_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub credentials: sloth_sdk::credentials::CredentialFlags,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// `--config` (or SLOTH_CONFIG), else `~/.sloth/config.yaml`.
    pub(crate) fn config_file(&self) -> Option<std::path::PathBuf> {
        self.config
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(crate::config::default_path)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    /// Print the client and server versions, and warn when they differ in
    /// major or minor version.
    Version(VersionArgs),
    /// The state store: keys and values of a namespace, shared by tasks
    /// and scripts (set, get, delete, list, incr, cas).
    #[command(subcommand)]
    State(crate::commands::state::StateCommand),
    /// Create an object from another (`create workflow NAME --from
    /// cronworkflow/CRON`).
    #[command(subcommand)]
    Create(crate::commands::create::CreateCommand),
    /// Copy an artifact (a file or directory) of a TaskRun back:
    /// `cp TASKRUN:PATH DEST`.
    Cp(CpArgs),
    /// Add, change (--overwrite) or remove (KEY-) annotations of an object,
    /// as kubectl annotate does.
    Annotate(LabelArgs),
    /// Print a shell completion script: `source <(slothctl completion bash)`.
    Completion(CompletionArgs),
    /// Contexts, clusters and users of the config file (~/.sloth/config.yaml,
    /// or SLOTH_CONFIG), as kubectl config.
    #[command(subcommand)]
    Config(crate::commands::config::ConfigCommand),
    /// Show what `apply -f` would change (live vs applied, as a diff of
    /// spec, labels and annotations); exit 1 when anything differs.
    Diff(DiffArgs),
    /// Edit an object as YAML in $VISUAL or $EDITOR; checked before saving.
    Edit(EditArgs),
    /// Operations on the apiserver itself (`admin backup FILE`).
    #[command(subcommand)]
    Admin(crate::commands::admin::AdminCommand),
    /// Print the web dashboard's URL (the apiserver's HTTP address + /ui/)
    /// and open it in a browser when one is available.
    Ui(UiArgs),
}

#[derive(Debug, Args)]
pub(crate) struct UiArgs {
    /// The apiserver's HTTP address (also env SLOTH_HTTP_SERVER) [default:
    /// the context's cluster httpServer, else the first server's host on
    /// port 8080].
    #[arg(long, env = "SLOTH_HTTP_SERVER", value_name = "URL")]
    pub http_server: Option<String>,
    /// Only print the URL; do not start a browser.
    #[arg(long)]
    pub no_open: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CpArgs {
    /// TASKRUN:PATH, PATH relative to the task's working directory (an
    /// artifact, or a file or directory inside one).
    #[arg(value_name = "TASKRUN:PATH")]
    pub source: String,
    /// Where to write it (a file copied into an existing directory keeps
    /// its name).
    #[arg(value_name = "DEST")]
    pub dest: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct EditArgs {
    /// Kind, or KIND/NAME.
    pub kind: String,
    /// The object (unless given as KIND/NAME).
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct VersionArgs {
    /// Only the client version; no server is asked.
    #[arg(long)]
    pub client: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionArgs {
    /// bash, zsh, fish (also elvish, powershell).
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// A manifest file, a Lua workflow file (*.lua), a directory of them
    /// (*.yaml, *.yml, *.json, *.lua), or - for stdin; repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<String>,
    /// Set a workflow param (declared params of every Workflow; every param
    /// of Lua workflows) and the Lua global `values.KEY`; repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// A YAML mapping of values (sloth-runner's `--values`): the Lua global
    /// `values` and workflow params, as --param (which overrides it).
    #[arg(long, value_name = "FILE")]
    pub values: Option<std::path::PathBuf>,
    /// Put every Workflow applied (and those of CronWorkflows) in this
    /// Stack (sets spec.stack); the Stack is created on first use.
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
    /// Check mode (dry run on the agents): TaskRuns and Workflows are created
    /// with spec.checkMode true, so Lua modules report what they would
    /// change and change nothing.
    #[arg(long)]
    pub check: bool,
    /// Pack DIR (tar + zstd; `.slothignore` honoured, `.git` skipped),
    /// upload it once and start every task with it (spec.workspace).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<std::path::PathBuf>,
    /// Directories: their subdirectories too.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Check every object and print what apply would do (`created`,
    /// `configured`, `unchanged`, each `(dry run)`); nothing is written.
    /// `=server`: the apiserver admits each write (RBAC, validation,
    /// immutable fields) without storing it.
    #[arg(
        long,
        value_name = "client|server",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "client"
    )]
    pub dry_run: Option<DryRun>,
}

/// `--dry-run=`: where the check happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DryRun {
    /// slothctl checks every object (as apply does before sending) and
    /// reads the live ones to compare.
    Client,
    /// The apiserver checks each create or update as it would store it,
    /// and stores nothing.
    Server,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// As for apply: a manifest, a Lua workflow file, a directory, or -.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
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
    /// As for apply: a YAML mapping of values.
    #[arg(long, value_name = "FILE")]
    pub values: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RenderFormat {
    Yaml,
    Json,
}

/// `KEY=VALUE` (the value may contain `=` and be empty).
pub(crate) fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// Kind: taskrun|taskruns|tr, workflow|workflows|wf, agent|agents|ag,
    /// lock|locks, event|events|ev; or KIND/NAME.
    pub kind: String,
    /// Names of objects to show (all when none).
    pub names: Vec<String>,
    // clap help text, not markdown: `[*]` and `[,...]` are no links.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// Output format: table, wide, yaml, json, name, jsonpath=TEMPLATE
    /// (kubectl's, e.g. '{.items[*].metadata.name}'), or
    /// custom-columns=HEADER:EXPR[,...] (e.g. NAME:.metadata.name).
    #[arg(
        short = 'o',
        long,
        value_name = "FORMAT",
        default_value = "table",
        value_parser = Output::parse
    )]
    pub output: Output,
    /// Sort the list by this JSONPath expression (e.g.
    /// .metadata.creationTimestamp, {.status.phase}).
    #[arg(long, value_name = "EXPR")]
    pub sort_by: Option<String>,
    /// Tables: a LABELS column last.
    #[arg(long)]
    pub show_labels: bool,
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
pub(crate) struct DescribeArgs {
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
pub(crate) struct DeleteArgs {
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
    /// Delete every object of KIND in the namespace (-A: in every one).
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["agent", "selector"])))]
pub(crate) struct RunArgs {
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
    /// Pack this local directory, upload it and unpack it where the
    /// command runs (spec.workspace).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<std::path::PathBuf>,
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
pub(crate) struct LogsArgs {
    /// The TaskRun (NAME or taskrun/NAME), or workflow/NAME: the output of
    /// every attempt of its tasks.
    #[arg(required_unless_present = "selector")]
    pub taskrun: Option<String>,
    /// With workflow/NAME: only this task's attempts.
    pub task: Option<String>,
    /// Keep printing output as it is written until the TaskRun finishes
    /// (waiting for it to start first).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines of each output.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// The output of every TaskRun matching this label selector, oldest
    /// first.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Put `[taskrun/NAME] ` before each line.
    #[arg(long)]
    pub prefix: bool,
    /// Put the RFC 3339 time each line was written before it.
    #[arg(long)]
    pub timestamps: bool,
    /// Only lines written in the last D (e.g. 30s, 5m, 1h).
    #[arg(long, value_name = "D", value_parser = sloth_sdk::duration::parse_flag)]
    pub since: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub(crate) struct WaitArgs {
    /// taskrun|tr or workflow|wf, or KIND/NAME.
    pub kind: String,
    /// The object to wait for (unless given as KIND/NAME).
    pub name: Option<String>,
    /// How long to wait before giving up (exit 2); 0 checks once without
    /// waiting.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub timeout: String,
    /// What to wait for instead of the end: condition=TYPE (status True),
    /// condition=TYPE=VALUE, delete, or jsonpath='{EXPR}'=VALUE. Any kind.
    #[arg(long = "for", value_name = "CONDITION")]
    pub for_: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CancelArgs {
    /// workflow|workflows|wf, or KIND/NAME (only workflows can be cancelled).
    pub kind: String,
    /// The workflows to cancel (unless given as KIND/NAME).
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LabelArgs {
    /// KIND NAME or KIND/NAME, then KEY=VALUE to set and KEY- to remove.
    #[arg(value_name = "KIND NAME KEY=VALUE|KEY-", required = true, num_args = 2..)]
    pub args: Vec<String>,
    /// Change the value of a label the object already has.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CordonArgs {
    /// Agents (NAME or agent/NAME).
    #[arg(value_name = "AGENT", required = true)]
    pub agents: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgentCommand {
    /// List agents (as `get agents`).
    List(AgentListArgs),
    /// Run a shell command on an agent (as `run --agent NAME -- bash -c COMMAND`).
    Run(AgentRunArgs),
    /// Stop an agent through the API: it takes no new work, lets its running
    /// TaskRuns finish (up to --grace), marks itself NotReady and exits 0.
    Stop(AgentStopArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AgentListArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Label selector, e.g. gpu=true.
    #[arg(short = 'l', long, value_name = "SELECTOR", default_value = "")]
    pub selector: String,
}

#[derive(Debug, Args)]
pub(crate) struct AgentRunArgs {
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

#[derive(Debug, Args)]
pub(crate) struct AgentStopArgs {
    /// The agent.
    pub name: String,
    /// How long its running TaskRuns may go on before they are killed.
    #[arg(long, default_value = "5m", value_parser = sloth_sdk::duration::parse_flag)]
    pub grace: std::time::Duration,
}
