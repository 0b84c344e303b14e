//! Seed-compatible aliases: `agent list` is `get agents`, and
//! `agent run NAME "COMMAND"` is `run --agent NAME -- bash -c COMMAND`.

use super::Context;
use crate::cli::{AgentCommand, AgentListArgs, AgentRunArgs, GetArgs, RunArgs};

pub async fn run(ctx: &Context, command: AgentCommand) -> anyhow::Result<()> {
    match command {
        AgentCommand::List(args) => super::get::run(ctx, list_args(args)).await,
        AgentCommand::Run(args) => super::run::run(ctx, run_args(args)).await,
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
