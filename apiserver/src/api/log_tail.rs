//! The last lines of a stream of output chunks (`tailLines`, kubectl's
//! `logs --tail`), keeping no more than those lines in memory.

use std::collections::VecDeque;

/// Collects the last `limit` lines of the bytes pushed into it. A last
/// line without its newline counts as a line.
#[derive(Debug)]
pub(super) struct LastLines {
    limit: usize,
    /// Complete lines, each with its newline.
    lines: VecDeque<Vec<u8>>,
    partial: Vec<u8>,
}

impl LastLines {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            lines: VecDeque::new(),
            partial: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|b| *b == b'\n') {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&bytes[..=end]);
            bytes = &bytes[end + 1..];
            self.lines.push_back(line);
            if self.lines.len() > self.limit {
                self.lines.pop_front();
            }
        }
        self.partial.extend_from_slice(bytes);
    }

    /// The last `limit` lines, in order.
    pub(super) fn into_bytes(mut self) -> Vec<u8> {
        if !self.partial.is_empty() {
            self.lines.push_back(std::mem::take(&mut self.partial));
        }
        let skip = self.lines.len().saturating_sub(self.limit);
        self.lines.into_iter().skip(skip).flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(limit: usize, chunks: &[&str]) -> String {
        let mut last = LastLines::new(limit);
        for chunk in chunks {
            last.push(chunk.as_bytes());
        }
        String::from_utf8(last.into_bytes()).expect("utf-8")
    }

    #[test]
    fn keeps_the_last_lines_across_chunk_boundaries() {
        assert_eq!(tail(2, &["a\nb", "\nc\n", "d\n"]), "c\nd\n");
        assert_eq!(tail(2, &["a\nb\nunfinished"]), "b\nunfinished");
        assert_eq!(tail(5, &["a\n", "b\n"]), "a\nb\n");
        assert_eq!(tail(0, &["a\nb\n"]), "");
        assert_eq!(tail(3, &[]), "");
    }
}
