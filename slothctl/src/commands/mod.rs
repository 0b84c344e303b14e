//! One module per command; `run` dispatches.

pub(crate) mod admin;
pub(crate) mod agent;
pub(crate) mod agent_run_style;
pub(crate) mod agent_stop;
pub(crate) mod apply;
pub(crate) mod cancel;
pub(crate) mod certs;
pub(crate) mod completion;
pub(crate) mod config;
pub(crate) mod cordon;
pub(crate) mod cp;
pub(crate) mod create;
pub(crate) mod create_secret;
pub(crate) mod delete;
pub(crate) mod describe;
pub(crate) mod diff;
pub(crate) mod edit;
pub(crate) mod follow;
pub(crate) mod get;
pub(crate) mod label;
pub(crate) mod logs;
pub(crate) mod output_sink;
pub(crate) mod placement;
pub(crate) mod render;
pub(crate) mod run;
pub(crate) mod stamp;
pub(crate) mod state;
pub(crate) mod ui;
pub(crate) mod values;
pub(crate) mod version;
pub(crate) mod wait;
pub(crate) mod watch;
pub(crate) mod workspace;

use sloth_sdk::Client;
use sloth_sdk::meta::DEFAULT_NAMESPACE;
use sloth_sdk::selector::{Fields, Labels};

use crate::cli::{Cli, Command};
use crate::error::CliError;

/// What every command that talks to a server needs.
pub(crate) struct Context {
    pub client: Client,
    /// `-n`, or `default`.
    pub namespace: String,
    /// `-n` as given, if it was.
    pub namespace_flag: Option<String>,
}

impl Context {
    fn new(cli: &Cli) -> Result<Self, CliError> {
        let file = crate::config::load(cli.config_file().as_deref())?;
        let resolved = file.resolve(cli.context.as_deref())?;
        let servers = crate::config::servers(&cli.server, &resolved);
        let options = cli
            .credentials
            .options(&resolved.credentials)
            .map_err(|e| CliError::usage(e.to_string()))?;
        let client =
            Client::with_options(&servers, &options).map_err(|e| CliError::from_sdk(e, ""))?;
        let namespace_flag = cli.namespace.clone().filter(|n| !n.is_empty());
        Ok(Self {
            client,
            namespace: namespace_flag
                .clone()
                .or(resolved.namespace)
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
            namespace_flag,
        })
    }

    /// An SDK error as users read it, naming this client's servers.
    pub(crate) fn error(&self, error: sloth_sdk::Error) -> CliError {
        CliError::from_sdk(error, &self.client.endpoints())
    }
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Version(args) = &cli.command {
        return version::run(&cli, args).await;
    }
    if let Command::Completion(args) = &cli.command {
        return completion::run(args);
    }
    if let Command::Config(command) = &cli.command {
        return config::run(&cli, command);
    }
    if let Command::Certs(command) = cli.command {
        return certs::run(command);
    }
    if let Command::Ui(args) = &cli.command {
        return ui::run(&cli, args);
    }
    if let Command::Render(args) = &cli.command {
        return render::run(&cli_context(&cli), args).await;
    }
    let ctx = Context::new(&cli)?;
    match cli.command {
        Command::Apply(args) => apply::run(&ctx, args).await,
        Command::Get(args) => get::run(&ctx, args).await,
        Command::Describe(args) => describe::run(&ctx, args).await,
        Command::Delete(args) => delete::run(&ctx, args).await,
        Command::Run(args) => run::run(&ctx, args).await,
        Command::Logs(args) => logs::run(&ctx, args).await,
        Command::Wait(args) => wait::run(&ctx, args).await,
        Command::Cancel(args) => cancel::run(&ctx, args).await,
        Command::Cordon(args) => cordon::run(&ctx, args, true).await,
        Command::Uncordon(args) => cordon::run(&ctx, args, false).await,
        Command::Label(args) => label::run(&ctx, args, label::Field::Labels).await,
        Command::Agent(command) => agent::run(&ctx, command).await,
        Command::Create(command) => create::run(&ctx, command).await,
        Command::State(command) => state::run(&ctx, command).await,
        Command::Admin(command) => admin::run(&ctx, command).await,
        Command::Cp(args) => cp::run(&ctx, args).await,
        Command::Annotate(args) => label::run(&ctx, args, label::Field::Annotations).await,
        Command::Diff(args) => diff::run(&ctx, args).await,
        Command::Edit(args) => edit::run(&ctx, args).await,
        Command::Render(_)
        | Command::Certs(_)
        | Command::Version(_)
        | Command::Completion(_)
        | Command::Config(_)
        | Command::Ui(_) => Ok(()),
    }
}

/// A context made only when a command needs a server after all (render
/// resolving `delegate_to({address = ...})`).
pub(crate) struct LazyContext<'a> {
    cli: &'a Cli,
}

impl LazyContext<'_> {
    pub(crate) fn get(&self) -> Result<Context, CliError> {
        Context::new(self.cli)
    }

    /// `-n` as given, if it was.
    pub(crate) fn namespace_flag(&self) -> Option<&str> {
        self.cli.namespace.as_deref().filter(|n| !n.is_empty())
    }
}

fn cli_context(cli: &Cli) -> LazyContext<'_> {
    LazyContext { cli }
}

/// Checks selectors before anything is sent (a bad one is a usage error).
pub(crate) fn check_selectors(labels: &str, fields: &str) -> Result<(), CliError> {
    Labels::parse(labels).map_err(CliError::usage)?;
    Fields::parse(fields).map_err(CliError::usage)?;
    Ok(())
}

/// Prints error lines on stderr (for commands that go on after a failure).
pub(crate) fn print_errors<S: std::fmt::Display>(errors: &[S]) {
    for e in errors {
        eprintln!("{e}");
    }
}
