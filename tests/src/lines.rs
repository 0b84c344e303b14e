//! Reading a child's output line by line with deadlines.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
