//! Processes: running a command to its end, signals, exits.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a process may take to start listening.
pub(crate) const START_DEADLINE: Duration = Duration::from_secs(30);

/// A log file opened for appending (every run of a restarted process
/// writes to the same one).
pub(crate) fn append_log(path: &Path) -> File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open log {}: {e}", path.display()))
}

/// Starts `cmd` (logging at info to `log`) with its stdout piped: the
/// servers print one line on stdout once they are up, read from the
/// returned reader.
pub fn spawn_announcing(cmd: &mut Command, log: File) -> (Child, crate::LineReader) {
    let mut child = cmd
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {:?}: {e}", cmd.get_program()));
    let reader = crate::LineReader::new(child.stdout.take().expect("stdout"));
    (child, reader)
}

/// Sends `signal` (a `kill` name such as `STOP` or `CONT`) to process `pid`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// SIGKILL, and reaps the process.
pub(crate) fn kill9(child: Option<Child>) {
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// SIGTERM, then waits up to `grace` for the exit; true if it exited 0.
/// A process still there after `grace` is killed and counts as a failure.
pub(crate) fn terminate(child: Option<Child>, grace: Duration) -> bool {
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

    /// The column names of a table's first line: columns are separated by
    /// at least two spaces (a name may hold one).
    pub fn header(&self) -> Vec<&str> {
        let line = self.stdout.lines().next().unwrap_or_default();
        line.split("  ")
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect()
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

/// True once process `pid` has ended (a zombie nobody reaped yet counts as
/// ended).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

#[cfg(test)]
mod tests {
    use super::Run;

    #[test]
    fn header_splits_on_two_spaces_and_keeps_names_with_one() {
        let run = Run {
            code: 0,
            stdout: "NAME   LAST HEARTBEAT  AGE\na1     now             1s\n".into(),
            stderr: String::new(),
        };
        assert_eq!(run.header(), ["NAME", "LAST HEARTBEAT", "AGE"]);
        let empty = Run {
            code: 0,
            stdout: String::new(),
            stderr: String::new(),
        };
        assert!(empty.header().is_empty());
    }
}
