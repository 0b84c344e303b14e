//! The output as lines dated from its times index (`logs --timestamps`,
//! `--since`): each complete line is kept or dropped by its time and, when
//! asked, prefixed with it. A line not complete yet waits for its newline
//! (or for the end of the output).

use chrono::{DateTime, SecondsFormat};

use crate::output_index::Index;

/// What to do with each line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LineFilter {
    /// Prefix each line with its RFC 3339 time and a space.
    pub timestamps: bool,
    /// Drop lines dated before this (unix millis).
    pub not_before: Option<i64>,
}

/// Turns chunks of the plain output into dated lines.
#[derive(Debug)]
pub(crate) struct LineStamper {
    filter: LineFilter,
    /// The offset in the log of `pending`'s first byte.
    offset: u64,
    pending: Vec<u8>,
}

impl LineStamper {
    pub(crate) fn new(filter: LineFilter, offset: u64) -> Self {
        Self {
            filter,
            offset,
            pending: Vec::new(),
        }
    }

    /// The complete lines of `chunk` (with what came before it), dated by
    /// `times`; a line no index line covers yet is dated `now`.
    pub(crate) fn push(&mut self, chunk: &[u8], times: &Index, now: i64) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        let complete = match self.pending.iter().rposition(|b| *b == b'\n') {
            Some(last) => last + 1,
            None => return Vec::new(),
        };
        let rest = self.pending.split_off(complete);
        let lines = std::mem::replace(&mut self.pending, rest);
        self.emit(&lines, times, now)
    }

    /// The last line, when the output does not end with a newline.
    pub(crate) fn finish(&mut self, times: &Index, now: i64) -> Vec<u8> {
        let lines = std::mem::take(&mut self.pending);
        self.emit(&lines, times, now)
    }

    /// The offset in the log just after the lines emitted so far: where a
    /// resumed read goes on.
    pub(crate) fn next_offset(&self) -> u64 {
        self.offset
    }

    /// True when the next push may need an index line written after
    /// `times` was loaded.
    pub(crate) fn needs_reload(&self, times: &Index, chunk_len: usize) -> bool {
        let end = self.offset + (self.pending.len() + chunk_len) as u64;
        end > 0 && times.time_of(end - 1).is_none()
    }

    fn emit(&mut self, lines: &[u8], times: &Index, now: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(lines.len());
        for line in lines.split_inclusive(|b| *b == b'\n') {
            let at = times.time_of(self.offset).unwrap_or(now);
            self.offset += line.len() as u64;
            if self.filter.not_before.is_some_and(|cutoff| at < cutoff) {
                continue;
            }
            if self.filter.timestamps {
                out.extend_from_slice(rfc3339(at).as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(line);
        }
        out
    }
}

/// Unix millis as RFC 3339 in UTC with milliseconds.
pub(crate) fn rfc3339(millis: i64) -> String {
    DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMES: &str = "4 1000\n7 2000\n";

    #[test]
    fn lines_get_the_time_of_their_first_byte() {
        let times = Index::parse(TIMES);
        let filter = LineFilter {
            timestamps: true,
            not_before: None,
        };
        let mut lines = LineStamper::new(filter, 0);
        assert_eq!(lines.push(b"ab", &times, 9000), b"");
        let out = lines.push(b"c\nde\n", &times, 9000);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "1970-01-01T00:00:01.000Z abc\n1970-01-01T00:00:02.000Z de\n"
        );
        // No sample covers offset 7 yet: dated now.
        assert_eq!(lines.push(b"f", &times, 9000), b"");
        assert_eq!(
            String::from_utf8_lossy(&lines.finish(&times, 9000)),
            "1970-01-01T00:00:09.000Z f"
        );
    }

    #[test]
    fn since_drops_older_lines_and_keeps_them_plain() {
        let times = Index::parse(TIMES);
        let filter = LineFilter {
            timestamps: false,
            not_before: Some(2000),
        };
        let mut lines = LineStamper::new(filter, 0);
        assert_eq!(lines.push(b"abc\nde\nfg\n", &times, 9000), b"de\nfg\n");
        // Starting mid-log (an offset) dates from there.
        let mut later = LineStamper::new(filter, 4);
        assert_eq!(later.push(b"de\n", &times, 9000), b"de\n");
    }
}
