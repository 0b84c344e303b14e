//! Real etcd members (Debian's `etcd-server`) on loopback ports the OS
//! picks, each with a temporary data directory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long members may take to elect a leader and answer.
const READY_DEADLINE: Duration = Duration::from_secs(30);

struct Member {
    name: String,
    client_url: String,
    peer_url: String,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// An etcd cluster of one or more members; killed when dropped.
pub struct Etcd {
    members: Vec<Member>,
    _temp: tempfile::TempDir,
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether etcd at `client_url` says it is healthy.
fn healthy(client_url: &str) -> bool {
    let host = client_url.trim_start_matches("http://");
    let Ok(mut stream) = TcpStream::connect(host) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.contains("\"health\":\"true\"")
}

impl Etcd {
    /// One member.
    pub fn start() -> Self {
        Self::start_cluster(1)
    }

    /// `size` members forming one cluster; returns once every member is
    /// healthy (a leader is elected). A port picked as free can be taken by
    /// someone else before etcd binds it: then the cluster starts over on
    /// new ports (a few times at most).
    pub fn start_cluster(size: usize) -> Self {
        const ATTEMPTS: usize = 5;
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let mut etcd = Self::prepare(size);
            for i in 0..size {
                etcd.spawn(i);
            }
            match etcd.wait_healthy() {
                Ok(()) => return etcd,
                Err(e) if e.contains("address already in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("etcd could not get free ports in {ATTEMPTS} attempts:\n{last}")
    }

    fn prepare(size: usize) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client_url: format!("http://127.0.0.1:{}", free_port()),
                peer_url: format!("http://127.0.0.1:{}", free_port()),
                data_dir: temp.path().join(format!("m{i}")),
                log: temp.path().join(format!("m{i}.log")),
                child: None,
            })
            .collect();
        Self {
            members,
            _temp: temp,
        }
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize) {
        let initial_cluster = self.initial_cluster();
        let member = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .expect("etcd log");
        let child = Command::new("etcd")
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&member.data_dir)
            .args(["--listen-client-urls", &member.client_url])
            .args(["--advertise-client-urls", &member.client_url])
            .args(["--listen-peer-urls", &member.peer_url])
            .args(["--initial-advertise-peer-urls", &member.peer_url])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "sloth-test"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            // Progress for idle watches: etcd before 3.4.31/3.5.13 is not
            // asked for it (apiserver/src/store/etcd/progress.rs).
            .args(["--experimental-watch-progress-notify-interval", "100ms"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start etcd ({e}); scripts/test.sh installs Debian's etcd-server")
            });
        member.child = Some(child);
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_DEADLINE;
        for i in 0..self.members.len() {
            while !healthy(&self.members[i].client_url) {
                // Any member that exits (e.g. its port was taken) keeps the
                // cluster from becoming healthy: say so at once.
                let exited = self.members.iter_mut().enumerate().find_map(|(j, m)| {
                    let status = m.child.as_mut()?.try_wait().ok()??;
                    Some((j, status))
                });
                if let Some((j, status)) = exited {
                    return Err(format!(
                        "etcd member {j} exited ({status}):\n{}",
                        self.logs()
                    ));
                }
                if Instant::now() >= deadline {
                    return Err(format!("etcd did not become healthy:\n{}", self.logs()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// The client URLs, comma-separated, for `--etcd-endpoints`.
    pub fn endpoints(&self) -> String {
        self.client_urls().join(",")
    }

    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again after `kill9`, on its old data dir and ports.
    pub fn start_again(&mut self, i: usize) {
        assert!(
            self.members[i].child.is_none(),
            "etcd member {i} still running"
        );
        self.spawn(i);
    }

    /// The process id of member `i`, while running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// Every member's data directory (tests read the raw bytes).
    pub fn data_dirs(&self) -> Vec<PathBuf> {
        self.members.iter().map(|m| m.data_dir.clone()).collect()
    }

    /// Every member's log.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                format!(
                    "--- etcd {}\n{}",
                    m.name,
                    std::fs::read_to_string(&m.log).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill9(i);
        }
    }
}
