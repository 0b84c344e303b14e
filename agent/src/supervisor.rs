//! Which executable supervises the agent's payloads (the protocol and the
//! supervisor itself are in the `sloth-supervisor` crate).
//!
//! `sloth-supervise`, the small dedicated binary, when it lies beside the
//! agent's own executable or `--supervisor PATH` names it; otherwise the
//! agent itself, re-executed with the hidden `supervise` subcommand (the
//! same code, but an exec of the whole agent per run). Either file is
//! pinned for the agent's lifetime: the agent holds the dedicated file
//! open and executes it as `/proc/self/fd/N`, and its own as
//! `/proc/self/exe`, so replacing the files on disk (an upgrade) never
//! changes what a running agent starts.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
pub(crate) use sloth_supervisor::Message;
use sloth_supervisor::{BootMs, Launcher};
use tokio::sync::watch;

use crate::fence::Deadlines;

/// The hidden subcommand (`sloth-agent supervise ...`).
pub(crate) const SUBCOMMAND: &str = "supervise";

/// The dedicated supervisor's file name, looked for beside the agent's.
pub(crate) const DEDICATED: &str = "sloth-supervise";

/// The running agent's own executable, even after its file was replaced.
const OWN_EXECUTABLE: &str = "/proc/self/exe";

/// The supervisors' executable, resolved once at start.
#[derive(Clone, Debug)]
pub(crate) struct Executable {
    launcher: Launcher,
    /// Where it was found, for the log.
    origin: PathBuf,
    /// The dedicated binary's file, open as long as a clone of this lives:
    /// the launcher executes it through `/proc/self/fd/N`.
    _pinned: Option<Arc<File>>,
}

impl Executable {
    /// `--supervisor PATH` if given (an error if it is no executable
    /// file), else `sloth-supervise` beside `own_exe` if there is one,
    /// else the agent itself.
    pub(crate) fn resolve(flag: Option<&Path>, own_exe: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(path) = flag {
            return Self::pin(path).with_context(|| format!("bad --supervisor {}", path.display()));
        }
        let sibling = own_exe
            .and_then(Path::parent)
            .map(|dir| dir.join(DEDICATED));
        match sibling {
            Some(path) if path.exists() => Self::pin(&path).with_context(|| {
                format!(
                    "cannot use the supervisor {} beside the agent (give --supervisor PATH \
                     to use another)",
                    path.display()
                )
            }),
            _ => Ok(Self::own()),
        }
    }

    /// The agent's own executable with the `supervise` subcommand.
    pub(crate) fn own() -> Self {
        Self {
            launcher: Launcher::subcommand(OWN_EXECUTABLE.into(), "sloth-agent", SUBCOMMAND),
            origin: std::fs::read_link(OWN_EXECUTABLE).unwrap_or_else(|_| OWN_EXECUTABLE.into()),
            _pinned: None,
        }
    }

    /// The dedicated supervisor at `path`, held open.
    fn pin(path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path).context("cannot open it")?;
        let meta = file.metadata().context("cannot read its metadata")?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            anyhow::bail!("it is not an executable file");
        }
        let fd_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        Ok(Self {
            launcher: Launcher::dedicated(fd_path),
            origin: path.to_path_buf(),
            _pinned: Some(Arc::new(file)),
        })
    }

    /// True for `sloth-supervise`, false for the agent's own fallback.
    pub(crate) fn is_dedicated(&self) -> bool {
        self._pinned.is_some()
    }

    /// "sloth-supervise (/usr/bin/sloth-supervise)", for the log.
    pub(crate) fn describe(&self) -> String {
        if self.is_dedicated() {
            format!("{DEDICATED} ({})", self.origin.display())
        } else {
            format!(
                "`sloth-agent {SUBCOMMAND}` ({}; no {DEDICATED} beside it)",
                self.origin.display()
            )
        }
    }

    /// The command that runs `program args` under a supervisor; `pid_file`
    /// None records nothing.
    pub(crate) fn command(
        &self,
        fence_at: BootMs,
        pid_file: Option<&Path>,
        program: &str,
        args: &[&str],
    ) -> std::process::Command {
        self.launcher.command(fence_at, pid_file, program, args)
    }
}

/// What starting payloads under supervisors needs: the supervisor's
/// executable and the deadlines to pass on.
#[derive(Clone, Debug)]
pub(crate) struct Supervision {
    pub supervisor: Executable,
    pub deadlines: watch::Receiver<Deadlines>,
}

impl Supervision {
    /// Supervisors without a fencing deadline, for tests.
    #[cfg(test)]
    pub(crate) fn unfenced() -> Self {
        let (keep, deadlines) = watch::channel(Deadlines::NEVER);
        // The deadline never moves: the sender may go.
        drop(keep);
        Self {
            supervisor: testing::supervisor(),
            deadlines,
        }
    }
}

/// `sloth-agent supervise ARGS`: the fallback supervisor. Never returns.
pub(crate) fn main(args: impl Iterator<Item = OsString>) -> ! {
    sloth_supervisor::main("sloth-agent supervise", args)
}

#[cfg(test)]
pub(crate) mod testing {
    //! The workspace's binaries, built once, for tests that start
    //! supervisors.

    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    use super::Executable;

    /// `target/<profile>/NAME`, built by cargo when the unit tests run
    /// (they are a different executable).
    pub(crate) fn binary(name: &str) -> PathBuf {
        static DIR: OnceLock<PathBuf> = OnceLock::new();
        DIR.get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            let dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("test executable lives in target/<profile>/deps")
                .to_path_buf();
            let mut build = std::process::Command::new(
                std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            );
            // The whole workspace's binaries, as scripts/test.sh and the
            // e2e harness build them: `-p sloth-agent` alone would resolve
            // the sdk's features differently and rebuild half the tree.
            build.current_dir(env!("CARGO_MANIFEST_DIR")).args([
                "build",
                "--quiet",
                "--workspace",
                "--bins",
            ]);
            if dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let status = build.status().expect("run cargo build");
            assert!(status.success(), "cargo build --workspace --bins failed");
            dir
        })
        .join(name)
    }

    /// The dedicated supervisor of this build, pinned.
    pub(crate) fn supervisor() -> Executable {
        Executable::resolve(Some(&binary(super::DEDICATED)), None).expect("sloth-supervise")
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    use super::*;

    fn run_exit_7(executable: &Executable) -> std::process::ExitStatus {
        let mut child = executable
            .command(BootMs::NEVER, None, "bash", &["-c", "exit 7"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("start the supervisor");
        // Held until the end: a closed pipe reads as the agent gone.
        let _pipe = child.stdin.take();
        child.wait().expect("wait")
    }

    #[test]
    fn the_dedicated_supervisor_beside_the_agent_is_used_and_pinned() {
        let dir = tempfile::tempdir().expect("temp dir");
        let copy = dir.path().join(DEDICATED);
        std::fs::copy(testing::binary(DEDICATED), &copy).expect("copy");
        let executable =
            Executable::resolve(None, Some(&dir.path().join("sloth-agent"))).expect("resolve");
        assert!(executable.is_dedicated(), "{executable:?}");
        assert!(executable.describe().contains(&copy.display().to_string()));
        // An upgrade replaces the file: the pinned one still runs.
        std::fs::remove_file(&copy).expect("remove");
        std::fs::write(&copy, b"#!/bin/sh\nexit 99\n").expect("replace");
        assert_eq!(run_exit_7(&executable).code(), Some(7));
    }

    #[test]
    fn without_a_sibling_the_agent_supervises_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        let executable =
            Executable::resolve(None, Some(&dir.path().join("sloth-agent"))).expect("resolve");
        assert!(!executable.is_dedicated(), "{executable:?}");
        assert!(executable.describe().contains("sloth-agent supervise"));
        assert_eq!(
            executable.launcher,
            Launcher::subcommand(OWN_EXECUTABLE.into(), "sloth-agent", SUBCOMMAND)
        );
        // The fallback's code path, through the agent binary itself.
        let agent = Executable {
            launcher: Launcher::subcommand(
                testing::binary("sloth-agent"),
                "sloth-agent",
                SUBCOMMAND,
            ),
            origin: PathBuf::new(),
            _pinned: None,
        };
        assert_eq!(run_exit_7(&agent).code(), Some(7));
        let mut child = agent
            .command(BootMs::NEVER, None, "bash", &["-c", "kill -USR1 $$"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("start");
        let _pipe = child.stdin.take();
        assert_eq!(
            child.wait().expect("wait").signal(),
            Some(nix::sys::signal::Signal::SIGUSR1 as i32)
        );
    }

    #[test]
    fn a_bad_supervisor_flag_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let nowhere = dir.path().join("nowhere");
        let e = Executable::resolve(Some(&nowhere), None).expect_err("missing");
        let message = format!("{e:#}");
        assert!(message.contains("--supervisor"), "{message}");
        assert!(message.contains("nowhere"), "{message}");
        let e = Executable::resolve(Some(dir.path()), None).expect_err("a directory");
        assert!(format!("{e:#}").contains("not an executable file"), "{e:#}");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"data").expect("write");
        let e = Executable::resolve(Some(&plain), None).expect_err("not executable");
        assert!(format!("{e:#}").contains("not an executable file"), "{e:#}");
    }
}
