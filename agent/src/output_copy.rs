//! A shell run's stdout and stderr: one pipe each, copied by a task of the
//! agent into the output log through a [`LogWriter`], which records which
//! stream wrote what and when (so `slothctl agent run` can keep the two
//! apart and `logs --timestamps` dates lines by their write). When the run
//! was given Secrets, each stream goes through its own [`StreamMasker`], so
//! the log never holds a delivered value.
//!
//! Order: within a stream it is exact. Between the two streams it is the
//! order in which the agent read them, which is the order of the writes
//! unless both pipes filled up before the agent looked (a few microseconds
//! apart); then stdout is taken first.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::fcntl::OFlag;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use crate::masking::{Masks, StreamMasker};
use crate::output_index::{LogWriter, Stream};

/// Bytes read from a pipe at a time.
const CHUNK: usize = 64 * 1024;

/// The write ends for the payload, one per stream.
#[derive(Debug)]
pub(crate) struct Sinks {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// The copying task's end.
#[derive(Debug)]
pub(crate) struct Copying {
    /// Asks the task to copy what is in the pipes now and answer.
    drain: oneshot::Sender<oneshot::Sender<()>>,
}

impl Copying {
    /// Once the payload's process group has ended: waits until what it
    /// wrote is in the log (at most `limit`). A process that escaped the
    /// group may keep a pipe open; what it writes later is still copied.
    pub(crate) async fn drain(self, limit: Duration) -> bool {
        let (ack, done) = oneshot::channel();
        // A task that already ended (both pipes closed) drops the request,
        // and with it `ack`: `done` then resolves at once.
        let _ = self.drain.send(ack);
        tokio::time::timeout(limit, done).await.is_ok()
    }
}

/// Starts copying into the log at `output` (appended); returns the pipes'
/// write ends for the payload.
pub(crate) fn start(output: &Path, masks: Masks) -> std::io::Result<(Sinks, Copying)> {
    let writer = LogWriter::open(output)?;
    let (stdout_read, stdout) = cloexec_pipe()?;
    let (stderr_read, stderr) = cloexec_pipe()?;
    let sources = [
        Source::new(Stream::Stdout, stdout_read, &masks)?,
        Source::new(Stream::Stderr, stderr_read, &masks)?,
    ];
    let (drain, requests) = oneshot::channel();
    tokio::spawn(copy(sources, writer, requests));
    Ok((Sinks { stdout, stderr }, Copying { drain }))
}

/// A pipe that no other child of the agent inherits (it would hold the
/// pipe open past the payload's end).
fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

/// One stream being copied.
struct Source {
    stream: Stream,
    pipe: pipe::Receiver,
    masker: Option<StreamMasker>,
    open: bool,
    buf: Vec<u8>,
}

impl Source {
    fn new(stream: Stream, read: OwnedFd, masks: &Masks) -> std::io::Result<Self> {
        Ok(Self {
            stream,
            pipe: pipe::Receiver::from_owned_fd(read)?,
            masker: (!masks.is_empty()).then(|| StreamMasker::new(masks.clone())),
            open: true,
            buf: vec![0; CHUNK],
        })
    }

    /// Handles the result of reading `n` bytes into `buf` (0: the end).
    fn take(&mut self, read: std::io::Result<usize>, writer: &mut LogWriter) {
        let out = match read {
            Ok(0) => {
                self.open = false;
                match self.masker.as_mut() {
                    Some(masker) => masker.finish(),
                    None => return,
                }
            }
            Ok(n) => match self.masker.as_mut() {
                Some(masker) => masker.push(&self.buf[..n]),
                None => self.buf[..n].to_vec(),
            },
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return,
            Err(e) => {
                tracing::warn!("cannot read the TaskRun's {:?}: {e}", self.stream);
                self.open = false;
                return;
            }
        };
        if let Err(e) = writer.write(self.stream, &out) {
            tracing::warn!("cannot write the TaskRun output: {e}");
        }
    }

    /// Copies what the pipe holds now, without waiting: a read straight
    /// from the pipe, past the runtime's record of its readiness (which may
    /// not have caught up with the last writes yet).
    fn drain_now(&mut self, writer: &mut LogWriter) {
        while self.open {
            let read = nix::unistd::read(self.pipe.as_fd(), &mut self.buf);
            let read = read.map_err(std::io::Error::from);
            let pending = matches!(&read, Ok(n) if *n > 0);
            self.take(read, writer);
            if !pending {
                break;
            }
        }
    }
}

/// Copies both pipes until both are closed. File writes are plain blocking
/// appends: they land in the page cache (no fsync), cheaper than a thread
/// per run.
async fn copy(
    mut sources: [Source; 2],
    mut writer: LogWriter,
    mut drain: oneshot::Receiver<oneshot::Sender<()>>,
) {
    let mut drained = false;
    loop {
        let [out, err] = &mut sources;
        if !out.open && !err.open {
            break;
        }
        tokio::select! {
            biased;
            read = out.pipe.read(&mut out.buf), if out.open => out.take(read, &mut writer),
            read = err.pipe.read(&mut err.buf), if err.open => err.take(read, &mut writer),
            ack = &mut drain, if !drained => {
                drained = true;
                for source in sources.iter_mut() {
                    source.drain_now(&mut writer);
                }
                if let Ok(ack) = ack {
                    let _ = ack.send(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output_index::{Index, split_by_stream};
    use std::io::Write as _;

    #[tokio::test]
    async fn streams_are_kept_apart_and_values_masked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("output.log");
        let (sinks, copying) = start(&log, Masks::new([&b"hunter2"[..]])).expect("start");
        let mut out = std::fs::File::from(sinks.stdout);
        let mut err = std::fs::File::from(sinks.stderr);
        out.write_all(b"pw=hun").expect("write");
        out.flush().expect("flush");
        out.write_all(b"ter2\n").expect("write");
        err.write_all(b"oops\n").expect("write");
        // Still open (as held by an escaped process): drained all the same.
        assert!(copying.drain(Duration::from_secs(30)).await);
        let text = std::fs::read_to_string(&log).expect("read");
        assert_eq!(text.len(), "pw=***\noops\n".len(), "{text:?}");
        let (stdout, stderr) = split_by_stream(text.as_bytes(), &Index::load(&log).await);
        assert_eq!((stdout.as_str(), stderr.as_str()), ("pw=***\n", "oops\n"));
    }
}
