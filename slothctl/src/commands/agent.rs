//! Seed-compatible aliases: `agent list` is `get agents`, and
//! `agent run NAME "COMMAND"` is `run --agent NAME -- bash -c COMMAND`.

use super::Context;
use super::agent_run_style::Style;
use super::output_sink::Sink;
use crate::cli::{AgentCommand, AgentListArgs, AgentRunArgs, GetArgs, RunArgs};
use crate::error::{self, CliError};

pub(crate) async fn run(ctx: &Context, command: AgentCommand) -> anyhow::Result<()> {
    match command {
        AgentCommand::List(args) => super::get::run(ctx, list_args(args)).await,
        AgentCommand::Run(args) => framed_run(ctx, args).await,
        AgentCommand::Stop(args) => super::agent_stop::run(ctx, args).await,
    }
}

fn list_args(args: AgentListArgs) -> GetArgs {
    GetArgs {
        kind: "agents".to_string(),
        names: Vec::new(),
        output: crate::printer::Output::Plain(args.output),
        sort_by: None,
        show_labels: false,
        selector: args.selector,
        field_selector: String::new(),
        watch: false,
        output_watch_events: false,
        all_namespaces: false,
        no_headers: false,
    }
}

/// `run`, framed on a terminal by a header and a footer (exit code and
/// duration), as the seeds promise.
async fn framed_run(ctx: &Context, args: AgentRunArgs) -> anyhow::Result<()> {
    let style = Style::detect();
    if let Some(header) = style.header(&args.name, &args.command.join(" ")) {
        eprintln!("{header}");
    }
    let started = std::time::Instant::now();
    let sink = Sink {
        split_streams: true,
        red_stderr: style.colors_stderr(),
    };
    let result = super::run::run_with(ctx, run_args(args), sink).await;
    let code = match &result {
        Ok(()) => 0,
        Err(e) => e
            .downcast_ref::<CliError>()
            .map_or(error::FAILED, |e| e.code),
    };
    if let Some(footer) = style.footer(code, started.elapsed()) {
        eprintln!("{footer}");
    }
    result
}

fn run_args(args: AgentRunArgs) -> RunArgs {
    RunArgs {
        agent: Some(args.name),
        selector: None,
        timeout: None,
        env: Vec::new(),
        workdir: None,
        workspace: None,
        command: vec!["bash".to_string(), "-c".to_string(), args.command.join(" ")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn agent_command(argv: &[&str]) -> AgentCommand {
        let mut all = vec!["slothctl", "agent"];
        all.extend(argv);
        match Cli::try_parse_from(all).expect("parse").command {
            Command::Agent(command) => command,
            other => panic!("not agent: {other:?}"),
        }
    }

    #[test]
    fn agent_run_is_bash_c_on_that_agent() {
        let AgentCommand::Run(args) = agent_command(&["run", "a1", "echo x; exit 4"]) else {
            panic!("not run")
        };
        let args = run_args(args);
        assert_eq!(args.agent.as_deref(), Some("a1"));
        assert_eq!(
            super::super::run::shell_command(&args.command),
            "bash -c 'echo x; exit 4'"
        );
        let AgentCommand::Run(args) = agent_command(&["run", "a1", "ls", "-la"]) else {
            panic!("not run")
        };
        assert_eq!(run_args(args).command[2], "ls -la");
    }

    #[test]
    fn agent_list_is_get_agents() {
        let AgentCommand::List(args) = agent_command(&["list", "-o", "name"]) else {
            panic!("not list")
        };
        let args = list_args(args);
        assert_eq!(args.kind, "agents");
        assert_eq!(args.output.format(), Some(crate::printer::Format::Name));
    }
}
