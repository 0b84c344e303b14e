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
