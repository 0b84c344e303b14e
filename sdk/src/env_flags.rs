//! Every long flag of a binary also read from a `SLOTH_*` environment
//! variable (`--data-dir` from `SLOTH_DATA_DIR`), so that systemd's
//! `EnvironmentFile=` and containers can configure it. Done on the built
//! command rather than by hand on each flag, so that flags added later get
//! their variable too. A flag on the command line wins over its variable.

use clap::{Arg, Command, Parser};

/// The variable a long flag is read from: `SLOTH_` and the flag's name in
/// upper case with `_` for `-`.
pub fn var_name(long: &str) -> String {
    format!("SLOTH_{}", long.to_ascii_uppercase().replace('-', "_"))
}

fn with_env(arg: Arg) -> Arg {
    // Flags that name their variable themselves keep it; help and version
    // are not configuration.
    if arg.get_env().is_some() || matches!(arg.get_id().as_str(), "help" | "version") {
        return arg;
    }
    match arg.get_long().map(var_name) {
        Some(var) => arg.env(var),
        None => arg,
    }
}

/// `command` with a `SLOTH_*` variable on every long flag, subcommands included.
pub fn with_sloth_env(command: Command) -> Command {
    command.mut_args(with_env).mut_subcommands(with_sloth_env)
}

/// Parses the process's arguments as `T`, each long flag also from its
/// `SLOTH_*` variable; exits with clap's message on bad input (status 2).
pub fn parse<T: Parser>() -> T {
    parse_from(std::env::args_os())
}

/// As [`parse`], from the arguments given (the program name first).
pub fn parse_from<T, I>(args: I) -> T
where
    T: Parser,
    I: IntoIterator,
    I::Item: Into<std::ffi::OsString> + Clone,
{
    let mut matches = with_sloth_env(T::command()).get_matches_from(args);
    T::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    use clap::CommandFactory;

    #[derive(Parser, Debug)]
    struct Flags {
        #[arg(long, default_value = "a")]
        data_dir: String,
        #[arg(long, env = "OWN_VAR")]
        own: Option<String>,
    }

    #[test]
    fn every_long_flag_gets_a_sloth_variable() {
        assert_eq!(var_name("data-dir"), "SLOTH_DATA_DIR");
        let command = with_sloth_env(Flags::command());
        let env = |id: &str| {
            command
                .get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        assert_eq!(env("data_dir").as_deref(), Some("SLOTH_DATA_DIR"));
        assert_eq!(env("own").as_deref(), Some("OWN_VAR"));
        assert_eq!(env("help"), None);
    }
}
