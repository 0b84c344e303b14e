//! A real HAProxy (Debian's `haproxy`) balancing gRPC (TCP) across
//! apiservers, with health checks on each apiserver's `/readyz`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One backend: the gRPC address and the HTTP address its health check uses.
pub struct Backend {
    pub grpc: String,
    pub http: String,
}

/// A running HAProxy; killed when dropped.
pub struct HaProxy {
    child: Option<Child>,
    url: String,
    log: std::path::PathBuf,
    _temp: tempfile::TempDir,
}

fn host_port(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// The HAProxy configuration for `backends` behind `listen`.
pub(crate) fn config(listen: &str, backends: &[Backend]) -> String {
    let mut cfg = format!(
        "global\n  maxconn 4096\n\
         defaults\n  mode tcp\n  retries 3\n  option redispatch\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n  \
         timeout check 1s\n\
         frontend grpc\n  bind {listen}\n  default_backend apiservers\n\
         backend apiservers\n  balance roundrobin\n  option httpchk GET /readyz\n  \
         default-server inter 300ms fall 2 rise 1\n"
    );
    for (i, b) in backends.iter().enumerate() {
        let (host, port) = host_port(&b.http).rsplit_once(':').expect("host:port");
        cfg.push_str(&format!(
            "  server s{i} {} check addr {host} port {port}\n",
            host_port(&b.grpc)
        ));
    }
    cfg
}

impl HaProxy {
    /// Starts HAProxy in front of `backends`; returns once it listens. A
    /// port picked as free may be taken before HAProxy binds it: then it
    /// starts again on another (a few times at most).
    pub fn start(backends: &[Backend]) -> Self {
        const ATTEMPTS: usize = 5;
        let temp = tempfile::tempdir().expect("temp dir");
        let log = temp.path().join("haproxy.log");
        for _ in 0..ATTEMPTS {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let listen = format!("127.0.0.1:{port}");
            let cfg_path = temp.path().join("haproxy.cfg");
            std::fs::write(&cfg_path, config(&listen, backends)).expect("write haproxy.cfg");
            let mut child = Command::new("haproxy")
                .arg("-f")
                .arg(&cfg_path)
                .arg("-db")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("haproxy log"))
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start haproxy ({e}); scripts/test.sh installs Debian's haproxy")
                });
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // most likely the port was taken: try another
                }
                if std::net::TcpStream::connect(&listen).is_ok() {
                    return Self {
                        child: Some(child),
                        url: format!("http://{listen}"),
                        log,
                        _temp: temp,
                    };
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "haproxy did not listen on {listen}: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!(
            "haproxy could not get a free port in {ATTEMPTS} attempts: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    }

    /// The balancer's address, as clients dial it.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
