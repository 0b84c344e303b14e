//! `slothctl completion bash|zsh|fish`: the shell's completion script,
//! generated from the command line's definition (clap_complete).

use clap::CommandFactory;

use crate::cli::{Cli, CompletionArgs};

pub(crate) fn run(args: &CompletionArgs) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "slothctl", &mut out);
    Ok(())
}
