//! A real `sloth-apiserver` process on the embedded store.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::binary;
use crate::process::{START_DEADLINE, append_log, kill9, spawn_announcing, terminate};

/// A running `sloth-apiserver` on the embedded store.
pub struct ApiServer {
    child: Option<Child>,
    data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    grpc: String,
    http: String,
    extra_args: Vec<String>,
    stderr_log: PathBuf,
    keep_ports: bool,
}

impl ApiServer {
    /// Starts an apiserver with a fresh temporary data dir.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts with extra command-line arguments.
    pub fn start_with(extra_args: &[&str]) -> Self {
        Self::start_in(None, extra_args)
    }

    /// Starts with its store in `data_dir` (a fresh temporary one if None).
    pub fn start_in(data_dir: Option<&Path>, extra_args: &[&str]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = data_dir.map_or_else(|| temp.path().join("data"), Path::to_path_buf);
        let mut server = Self {
            child: None,
            stderr_log: temp.path().join("apiserver.log"),
            data_dir,
            _temp: Some(temp),
            grpc: String::new(),
            http: String::new(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            keep_ports: false,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = append_log(&self.stderr_log);
        // After the first start, keep the ports so clients can reconnect.
        let (grpc, http) = if self.grpc.is_empty() || !self.keep_ports {
            ("127.0.0.1:0".to_string(), "127.0.0.1:0".to_string())
        } else {
            (
                self.grpc.trim_start_matches("http://").to_string(),
                self.http.trim_start_matches("http://").to_string(),
            )
        };
        let (mut child, reader) = spawn_announcing(
            Command::new(binary("sloth-apiserver"))
                .args(["--listen", &grpc, "--http-listen", &http])
                .arg("--data-dir")
                .arg(&self.data_dir)
                .args(&self.extra_args),
            log,
        );
        // The apiserver prints one line once both ports are bound:
        // `listening grpc=127.0.0.1:P1 http=127.0.0.1:P2`.
        let line = reader.next_line(START_DEADLINE).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("apiserver did not start; its log:\n{}", self.log())
        });
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_string()
        };
        self.grpc = format!("http://{}", field("grpc="));
        self.http = format!("http://{}", field("http="));
        self.child = Some(child);
    }

    pub fn grpc_url(&self) -> &str {
        &self.grpc
    }

    /// `host:port` of the gRPC port (for `https://` URLs).
    pub fn grpc_address(&self) -> &str {
        self.grpc.trim_start_matches("http://")
    }

    pub fn http_url(&self) -> &str {
        &self.http
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Everything the apiserver has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A client for this server.
    pub fn client(&self) -> sloth_sdk::Client {
        sloth_sdk::Client::new(&[self.grpc_url()]).expect("client")
    }

    /// A client for this server whose connections run on `rt` (the client
    /// must be made inside the runtime that later drives it).
    pub fn client_in(&self, rt: &tokio::runtime::Runtime) -> sloth_sdk::Client {
        let _enter = rt.enter();
        self.client()
    }

    /// SIGKILL: no chance to flush or shut down.
    pub fn kill9(&mut self) {
        kill9(self.child.take());
    }

    /// SIGTERM, then waits for a graceful exit; returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        terminate(self.child.take(), Duration::from_secs(20))
    }

    /// Stops gracefully and starts again on the same data dir (new ports).
    pub fn restart(&mut self) {
        assert!(
            self.stop(),
            "apiserver did not stop cleanly; log:\n{}",
            self.log()
        );
        self.spawn();
    }

    /// Stops gracefully and starts again on the same data dir and the same
    /// ports, so that connected clients can resume.
    pub fn restart_same_ports(&mut self) {
        assert!(
            self.stop(),
            "apiserver did not stop cleanly; log:\n{}",
            self.log()
        );
        self.keep_ports = true;
        self.spawn();
        self.keep_ports = false;
    }

    /// Starts again after `kill9` on the same data dir (new ports).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }

    /// Starts again after `kill9` on the same data dir and the same ports,
    /// so that clients given its URL reach it again.
    pub fn start_again_same_ports(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.keep_ports = true;
        self.spawn();
        self.keep_ports = false;
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.kill9();
    }
}
