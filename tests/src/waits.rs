//! Waiting with deadlines, and plain HTTP requests on loopback.

use std::io::Read;
use std::time::{Duration, Instant};

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
