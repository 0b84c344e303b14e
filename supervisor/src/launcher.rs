//! How an agent starts a supervisor: which executable, and the argv.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::BootMs;

/// The PID_FILE argument that records nothing.
pub const NO_PID_FILE: &str = "-";

/// A supervisor executable and how to call it: the dedicated
/// `sloth-supervise`, or a program (the agent) with a subcommand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launcher {
    program: PathBuf,
    arg0: &'static str,
    subcommand: Option<&'static str>,
}

impl Launcher {
    /// `program FENCE_AT PID_FILE ...`, seen in `ps` as `sloth-supervise`.
    pub fn dedicated(program: PathBuf) -> Self {
        Self {
            program,
            arg0: "sloth-supervise",
            subcommand: None,
        }
    }

    /// `program SUBCOMMAND FENCE_AT PID_FILE ...`, seen in `ps` as `arg0`.
    pub fn subcommand(program: PathBuf, arg0: &'static str, subcommand: &'static str) -> Self {
        Self {
            program,
            arg0,
            subcommand: Some(subcommand),
        }
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The command that runs `program args` under a supervisor with the
    /// deadline `fence_at`; `pid_file` None records nothing.
    pub fn command(
        &self,
        fence_at: BootMs,
        pid_file: Option<&Path>,
        program: &str,
        args: &[&str],
    ) -> std::process::Command {
        let mut command = std::process::Command::new(&self.program);
        command.arg0(self.arg0);
        if let Some(subcommand) = self.subcommand {
            command.arg(subcommand);
        }
        command
            .arg(fence_at.0.to_string())
            .arg(pid_file.map_or(OsStr::new(NO_PID_FILE), Path::as_os_str))
            .arg(program)
            .args(args);
        command
    }
}
