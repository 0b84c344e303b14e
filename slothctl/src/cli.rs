//! The command line (clap derive).

use clap::{Args, Parser, Subcommand};

use crate::printer::Format;

/// slothctl controls a Sloth control plane: apply manifests, get, describe
/// and delete objects.
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

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update objects from YAML or JSON manifests.
    Apply(ApplyArgs),
    /// List objects, or show some by name.
    Get(GetArgs),
    /// Show one object in detail.
    Describe(DescribeArgs),
    /// Delete objects by name, by label selector, or as named in manifests.
    Delete(DeleteArgs),
    /// Print the client version.
    Version,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A manifest file, a directory of them (*.yaml, *.yml, *.json), or - for
    /// stdin; repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Kind: taskrun|taskruns|tr, workflow|workflows|wf, agent|agents|ag,
    /// lock|locks; or KIND/NAME.
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
