//! A real `sloth-controllers` process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{append_log, kill9, terminate};
use crate::{ApiServer, binary};

/// A running `sloth-controllers` process (stderr in a log file).
pub struct Controllers {
    child: Option<Child>,
    servers: String,
    id: String,
    extra_args: Vec<String>,
    log_path: PathBuf,
    _temp: tempfile::TempDir,
}

impl Controllers {
    /// Starts `sloth-controllers --id ID` against `server` with extra flags.
    pub fn start(server: &ApiServer, id: &str, extra_args: &[&str]) -> Self {
        Self::start_at(server.grpc_url(), id, extra_args)
    }

    /// [`start`](Self::start) against `servers` (comma-separated URLs).
    pub fn start_at(servers: &str, id: &str, extra_args: &[&str]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut controllers = Self {
            child: None,
            servers: servers.to_string(),
            id: id.to_string(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            log_path: temp.path().join("controllers.log"),
            _temp: temp,
        };
        controllers.spawn();
        controllers
    }

    fn spawn(&mut self) {
        let log = append_log(&self.log_path);
        let child = Command::new(binary("sloth-controllers"))
            .args(["--server", &self.servers, "--id", &self.id])
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sloth-controllers");
        self.child = Some(child);
    }

    /// Starts again after `kill9` or `stop`, with the same id and flags.
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "controllers {} still running",
            self.id
        );
        self.spawn();
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        kill9(self.child.take());
    }

    pub fn stop(&mut self) -> bool {
        terminate(self.child.take(), Duration::from_secs(20))
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        self.kill9();
    }
}
