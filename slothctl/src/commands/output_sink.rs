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
            return (true, paint_lines(&chunk.data, RED).into());
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

/// `data` with every line's text between `colour` and a reset, the reset
/// before the newline: a chunk holds any number of lines, and each line
/// reads the same on its own (and nothing after it is painted if the
/// output stops mid-way).
fn paint_lines(data: &[u8], colour: &str) -> Vec<u8> {
    let mut painted = Vec::with_capacity(data.len() + 8 * (colour.len() + RESET.len()));
    for line in data.split_inclusive(|b| *b == b'\n') {
        let (text, newline) = match line.strip_suffix(b"\n") {
            Some(text) => (text, &b"\n"[..]),
            None => (line, &b""[..]),
        };
        if !text.is_empty() {
            painted.extend_from_slice(colour.as_bytes());
            painted.extend_from_slice(text);
            painted.extend_from_slice(RESET.as_bytes());
        }
        painted.extend_from_slice(newline);
    }
    painted
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
        assert_eq!(&*bytes, b"\x1b[31me\x1b[0m\n");
        assert_eq!(&*red.render(&chunk(LogStream::Stdout, "o\n")).1, b"o\n");
    }

    #[test]
    fn every_line_of_a_chunk_is_painted_on_its_own() {
        let red = Sink {
            split_streams: true,
            red_stderr: true,
        };
        let lines = chunk(LogStream::Stderr, "a\n\nb\npart");
        let (_, bytes) = red.render(&lines);
        assert_eq!(
            &*bytes,
            b"\x1b[31ma\x1b[0m\n\n\x1b[31mb\x1b[0m\n\x1b[31mpart\x1b[0m"
        );
    }
}
