//! slothctl: the command-line client of Sloth.
//!
//! Exit codes (INTERFACE.md): 0 success; 1 the server said no; 2 usage error
//! or invalid input, nothing sent; 3 no server could be reached.

mod cli;
mod commands;
mod config;
mod error;
mod kind;
mod manifest;
mod printer;
mod progress;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use crate::error::CliError;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (code, message) = exit_status(&e);
            if !message.is_empty() {
                eprintln!("{message}");
            }
            ExitCode::from(code)
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(commands::run(cli))
}

/// The exit code and message for an error: a [`CliError`] knows both; an SDK
/// error is mapped; stdout closed early (`| head`) is not an error.
fn exit_status(error: &anyhow::Error) -> (u8, String) {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return (e.code, e.message.clone());
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>()
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            return (0, String::new());
        }
    }
    (error::FAILED, format!("error: {error:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_follows_the_error_through_context() {
        let e = anyhow::Error::from(CliError::usage("bad")).context("while applying");
        assert_eq!(exit_status(&e), (error::USAGE, "error: bad".to_string()));
        let e = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(exit_status(&e).0, 0);
        let e = anyhow::anyhow!("boom");
        assert_eq!(exit_status(&e), (error::FAILED, "error: boom".to_string()));
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        cli::Cli::command().debug_assert();
        let cli = cli::Cli::try_parse_from([
            "slothctl", "--server", "a:1,b:2", "get", "tr", "-o", "wide", "-A", "-l", "app=x",
        ])
        .expect("parse");
        assert_eq!(cli.server, ["a:1", "b:2"]);
        let cli::Command::Get(get) = cli.command else {
            panic!("not get")
        };
        assert!(get.all_namespaces);
        assert_eq!(get.output.format(), Some(printer::Format::Wide));
        assert!(cli::Cli::try_parse_from(["slothctl", "get", "tr", "-o", "xml"]).is_err());
        assert!(cli::Cli::try_parse_from(["slothctl", "apply"]).is_err());
        let cli = cli::Cli::try_parse_from(["slothctl", "cancel", "wf", "build", "-n", "ci"])
            .expect("parse cancel");
        assert_eq!(cli.namespace.as_deref(), Some("ci"));
        let cli::Command::Cancel(cancel) = cli.command else {
            panic!("not cancel")
        };
        assert_eq!(
            (cancel.kind.as_str(), cancel.names.as_slice()),
            ("wf", &["build".to_string()][..])
        );
        assert!(cli::Cli::try_parse_from(["slothctl", "cancel"]).is_err());
    }
}
