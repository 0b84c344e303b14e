//! A real `sloth-agent` process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::process::{START_DEADLINE, append_log, kill9, spawn_announcing, terminate};
use crate::{ApiServer, binary, wait_exit};

/// A running `sloth-agent` registered with an [`ApiServer`], listening on an
/// OS-picked loopback port, with its own temporary work dir and its stderr in
/// a log file.
pub struct Agent {
    child: Option<Child>,
    name: String,
    server: String,
    work_dir: PathBuf,
    stderr_log: PathBuf,
    extra_args: Vec<String>,
    logs_address: String,
    _temp: tempfile::TempDir,
}

impl Agent {
    /// Starts agent `name` against `server` with extra flags (e.g.
    /// `--capacity 1`); returns once it printed its ready line.
    pub fn start(server: &ApiServer, name: &str, extra_args: &[&str]) -> Self {
        Self::start_at(server.grpc_url(), name, extra_args)
    }

    /// [`start`](Self::start) against `servers` (one URL, or several
    /// comma-separated for failover).
    pub fn start_at(servers: &str, name: &str, extra_args: &[&str]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut agent = Self {
            child: None,
            name: name.to_string(),
            server: servers.to_string(),
            work_dir: temp.path().join("work"),
            stderr_log: temp.path().join("agent.log"),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            logs_address: String::new(),
            _temp: temp,
        };
        agent.spawn();
        agent
    }

    fn spawn(&mut self) {
        let log = append_log(&self.stderr_log);
        let (mut child, reader) = spawn_announcing(
            Command::new(binary("sloth-agent"))
                .args(["--name", &self.name, "--server", &self.server])
                .args(["--bind-address", "127.0.0.1", "--port", "0"])
                .arg("--work-dir")
                .arg(&self.work_dir)
                .args(&self.extra_args)
                .env_remove("SLOTH_SERVER"),
            log,
        );
        // `agent NAME ready logs=HOST:PORT`, once registered and serving.
        let line = reader.next_line(START_DEADLINE).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "agent {} did not start; its log:\n{}",
                self.name,
                self.log()
            )
        });
        let prefix = format!("agent {} ready logs=", self.name);
        self.logs_address = line
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("unexpected ready line {line:?}"))
            .to_string();
        self.child = Some(child);
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address the agent reported for its logs service.
    pub fn logs_address(&self) -> &str {
        &self.logs_address
    }

    /// The agent's `--work-dir`.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// Everything the agent has logged so far (all runs of it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        kill9(self.child.take());
    }

    /// SIGTERM, then waits for the agent to exit; returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        terminate(self.child.take(), Duration::from_secs(30))
    }

    /// Waits up to `deadline` for the agent to exit by itself; its exit
    /// code, or None while it still runs.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let code = wait_exit(child, deadline)?;
        self.child = None;
        Some(code)
    }

    /// Starts again after `kill9` or `stop`, with the same name, flags and
    /// work dir (a new port).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "agent {} still running", self.name);
        self.spawn();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}
