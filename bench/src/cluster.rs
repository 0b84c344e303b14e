//! Starting and stopping the real processes a scenario runs against: etcd,
//! `sloth-apiserver`, `sloth-controllers` and `sloth-agent`, each on
//! loopback with OS-picked ports, a directory under one temporary directory
//! and its stderr in a log file there. Everything is stopped (SIGTERM, then
//! SIGKILL after a grace period) when the [`Cluster`] is dropped, so an
//! error or a panic in a scenario still leaves no process behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sloth_sdk::objects::{AgentPhase, AgentSpec};
use sloth_sdk::{Api, Client, ListParams};

/// How long a process may take to print its ready line.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a process may take to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Set once from `--keep`: temporary directories outlive the run.
static KEEP_TEMP_DIRS: AtomicBool = AtomicBool::new(false);

/// Keeps every cluster's temporary directory (data and logs) after the run.
pub(crate) fn keep_temp_dirs() {
    KEEP_TEMP_DIRS.store(true, Ordering::Relaxed);
}

/// Which binaries to run, and where.
#[derive(Clone, Debug)]
pub(crate) struct Bins {
    dir: PathBuf,
}

impl Bins {
    /// `dir`, or the directory of this executable (where cargo puts the
    /// workspace's other binaries).
    pub(crate) fn new(dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let dir = match dir {
            Some(dir) => dir,
            None => std::env::current_exe()
                .context("cannot find the sloth-bench executable")?
                .parent()
                .context("the sloth-bench executable has no directory")?
                .to_path_buf(),
        };
        Ok(Self { dir })
    }

    pub(crate) fn path(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        if !path.is_file() {
            bail!(
                "{} not found; build the binaries first (cargo build --release --bins) or pass --bin-dir",
                path.display()
            );
        }
        Ok(path)
    }
}

/// The order processes are stopped in: dependents first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    Etcd,
    ApiServer,
    Client,
}

/// One child process.
struct Proc {
    name: String,
    tier: Tier,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn signal_term(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Waits up to `grace` after SIGTERM, then kills.
    fn reap(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not exit after SIGTERM: killing it", self.name);
        let _ = child.kill();
        let _ = child.wait();
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// A started apiserver.
#[derive(Clone, Debug)]
pub(crate) struct ApiServer {
    pub grpc_url: String,
    pub http_url: String,
    pub pid: u32,
}

/// Options of [`Cluster::start_apiserver`].
#[derive(Clone, Debug, Default)]
pub(crate) struct ApiServerOptions {
    /// None: embedded; Some: etcd endpoints (comma-separated).
    pub etcd_endpoints: Option<String>,
    /// Run the controllers in the apiserver process (`--controllers`).
    pub controllers: bool,
    /// More flags for `sloth-apiserver`.
    pub extra_args: Vec<String>,
}

/// The processes of one scenario and their temporary directory.
pub(crate) struct Cluster {
    bins: Bins,
    procs: Vec<Proc>,
    // Dropped after the processes are stopped (field order).
    temp: tempfile::TempDir,
}

impl Cluster {
    pub(crate) fn new(bins: Bins) -> anyhow::Result<Self> {
        let mut temp = tempfile::Builder::new()
            .prefix("sloth-bench-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        if KEEP_TEMP_DIRS.load(Ordering::Relaxed) {
            temp.disable_cleanup(true);
            eprintln!("keeping the data and logs in {}", temp.path().display());
        }
        Ok(Self {
            bins,
            procs: Vec::new(),
            temp,
        })
    }

    /// Keeps the temporary directory after the run (and says where it is),
    /// e.g. to look into the logs of a run that went wrong.
    pub(crate) fn keep(&mut self) {
        self.temp.disable_cleanup(true);
        eprintln!(
            "keeping the data and logs in {}",
            self.temp.path().display()
        );
    }

    /// A fresh directory under the temporary directory.
    pub(crate) fn dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.temp.path().join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    fn log_file(&self, name: &str) -> anyhow::Result<(PathBuf, std::fs::File)> {
        let path = self.temp.path().join(format!("{name}.log"));
        // Appended to: a restarted process's log follows its predecessor's.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok((path, file))
    }

    /// Spawns `cmd` (stdout piped), registers it, and returns its first
    /// stdout line that satisfies `ready` (the rest of stdout is drained).
    fn spawn(
        &mut self,
        name: &str,
        tier: Tier,
        mut cmd: Command,
        ready: impl Fn(&str) -> bool,
    ) -> anyhow::Result<(u32, String)> {
        let (log, file) = self.log_file(name)?;
        let mut child = cmd
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .env_remove("SLOTH_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pid = child.id();
        let stdout = child.stdout.take().context("no stdout pipe")?;
        self.procs.push(Proc {
            name: name.to_string(),
            tier,
            child: Some(child),
            log,
        });
        let lines = line_reader(stdout);
        let end = Instant::now() + START_DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if ready(&line) => return Ok((pid, line)),
                Ok(_) => {}
                Err(_) => {
                    let tail = self.procs.last().map(Proc::log_tail).unwrap_or_default();
                    bail!(
                        "{name} did not become ready within {START_DEADLINE:?}; its log:\n{tail}"
                    );
                }
            }
        }
    }

    /// A single-member etcd on free loopback ports; returns its client URL.
    pub(crate) fn start_etcd(&mut self) -> anyhow::Result<String> {
        let client_url = format!("http://127.0.0.1:{}", free_port()?);
        let peer_url = format!("http://127.0.0.1:{}", free_port()?);
        let data = self.dir("etcd")?;
        let (log, file) = self.log_file("etcd")?;
        let child = Command::new("etcd")
            .args(["--name", "bench"])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("bench={peer_url}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "sloth-bench"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            // Progress for idle watches: etcd before 3.4.31/3.5.13 is not
            // asked for it (apiserver/src/store/etcd/progress.rs).
            .args(["--experimental-watch-progress-notify-interval", "1s"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .context("cannot start etcd (Debian: apt-get install etcd-server)")?;
        self.procs.push(Proc {
            name: "etcd".into(),
            tier: Tier::Etcd,
            child: Some(child),
            log,
        });
        let end = Instant::now() + START_DEADLINE;
        while !etcd_healthy(&client_url) {
            if Instant::now() > end {
                let tail = self.procs.last().map(Proc::log_tail).unwrap_or_default();
                bail!("etcd did not become healthy; its log:\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("etcd ready at {client_url}");
        Ok(client_url)
    }

    pub(crate) fn start_apiserver(
        &mut self,
        options: &ApiServerOptions,
    ) -> anyhow::Result<ApiServer> {
        self.spawn_apiserver(options, "127.0.0.1:0", "127.0.0.1:0")
    }

    /// Starts the apiserver again on the addresses (and, embedded, the data
    /// directory) of `previous`, which must have been stopped
    /// ([`Cluster::stop_apiserver`]): clients keep their URLs.
    pub(crate) fn restart_apiserver(
        &mut self,
        options: &ApiServerOptions,
        previous: &ApiServer,
    ) -> anyhow::Result<ApiServer> {
        let address = |url: &str| url.trim_start_matches("http://").to_string();
        self.spawn_apiserver(
            options,
            &address(&previous.grpc_url),
            &address(&previous.http_url),
        )
    }

    /// Stops the apiserver (SIGTERM, then SIGKILL after the grace period)
    /// and waits until it has exited.
    pub(crate) fn stop_apiserver(&mut self) {
        self.stop_where(|p| p.tier == Tier::ApiServer);
    }

    /// Stops a `sloth-controllers` started with [`Cluster::start_controllers`].
    pub(crate) fn stop_controllers(&mut self) {
        self.stop_where(|p| p.name == "controllers");
    }

    fn stop_where(&mut self, which: impl Fn(&Proc) -> bool) {
        for p in self.procs.iter().filter(|p| which(p)) {
            p.signal_term();
        }
        for p in self.procs.iter_mut().filter(|p| which(p)) {
            p.reap(STOP_GRACE);
        }
        self.procs.retain(|p| !which(p));
    }

    fn spawn_apiserver(
        &mut self,
        options: &ApiServerOptions,
        listen: &str,
        http_listen: &str,
    ) -> anyhow::Result<ApiServer> {
        let mut cmd = Command::new(self.bins.path("sloth-apiserver")?);
        cmd.args(["--listen", listen, "--http-listen", http_listen]);
        match &options.etcd_endpoints {
            Some(endpoints) => {
                cmd.args(["--store", "etcd", "--etcd-endpoints", endpoints]);
            }
            None => {
                cmd.args(["--store", "embedded", "--data-dir"])
                    .arg(self.dir("apiserver")?);
            }
        }
        if options.controllers {
            cmd.arg("--controllers");
        }
        cmd.args(&options.extra_args);
        let (pid, line) = self.spawn("apiserver", Tier::ApiServer, cmd, |l| {
            l.starts_with("listening ")
        })?;
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(|a| format!("http://{a}"))
                .with_context(|| format!("no {name} in the apiserver's line {line:?}"))
        };
        let server = ApiServer {
            grpc_url: field("grpc=")?,
            http_url: field("http=")?,
            pid,
        };
        eprintln!(
            "apiserver ready at {} (metrics {}/metrics, pid {pid})",
            server.grpc_url, server.http_url
        );
        Ok(server)
    }

    /// `sloth-controllers` as its own process.
    pub(crate) fn start_controllers(&mut self, server: &ApiServer) -> anyhow::Result<()> {
        let (log, file) = self.log_file("controllers")?;
        let child = Command::new(self.bins.path("sloth-controllers")?)
            .args(["--server", &server.grpc_url, "--id", "bench"])
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .context("cannot start sloth-controllers")?;
        self.procs.push(Proc {
            name: "controllers".into(),
            tier: Tier::Client,
            child: Some(child),
            log,
        });
        Ok(())
    }

    /// Starts agent `name`; returns its pid once it printed its ready line.
    pub(crate) fn start_agent(
        &mut self,
        server: &ApiServer,
        name: &str,
        extra_args: &[String],
    ) -> anyhow::Result<u32> {
        let work = self.dir(&format!("agent-{name}"))?;
        let mut cmd = Command::new(self.bins.path("sloth-agent")?);
        cmd.args(["--name", name, "--server", &server.grpc_url])
            .args(["--bind-address", "127.0.0.1", "--port", "0"])
            .arg("--work-dir")
            .arg(work)
            .args(extra_args);
        let prefix = format!("agent {name} ready");
        let (pid, _) = self.spawn(&format!("agent-{name}"), Tier::Client, cmd, |l| {
            l.starts_with(&prefix)
        })?;
        Ok(pid)
    }

    /// An apiserver on the embedded store running the controllers in
    /// process and agents `names` (each started with `agent_args`), once
    /// all are Ready: the apiserver, a client of it and the agents' pids.
    pub(crate) async fn start_with_agents(
        &mut self,
        names: &[String],
        agent_args: &[String],
    ) -> anyhow::Result<(ApiServer, Client, Vec<u32>)> {
        let server = self.start_apiserver(&ApiServerOptions {
            controllers: true,
            ..ApiServerOptions::default()
        })?;
        let mut pids = Vec::with_capacity(names.len());
        for name in names {
            pids.push(self.start_agent(&server, name, agent_args)?);
        }
        let client = Client::new(&[&server.grpc_url]).context("bad apiserver URL")?;
        wait_agents_ready(&client, names, Duration::from_secs(30)).await?;
        Ok((server, client, pids))
    }

    /// CPU time each running process has used so far, by name: its own,
    /// and that of its children it has reaped (an agent's payloads).
    pub(crate) fn cpu_usage(&self) -> Vec<(String, CpuTime)> {
        self.procs
            .iter()
            .filter_map(|p| {
                let pid = p.child.as_ref()?.id();
                Some((p.name.clone(), cpu_times(pid).ok()?))
            })
            .collect()
    }

    /// Stops everything: agents and controllers first, then the apiserver,
    /// then etcd; SIGTERM to every process of a tier, then a grace period.
    pub(crate) fn shutdown(&mut self) {
        for tier in [Tier::Client, Tier::ApiServer, Tier::Etcd] {
            for p in self.procs.iter().filter(|p| p.tier == tier) {
                p.signal_term();
            }
            for p in self.procs.iter_mut().filter(|p| p.tier == tier) {
                p.reap(STOP_GRACE);
            }
        }
        self.procs.clear();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.procs.is_empty() {
            eprintln!("stopping {} processes", self.procs.len());
            self.shutdown();
        }
    }
}

/// Waits until every agent in `names` has an Agent object in phase Ready.
pub(crate) async fn wait_agents_ready(
    client: &Client,
    names: &[String],
    deadline: Duration,
) -> anyhow::Result<()> {
    let api: Api<AgentSpec> = Api::all(client.clone());
    let end = Instant::now() + deadline;
    loop {
        let list = api.list(&ListParams::default()).await;
        if let Ok(list) = list {
            let ready = names
                .iter()
                .filter(|n| {
                    list.items.iter().any(|a| {
                        a.name() == n.as_str()
                            && a.status.as_ref().map(|s| s.phase) == Some(AgentPhase::Ready)
                    })
                })
                .count();
            if ready == names.len() {
                return Ok(());
            }
        }
        if Instant::now() > end {
            bail!("agents {names:?} not Ready within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads a child's stdout lines on a thread; the thread drains to EOF.
fn line_reader(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    rx
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("no free loopback port")?
        .port())
}

fn etcd_healthy(client_url: &str) -> bool {
    http_get(client_url, "/health").contains("\"health\":\"true\"")
}

/// Whether the apiserver at `http_url` answers `/readyz` with 200.
pub(crate) fn apiserver_ready(http_url: &str) -> bool {
    http_get(http_url, "/readyz").starts_with("HTTP/1.1 200")
}

/// The raw response to `GET path` from `base_url` (empty on any failure).
fn http_get(base_url: &str, path: &str) -> String {
    let host = base_url.trim_start_matches("http://");
    let Ok(mut stream) = TcpStream::connect(host) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return String::new();
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// Resident memory of `pid` in MiB (VmRSS of /proc/PID/status).
pub(crate) fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))?;
    Ok(kib / 1024.0)
}

/// CPU time (user + system) of a process and of its reaped children.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct CpuTime {
    pub own: Duration,
    pub children: Duration,
}

impl CpuTime {
    pub(crate) fn saturating_sub(self, earlier: Self) -> Self {
        Self {
            own: self.own.saturating_sub(earlier.own),
            children: self.children.saturating_sub(earlier.children),
        }
    }
}

/// CPU time (user + system) `pid` has used so far.
pub(crate) fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    Ok(cpu_times(pid)?.own)
}

/// CPU time of `pid` and of the children it has waited for.
pub(crate) fn cpu_times(pid: u32) -> anyhow::Result<CpuTime> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // Fields after the command name (which may hold spaces) in parentheses:
    // state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("unexpected {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("unexpected {path}"))
    };
    let hz = clock_ticks() as f64;
    let secs = |t: u64| Duration::from_secs_f64(t as f64 / hz);
    // utime, stime, cutime, cstime are fields 14-17.
    Ok(CpuTime {
        own: secs(ticks(11)? + ticks(12)?),
        children: secs(ticks(13)? + ticks(14)?),
    })
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(read_clock_ticks)
}

fn read_clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}
