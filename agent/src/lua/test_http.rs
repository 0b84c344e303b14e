//! A loopback HTTP/1.1 server for the tests of the modules that make
//! requests (`http`, `net`, `infra_test`): each connection is read on its
//! own thread and answered by the test's function.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};

/// One request the server read.
pub(super) struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lower case), if sent.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: the status (`"200 OK"`), header lines besides
/// content-length and connection, and the body.
pub(super) struct Reply {
    pub status: &'static str,
    pub headers: Vec<String>,
    pub body: String,
}

impl Reply {
    /// 200 with `body` and no further header.
    pub(super) fn ok(body: impl Into<String>) -> Self {
        Self {
            status: "200 OK",
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

/// Starts the server; `answer` gives each request's reply, or None to close
/// the connection without one. Its address.
pub(super) fn serve(
    answer: impl Fn(Request) -> Option<Reply> + Send + Sync + 'static,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let request = read_request(&mut reader);
                let Some(reply) = answer(request) else { return };
                let mut stream = stream;
                let mut head = format!("HTTP/1.1 {}\r\n", reply.status);
                for line in &reply.headers {
                    head.push_str(&format!("{line}\r\n"));
                }
                let _ = write!(
                    stream,
                    "{head}content-length: {}\r\nconnection: close\r\n\r\n{}",
                    reply.body.len(),
                    reply.body
                );
            });
        }
    });
    address
}

fn read_request(reader: &mut impl BufRead) -> Request {
    let mut first = String::new();
    reader.read_line(&mut first).expect("request line");
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().expect("length"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    let mut parts = first.split_whitespace();
    Request {
        method: parts.next().unwrap_or_default().to_string(),
        path: parts.next().unwrap_or_default().to_string(),
        headers,
        body,
    }
}
