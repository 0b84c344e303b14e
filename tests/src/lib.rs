//! Helpers for end-to-end tests: build and start the real binaries on
//! loopback with OS-picked ports and temporary directories. Every wait has a
//! deadline; a process that does not come up fails the test with its output.

mod etcd;
pub mod files;
mod haproxy;
pub mod json_schema;
mod one_agent;

pub use etcd::Etcd;
pub use haproxy::{Backend, HaProxy};
pub use one_agent::OneAgent;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a process may take to start listening.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// The directory holding this build's binaries (`target/debug`), built once
/// per test process so that `cargo test` alone is enough.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test-exe>
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in target/<profile>/deps")
            .to_path_buf();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build
            .current_dir(workspace)
            .args(["build", "--quiet", "--bins"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build --bins");
        assert!(status.success(), "cargo build --bins failed");
        dir
    })
}

/// The path of one of the workspace's binaries.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(path.exists(), "binary {} was not built", path.display());
    path
}

/// Reads a child's stdout lines on a thread, so waits can have deadlines.
pub struct LineReader {
    lines: mpsc::Receiver<String>,
}

impl LineReader {
    pub fn new(out: impl Read + Send + 'static) -> Self {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { lines }
    }

    /// The next line, or None when the deadline passes or the stream ends.
    pub fn next_line(&self, deadline: Duration) -> Option<String> {
        self.lines.recv_timeout(deadline).ok()
    }

    /// Reads lines until one satisfies `pred`; returns every line read.
    /// Panics with what was read when the deadline passes.
    pub fn wait_for(&self, deadline: Duration, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let end = Instant::now() + deadline;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = pred(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no matching line within {deadline:?}; read: {seen:#?}"),
            }
        }
    }
}

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
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .expect("open apiserver log");
        // After the first start, keep the ports so clients can reconnect.
        let (grpc, http) = if self.grpc.is_empty() || !self.keep_ports {
            ("127.0.0.1:0".to_string(), "127.0.0.1:0".to_string())
        } else {
            (
                self.grpc.trim_start_matches("http://").to_string(),
                self.http.trim_start_matches("http://").to_string(),
            )
        };
        let mut child = Command::new(binary("sloth-apiserver"))
            .args(["--listen", &grpc, "--http-listen", &http])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start sloth-apiserver");
        let reader = LineReader::new(child.stdout.take().expect("stdout"));
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

/// Polls `check` until it returns Some or the deadline passes.
pub fn wait_until<T>(deadline: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A plain HTTP/1.1 GET on loopback; returns (status code, body).
pub fn http_get(base_url: &str, path: &str) -> (u16, String) {
    http_get_with(base_url, path, &[])
}

/// [`http_get`] with extra header lines (`Authorization: Bearer ...`).
pub fn http_get_with(base_url: &str, path: &str, headers: &[&str]) -> (u16, String) {
    use std::io::Write;
    let host = base_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).expect("connect to HTTP port");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n"
    )
    .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A two-worker Tokio runtime for tests that also drive processes.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

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
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .expect("open agent log");
        let mut child = Command::new(binary("sloth-agent"))
            .args(["--name", &self.name, "--server", &self.server])
            .args(["--bind-address", "127.0.0.1", "--port", "0"])
            .arg("--work-dir")
            .arg(&self.work_dir)
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .env_remove("SLOTH_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start sloth-agent");
        let reader = LineReader::new(child.stdout.take().expect("stdout"));
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

/// Sends `signal` (a `kill` name such as `STOP` or `CONT`) to process `pid`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A client of the apiserver at `url` that authenticates with bearer
/// `token` (plain gRPC).
pub fn client_with_token(url: &str, token: &str) -> sloth_sdk::Client {
    sloth_sdk::Client::with_options(
        &[url],
        &sloth_sdk::ClientOptions {
            tls: None,
            token: Some(token.into()),
        },
    )
    .expect("client")
}

/// SIGKILL, and reaps the process.
fn kill9(child: Option<Child>) {
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// SIGTERM, then waits up to `grace` for the exit; true if it exited 0.
/// A process still there after `grace` is killed and counts as a failure.
fn terminate(child: Option<Child>, grace: Duration) -> bool {
    let Some(mut child) = child else {
        return true;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let end = Instant::now() + grace;
    while Instant::now() < end {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    kill9(Some(child));
    false
}

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
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("controllers log");
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

/// What a finished command left.
#[derive(Debug)]
pub struct Run {
    /// The exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }

    /// Asserts the given exit code.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }

    /// stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }
}

/// Runs a prepared command to completion (with `input` on stdin), killing it
/// and failing the test when it outlives `deadline`.
pub fn run_to_end(mut cmd: Command, input: Option<&str>, deadline: Duration) -> Run {
    use std::io::Write;
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start command");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let code = wait_exit(&mut child, deadline).unwrap_or_else(|| {
        kill9(Some(child));
        panic!("command did not finish within {deadline:?}");
    });
    Run {
        code,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Reads a stream to its end on a thread.
pub fn drain(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    })
}

/// The exit code of `child` once it exits (-1 for a signal), or None after
/// `deadline`.
pub fn wait_exit(child: &mut Child, deadline: Duration) -> Option<i32> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return Some(status.code().unwrap_or(-1));
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The whole output of a finished TaskRun from byte `offset` on, read
/// through the apiserver without following.
pub async fn read_logs(
    client: &sloth_sdk::Client,
    namespace: &str,
    name: &str,
    offset: i64,
) -> String {
    use futures_util::StreamExt;
    let mut stream = client
        .logs(namespace, name, false, offset)
        .await
        .expect("logs");
    let mut all = Vec::new();
    while let Some(chunk) = stream.next().await {
        all.extend(chunk.expect("chunk"));
    }
    String::from_utf8(all).expect("utf-8")
}

/// A shell TaskRun bound to agent `agent` (so it skips scheduling).
pub fn shell_bound_to(name: &str, agent: &str, script: &str) -> sloth_sdk::objects::TaskRun {
    use sloth_sdk::objects::{Payload, TaskRun, TaskRunSpec};
    TaskRun::new(
        name,
        TaskRunSpec {
            run: Payload {
                shell: Some(script.to_string()),
                lua: None,
                command: None,
            },
            agent_name: Some(agent.into()),
            ..TaskRunSpec::default()
        },
    )
}
