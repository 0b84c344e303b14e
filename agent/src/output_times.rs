//! When each part of a TaskRun's output was written, kept beside the plain
//! log (`output.times`) so `slothctl logs --timestamps` and `--since` can
//! date lines while the log itself stays byte for byte what the payload
//! wrote (the payload writes it directly; the agent never sees the bytes).
//!
//! A sampler looks at the log's length every [`SAMPLE`] while the run
//! lasts and appends `LENGTH UNIX_MILLIS` whenever it grew: every byte
//! below LENGTH existed at that time. A line is dated by the first sample
//! that covers its first byte, so a time is at most one sample late, and
//! the cost is one `stat` per sample per run, nothing per line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

/// The index file, next to the output log.
pub const TIMES_FILE: &str = "output.times";

/// How often the log's length is sampled.
const SAMPLE: Duration = Duration::from_millis(100);

/// The index of the log at `output`.
pub fn times_path(output: &Path) -> PathBuf {
    output.with_file_name(TIMES_FILE)
}

/// The running sampler of one run's output.
#[derive(Debug)]
pub struct Recorder {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Starts sampling `output` (which may not exist yet).
    pub fn start(output: PathBuf) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let done = tokio::spawn(async move {
            let mut sampler = Sampler::new(output);
            loop {
                sampler.sample().await;
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(SAMPLE) => {}
                }
            }
            // What the run wrote last is dated too.
            sampler.sample().await;
        });
        Self { stop, done }
    }

    /// Takes a last sample (after the output was drained) and stops.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.done.await;
    }
}

struct Sampler {
    output: PathBuf,
    index: PathBuf,
    file: Option<tokio::fs::File>,
    recorded: u64,
}

impl Sampler {
    fn new(output: PathBuf) -> Self {
        Self {
            index: times_path(&output),
            output,
            file: None,
            recorded: 0,
        }
    }

    async fn sample(&mut self) {
        let Ok(meta) = tokio::fs::metadata(&self.output).await else {
            return;
        };
        let len = meta.len();
        if len <= self.recorded {
            return;
        }
        let now = chrono::Utc::now().timestamp_millis();
        if self.file.is_none() {
            match tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.index)
                .await
            {
                Ok(file) => self.file = Some(file),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot open the output times index");
                    return;
                }
            }
        }
        if let Some(file) = self.file.as_mut() {
            let line = format!("{len} {now}\n");
            match file.write_all(line.as_bytes()).await {
                Ok(()) => self.recorded = len,
                Err(e) => tracing::debug!(error = %e, "cannot write the output times index"),
            }
        }
    }
}

/// A loaded index: `(length, unix millis)` in the order written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Times {
    samples: Vec<(u64, i64)>,
}

impl Times {
    /// Parses an index; malformed lines (a sample cut by a crash) are
    /// skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter_map(|line| {
                let (len, millis) = line.split_once(' ')?;
                Some((len.parse().ok()?, millis.parse().ok()?))
            })
            .collect();
        Self { samples }
    }

    /// The index of the log at `output`; empty when there is none.
    pub async fn load(output: &Path) -> Self {
        match tokio::fs::read_to_string(times_path(output)).await {
            Ok(text) => Self::parse(&text),
            Err(_) => Self::default(),
        }
    }

    /// When the byte at `offset` was first seen; None when no sample
    /// covers it yet.
    pub fn time_of(&self, offset: u64) -> Option<i64> {
        let at = self.samples.partition_point(|(len, _)| *len <= offset);
        self.samples.get(at).map(|(_, millis)| *millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_is_dated_by_the_first_sample_covering_it() {
        let times = Times::parse("6 1000\n12 2000\nbroken\n20 3000\n");
        assert_eq!(times.time_of(0), Some(1000));
        assert_eq!(times.time_of(5), Some(1000));
        assert_eq!(times.time_of(6), Some(2000));
        assert_eq!(times.time_of(19), Some(3000));
        assert_eq!(times.time_of(20), None);
    }

    #[tokio::test]
    async fn the_recorder_dates_what_was_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = dir.path().join("output.log");
        let recorder = Recorder::start(output.clone());
        std::fs::write(&output, "one\ntwo\n").expect("write");
        recorder.finish().await;
        let times = Times::load(&output).await;
        let now = chrono::Utc::now().timestamp_millis();
        let first = times.time_of(0).expect("dated");
        assert!(first <= now && now - first < 60_000, "{first} vs {now}");
        assert_eq!(times.time_of(7), Some(first));
        assert_eq!(times.time_of(8), None);
    }
}
