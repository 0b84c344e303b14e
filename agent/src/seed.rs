//! The seeds' spellings of the agent's command line (sloth-runner's
//! `agent start --master HOST:PORT --daemon`), mapped onto this agent's.
//! `--master` itself is a clap alias of `--server` (see config.rs).

use std::ffi::{OsStr, OsString};

/// The word the seeds put before the flags: `sloth-agent start ...`.
const START: &str = "start";

/// Exit code of `--daemon`: a usage error, as clap's own.
pub(crate) const DAEMON_EXIT_CODE: i32 = 2;

/// What `--daemon` prints: this agent does not fork itself into the
/// background; systemd (or another supervisor) runs it.
pub(crate) const DAEMON_EXPLANATION: &str = "\
sloth-agent does not daemonize itself (--daemon is not supported).
Run it under systemd instead, which restarts it and collects its logs:

  sudo scripts/install.sh agent --name NAME --server HOST:PORT
  systemctl status sloth-agent
  journalctl -u sloth-agent -f

The unit is manifests/systemd/sloth-agent.service (see docs/operations.md,
Installing). In a terminal or a container, run sloth-agent in the foreground.";

/// `argv` without the seeds' `start` word right after the program name.
pub(crate) fn without_start(argv: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut argv: Vec<OsString> = argv.into_iter().collect();
    if argv.get(1).map(OsString::as_os_str) == Some(OsStr::new(START)) {
        argv.remove(1);
    }
    argv
}

/// Whether `argv` asks for `--daemon` (checked before the other flags, so
/// that `sloth-agent start --daemon` explains itself even without --name).
pub(crate) fn wants_daemon(argv: &[OsString]) -> bool {
    argv.iter()
        .skip(1)
        .take_while(|arg| arg.as_os_str() != OsStr::new("--"))
        .any(|arg| arg.as_os_str() == OsStr::new("--daemon"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn start_is_dropped_only_in_first_place() {
        assert_eq!(
            without_start(argv(&["sloth-agent", "start", "--name", "a1"])),
            argv(&["sloth-agent", "--name", "a1"])
        );
        assert_eq!(
            without_start(argv(&["sloth-agent", "--name", "start"])),
            argv(&["sloth-agent", "--name", "start"])
        );
    }

    #[test]
    fn daemon_is_found_anywhere_among_the_flags() {
        assert!(wants_daemon(&argv(&[
            "sloth-agent",
            "--name",
            "a",
            "--daemon"
        ])));
        assert!(!wants_daemon(&argv(&["sloth-agent", "--name", "a"])));
        assert!(!wants_daemon(&argv(&["--daemon"])), "the program name");
    }
}
