//! Which stream wrote each part of a TaskRun's output, and when. The log
//! (`output.log`) stays the combined bytes, in the order the agent received
//! them, so `slothctl logs` and resuming by byte offset are unchanged; the
//! index beside it (`.sloth-output.index`, hidden from the payload's `ls`)
//! gets one line per write: `END STREAM UNIX_MILLIS`, where the write
//! covers the log's bytes from the previous END up to END and STREAM is `o`
//! (stdout) or `e` (stderr).
//!
//! [`LogWriter`] is the one writer of both (the shell output copy and Lua's
//! `print`): the bytes first, then their index line, each one append and
//! never an fsync. A reader that sees bytes no line covers yet reloads the
//! index; bytes never indexed (a crash between the two appends) read as the
//! combined stream, undated.

use std::io::{SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// The index file, next to the output log.
pub(crate) const INDEX_FILE: &str = ".sloth-output.index";

/// The sampled times index of agents before the stream index
/// (`LENGTH UNIX_MILLIS` lines), still read for their runs.
const OLD_TIMES_FILE: &str = "output.times";

/// One of a payload's output streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn letter(self) -> char {
        match self {
            Self::Stdout => 'o',
            Self::Stderr => 'e',
        }
    }

    fn from_letter(text: &str) -> Option<Self> {
        match text {
            "o" => Some(Self::Stdout),
            "e" => Some(Self::Stderr),
            _ => None,
        }
    }
}

/// The index of the log at `output`.
pub(crate) fn index_path(output: &Path) -> PathBuf {
    output.with_file_name(INDEX_FILE)
}

/// Appends a run's output and indexes each write.
#[derive(Debug)]
pub(crate) struct LogWriter {
    log: std::fs::File,
    index_path: PathBuf,
    /// Opened at the first write, so a run that writes nothing leaves no
    /// index behind.
    index: Option<std::fs::File>,
    /// The log's length: the END of the next index line starts here.
    end: u64,
}

impl LogWriter {
    /// Opens (creating, appending to) the log at `output`.
    pub(crate) fn open(output: &Path) -> std::io::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(output)?;
        let end = log.metadata()?.len();
        Ok(Self {
            log,
            index_path: index_path(output),
            index: None,
            end,
        })
    }

    /// Appends `bytes` written by `stream`, then its index line.
    pub(crate) fn write(&mut self, stream: Stream, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.log.write_all(bytes)?;
        self.end += bytes.len() as u64;
        let now = chrono::Utc::now().timestamp_millis();
        let line = format!("{} {} {now}\n", self.end, stream.letter());
        let index = match self.index.as_mut() {
            Some(index) => index,
            None => self.index.insert(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.index_path)?,
            ),
        };
        index.write_all(line.as_bytes())
    }
}

/// One index line: the write that ended at `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    end: u64,
    /// None in an old times index (no streams recorded).
    stream: Option<Stream>,
    millis: i64,
}

/// A loaded index, in the order written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Index {
    entries: Vec<Entry>,
    /// How much of the index file was parsed: [`Index::refresh`] reads on
    /// from there, so following a long run does not reread it all.
    parsed: u64,
}

impl Index {
    /// Parses an index (or an old times index); malformed lines (one cut
    /// by a crash) are skipped.
    pub(crate) fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let (end, stream, millis) = match fields[..] {
                    [end, stream, millis] => (end, Some(Stream::from_letter(stream)?), millis),
                    [end, millis] => (end, None, millis),
                    _ => return None,
                };
                Some(Entry {
                    end: end.parse().ok()?,
                    stream,
                    millis: millis.parse().ok()?,
                })
            })
            .collect();
        Self { entries, parsed: 0 }
    }

    /// The index of the log at `output`; empty when there is none.
    #[cfg(test)]
    pub(crate) async fn load(output: &Path) -> Self {
        let mut index = Self::default();
        index.refresh(output).await;
        index
    }

    /// Adds the lines appended to the index of `output` since the last
    /// refresh (a line not complete yet waits for the next one).
    pub(crate) async fn refresh(&mut self, output: &Path) {
        let mut file = match tokio::fs::File::open(index_path(output)).await {
            Ok(file) => file,
            Err(_) if self.parsed == 0 && self.entries.is_empty() => {
                if let Ok(text) =
                    tokio::fs::read_to_string(output.with_file_name(OLD_TIMES_FILE)).await
                {
                    *self = Self::parse(&text);
                }
                return;
            }
            Err(_) => return,
        };
        if file.seek(SeekFrom::Start(self.parsed)).await.is_err() {
            return;
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).await.is_err() {
            return;
        }
        let Some(last) = bytes.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let complete = &bytes[..=last];
        self.entries
            .extend(Self::parse(&String::from_utf8_lossy(complete)).entries);
        self.parsed += complete.len() as u64;
    }

    fn entry_at(&self, offset: u64) -> Option<&Entry> {
        let at = self.entries.partition_point(|e| e.end <= offset);
        self.entries.get(at)
    }

    /// When the byte at `offset` was written; None when no line covers it
    /// yet.
    pub(crate) fn time_of(&self, offset: u64) -> Option<i64> {
        self.entry_at(offset).map(|e| e.millis)
    }

    /// The stream that wrote the byte at `offset` and where its write ends;
    /// None when no line covers it yet.
    pub(crate) fn span_at(&self, offset: u64) -> Option<(Option<Stream>, u64)> {
        self.entry_at(offset).map(|e| (e.stream, e.end))
    }
}

/// `log` split into what stdout and stderr wrote, by `index`; panics on a
/// byte the index does not cover.
#[cfg(test)]
pub(crate) fn split_by_stream(log: &[u8], index: &Index) -> (String, String) {
    let (mut stdout, mut stderr, mut at) = (Vec::new(), Vec::new(), 0);
    while let Some((stream, end)) = index.span_at(at) {
        let part = &log[at as usize..end as usize];
        match stream {
            Some(Stream::Stdout) => stdout.extend_from_slice(part),
            Some(Stream::Stderr) => stderr.extend_from_slice(part),
            None => panic!("no stream recorded at {at}"),
        }
        at = end;
    }
    assert_eq!(at as usize, log.len(), "every byte is indexed");
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (text(stdout), text(stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_byte_has_the_stream_and_time_of_its_write() {
        let index = Index::parse("6 o 1000\n12 e 2000\nbroken\n15 x 9\n20 o 3000\n");
        assert_eq!(index.time_of(0), Some(1000));
        assert_eq!(index.span_at(5), Some((Some(Stream::Stdout), 6)));
        assert_eq!(index.span_at(6), Some((Some(Stream::Stderr), 12)));
        assert_eq!(index.time_of(19), Some(3000));
        assert_eq!(index.span_at(20), None);
        // An old sampled times index: times, no streams.
        let old = Index::parse("6 1000\n12 2000\n");
        assert_eq!(old.span_at(7), Some((None, 12)));
        assert_eq!(old.time_of(7), Some(2000));
    }

    #[tokio::test]
    async fn the_writer_indexes_every_write_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = dir.path().join("output.log");
        let mut writer = LogWriter::open(&output).expect("open");
        writer.write(Stream::Stdout, b"").expect("nothing");
        assert!(!index_path(&output).exists(), "no index before output");
        writer.write(Stream::Stdout, b"out\n").expect("write");
        writer.write(Stream::Stderr, b"err\n").expect("write");
        writer.write(Stream::Stdout, b"more\n").expect("write");
        drop(writer);
        assert_eq!(
            std::fs::read_to_string(&output).expect("log"),
            "out\nerr\nmore\n"
        );
        let index = Index::load(&output).await;
        assert_eq!(index.span_at(0), Some((Some(Stream::Stdout), 4)));
        assert_eq!(index.span_at(4), Some((Some(Stream::Stderr), 8)));
        assert_eq!(index.span_at(12), Some((Some(Stream::Stdout), 13)));
        let now = chrono::Utc::now().timestamp_millis();
        let first = index.time_of(0).expect("dated");
        assert!(first <= now && now - first < 60_000, "{first} vs {now}");
        // A writer reopened on the log goes on from its end.
        let mut again = LogWriter::open(&output).expect("reopen");
        again.write(Stream::Stderr, b"x").expect("write");
        assert_eq!(
            Index::load(&output).await.span_at(13),
            Some((Some(Stream::Stderr), 14))
        );
    }

    #[tokio::test]
    async fn a_refresh_reads_complete_lines_appended_since() {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = dir.path().join("output.log");
        let mut index = Index::load(&output).await;
        assert_eq!(index.span_at(0), None, "no index yet");
        std::fs::write(index_path(&output), "4 o 1\n9 e").expect("write");
        index.refresh(&output).await;
        assert_eq!(index.span_at(3), Some((Some(Stream::Stdout), 4)));
        assert_eq!(index.span_at(4), None, "an incomplete line waits");
        std::fs::OpenOptions::new()
            .append(true)
            .open(index_path(&output))
            .and_then(|mut f| f.write_all(b" 2\n12 o 3\n"))
            .expect("append");
        index.refresh(&output).await;
        assert_eq!(index.span_at(4), Some((Some(Stream::Stderr), 9)));
        assert_eq!(index.span_at(11), Some((Some(Stream::Stdout), 12)));
        assert_eq!(index.entries.len(), 3);
    }
}
