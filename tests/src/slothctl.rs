//! The real `slothctl`, run against a test's apiserver.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::{ApiServer, Run, binary, run_to_end};

/// The real `slothctl`, pointed at `server`, with a temporary HOME so no
/// user config is read.
pub fn slothctl(server: &ApiServer) -> Command {
    slothctl_at(server.grpc_url())
}

/// The real `slothctl` pointed at any URL (e.g. one where nothing listens).
pub fn slothctl_at(url: &str) -> Command {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    let home = HOME.get_or_init(|| tempfile::tempdir().expect("temp home"));
    let mut cmd = Command::new(binary("slothctl"));
    cmd.arg("--server")
        .arg(url)
        .env("HOME", home.path())
        .env_remove("SLOTH_SERVER")
        .stdin(Stdio::null());
    cmd
}

/// How long one slothctl command of [`ctl`] may take.
pub const CTL_DEADLINE: Duration = Duration::from_secs(30);

/// Runs `slothctl ARGS` against `server` to its end (within [`CTL_DEADLINE`]).
pub fn ctl(server: &ApiServer, args: &[&str]) -> Run {
    let mut cmd = slothctl(server);
    cmd.args(args);
    run_to_end(cmd, None, CTL_DEADLINE)
}

/// [`ctl`] with `input` on stdin.
pub fn ctl_stdin(server: &ApiServer, args: &[&str], input: &str) -> Run {
    let mut cmd = slothctl(server);
    cmd.args(args);
    run_to_end(cmd, Some(input), CTL_DEADLINE)
}

/// `slothctl ARGS` as a user without any setup runs it: a fresh temporary
/// HOME (no config file), no SLOTH_SERVER or SLOTH_TOKEN, and no
/// `--server` but what `args` give.
pub fn ctl_bare(args: &[&str], input: Option<&str>) -> Run {
    let home = tempfile::tempdir().expect("temp home");
    let mut cmd = Command::new(binary("slothctl"));
    cmd.args(args)
        .env("HOME", home.path())
        .env_remove("SLOTH_SERVER")
        .env_remove("SLOTH_TOKEN");
    run_to_end(cmd, input, CTL_DEADLINE)
}

/// `slothctl --server URL COMMAND` under a pseudo-terminal (`script`), so
/// it prints as on a terminal; `command` is shell text (quote its words).
/// NO_COLOR and SLOTH_SERVER are removed, then `env` is set.
pub fn ctl_on_a_tty(
    server: &ApiServer,
    command: &str,
    env: &[(&str, &str)],
    deadline: Duration,
) -> Run {
    let line = format!(
        "{} --server {} {command}",
        binary("slothctl").display(),
        server.grpc_url()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("SLOTH_SERVER");
    for (key, value) in env {
        cmd.env(key, value);
    }
    run_to_end(cmd, None, deadline)
}
