//! The output of a shell run that was given Secrets: stdout and stderr go
//! into one pipe (interleaved exactly as they would be in the file), and a
//! thread copies it into the output log through a [`StreamMasker`], so the
//! log, `slothctl logs` and `status.logTail` never hold a delivered value.
//! Runs without Secrets write their log directly, at no cost.

use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::masking::{Masks, StreamMasker};

/// Bytes read from the pipe at a time.
const CHUNK: usize = 8192;

/// The copying thread's end.
#[derive(Debug)]
pub struct Copying {
    done: oneshot::Receiver<()>,
}

impl Copying {
    /// Waits (at most `limit`: a background process may keep the pipe
    /// open) until everything written so far is in the log.
    pub async fn wait(self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.done).await.is_ok()
    }
}

/// Starts the copy into `output` (appended); returns the pipe's write end
/// for the payload's stdout and stderr.
pub fn start(output: &Path, masks: Masks) -> std::io::Result<(OwnedFd, Copying)> {
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(output)?;
    let (read, write) = nix::unistd::pipe().map_err(std::io::Error::from)?;
    let (tx, done) = oneshot::channel();
    std::thread::Builder::new()
        .name("sloth-mask".into())
        .spawn(move || {
            let mut pipe = std::fs::File::from(read);
            let mut masker = StreamMasker::new(masks);
            let mut buf = vec![0u8; CHUNK];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let out = masker.push(&buf[..n]);
                        if let Err(e) = log.write_all(&out) {
                            tracing::warn!("cannot write the TaskRun output: {e}");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::warn!("cannot read the TaskRun output pipe: {e}");
                        break;
                    }
                }
            }
            if let Err(e) = log.write_all(&masker.finish()) {
                tracing::warn!("cannot write the TaskRun output: {e}");
            }
            let _ = tx.send(());
        })?;
    Ok((write, Copying { done }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_split_across_writes_reach_the_log_masked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("output.log");
        let (write, copying) = start(&log, Masks::new([&b"hunter2"[..]])).expect("start");
        let mut writer = std::fs::File::from(write);
        writer.write_all(b"pw=hun").expect("write");
        writer.flush().expect("flush");
        writer.write_all(b"ter2\n").expect("write");
        drop(writer);
        assert!(copying.wait(Duration::from_secs(30)).await);
        assert_eq!(std::fs::read_to_string(&log).expect("read"), "pw=***\n");
    }
}
