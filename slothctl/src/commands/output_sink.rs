//! Where the output of a followed TaskRun goes: the payload's stdout to
//! slothctl's stdout and, when the streams are kept apart (`run`, `agent
//! run`), its stderr to slothctl's stderr, painted red on a terminal by
//! `agent run`. Output an agent cannot attribute (an older agent, `logs`)
//! goes to stdout.

use std::io::Write;

use sloth_sdk::client::{LogChunk, LogStream};

/// Red, and back to normal (SGR codes).
pub(crate) const RED: &str = "\x1b[31m";
pub(crate) const RESET: &str = "\x1b[0m";

/// How chunks are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sink {
    /// Ask the agent for the streams apart and print stderr on stderr.
    pub split_streams: bool,
    /// Paint stderr red.
    pub red_stderr: bool,
}

impl Sink {
    /// The bytes to write for `chunk`, and whether they go to stderr.
    pub(crate) fn render<'a>(&self, chunk: &'a LogChunk) -> (bool, std::borrow::Cow<'a, [u8]>) {
        let to_stderr = self.split_streams && chunk.stream == LogStream::Stderr;
        if to_stderr && self.red_stderr && !chunk.data.is_empty() {
            let mut painted = Vec::with_capacity(chunk.data.len() + RED.len() + RESET.len());
            painted.extend_from_slice(RED.as_bytes());
            painted.extend_from_slice(&chunk.data);
            painted.extend_from_slice(RESET.as_bytes());
            return (true, painted.into());
        }
        (to_stderr, chunk.data.as_slice().into())
    }

    /// Prints `chunk` where it belongs.
    pub(crate) fn emit(&self, chunk: &LogChunk) -> std::io::Result<()> {
        match self.render(chunk) {
            (true, bytes) => {
                let mut err = std::io::stderr().lock();
                err.write_all(&bytes)?;
                err.flush()
            }
            (false, bytes) => crate::printer::emit_bytes(&bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(stream: LogStream, data: &str) -> LogChunk {
        LogChunk {
            data: data.as_bytes().to_vec(),
            stream,
            next_offset: None,
        }
    }

    #[test]
    fn stderr_goes_to_stderr_and_red_only_when_asked() {
        let combined = Sink::default();
        let stderr = chunk(LogStream::Stderr, "e\n");
        let (err, bytes) = combined.render(&stderr);
        assert!(!err, "not split: everything on stdout");
        assert_eq!(&*bytes, b"e\n");
        let split = Sink {
            split_streams: true,
            red_stderr: false,
        };
        assert!(split.render(&chunk(LogStream::Stderr, "e\n")).0);
        assert!(!split.render(&chunk(LogStream::Stdout, "o\n")).0);
        assert!(!split.render(&chunk(LogStream::Combined, "c\n")).0);
        let red = Sink {
            split_streams: true,
            red_stderr: true,
        };
        let (err, bytes) = red.render(&stderr);
        assert!(err);
        assert_eq!(&*bytes, b"\x1b[31me\n\x1b[0m");
        assert_eq!(&*red.render(&chunk(LogStream::Stdout, "o\n")).1, b"o\n");
    }
}
