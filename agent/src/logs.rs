//! TaskRun output: where it is kept (`<work-dir>/<namespace>/<name>/output.log`),
//! its tail for the terminal status, and the `AgentLogs` gRPC service the
//! apiserver relays `Logs` calls to.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use std::sync::Arc;

use futures_util::Stream;
use sloth_proto::v1::agent_logs_server::AgentLogs;
use sloth_proto::v1::{LogChunk, LogStream, LogsRequest};
use sloth_sdk::logs_auth;
use sloth_sdk::validation::names;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tonic::{Request, Response, Status};

use crate::concurrency::{ActiveRuns, RunKey};
use crate::output_index::{self, Index};
use crate::stamped_lines::{LineFilter, LineStamper};

/// Who may call the logs port (only ever the apiserver, relaying
/// `slothctl logs`).
#[derive(Clone, Debug)]
pub(crate) enum Admission {
    /// The agent has a certificate: mutual TLS, and the caller's verified
    /// certificate must have role admin.
    Certificate,
    /// The agent has a token but no certificate: each call must carry the
    /// apiserver's proof for the TaskRun it reads, made with the digest of
    /// this agent's token (`sloth_sdk::logs_auth`).
    TokenProof { key: Arc<Vec<u8>> },
    /// No credentials at all (development mode, loopback by default).
    Open,
}

/// Admits a call to the logs port before its message is read: with a
/// certificate, only a caller whose verified certificate has role admin;
/// with a token, only a call carrying a proof (checked against the TaskRun
/// in [`LogService`]).
pub(crate) fn admit(request: Request<()>, admission: &Admission) -> Result<Request<()>, Status> {
    match admission {
        Admission::Open => return Ok(request),
        Admission::TokenProof { .. } => {
            return match request.metadata().get(logs_auth::METADATA_KEY) {
                Some(_) => Ok(request),
                None => Err(Status::unauthenticated(format!(
                    "this logs port serves only the apiserver: the call carries no {} proof",
                    logs_auth::METADATA_KEY
                ))),
            };
        }
        Admission::Certificate => {}
    }
    let identity = request
        .extensions()
        .get::<sloth_sdk::tls::PeerInfo>()
        .and_then(|peer| peer.certificate.as_ref());
    match identity {
        Some(identity) if identity.role == "admin" => Ok(request),
        Some(identity) => Err(Status::permission_denied(format!(
            "{:?} (role {:?}) may not read logs here: only the apiserver (role admin) may",
            identity.user, identity.role
        ))),
        None => Err(Status::unauthenticated("a client certificate is required")),
    }
}

/// The file name of a run's combined stdout and stderr (which stream wrote
/// what is in its index, [`crate::output_index`]).
pub(crate) const OUTPUT_FILE: &str = "output.log";

/// How often a followed log is checked for more output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// The largest chunk sent at once.
const CHUNK_BYTES: usize = 64 * 1024;

/// The directory of one TaskRun's run: its default cwd and its output log.
pub(crate) fn run_dir(work_dir: &Path, key: &RunKey) -> PathBuf {
    work_dir.join(&key.namespace).join(&key.name)
}

pub(crate) fn output_path(work_dir: &Path, key: &RunKey) -> PathBuf {
    run_dir(work_dir, key).join(OUTPUT_FILE)
}

/// Checks that a namespace and name from a peer are object names, so they
/// cannot lead outside the work dir.
pub(crate) fn check_key(namespace: &str, name: &str) -> Result<RunKey, String> {
    names::validate_dns1123_label(namespace)
        .map_err(|e| format!("namespace {namespace:?}: {e}"))?;
    names::validate_name(name).map_err(|e| format!("name {name:?}: {e}"))?;
    Ok(RunKey::new(namespace, name))
}

/// The last `max` bytes of the file at `path` as text, cut at a UTF-8
/// boundary; invalid bytes become U+FFFD. Empty when there is no file.
pub(crate) async fn read_tail(path: &Path, max: usize) -> std::io::Result<String> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata().await?.len();
    let max_u64 = u64::try_from(max).unwrap_or(u64::MAX);
    file.seek(SeekFrom::Start(len.saturating_sub(max_u64)))
        .await?;
    let mut bytes = Vec::with_capacity(max.min(CHUNK_BYTES));
    file.take(max_u64).read_to_end(&mut bytes).await?;
    Ok(utf8_tail(&bytes, max))
}

/// The end of `bytes` as text of at most `max` bytes, starting at a
/// character boundary.
pub(crate) fn utf8_tail(bytes: &[u8], max: usize) -> String {
    let mut start = bytes.len().saturating_sub(max);
    // Skip continuation bytes (10xxxxxx) of a character cut in half.
    let mut skipped = 0;
    while start < bytes.len() && skipped < 3 && bytes[start] & 0xC0 == 0x80 {
        start += 1;
        skipped += 1;
    }
    let text = String::from_utf8_lossy(&bytes[start..]);
    if text.len() <= max {
        return text.into_owned();
    }
    // Replacement characters made it longer: drop whole characters in front.
    let mut cut = text.len() - max;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    text[cut..].to_string()
}

/// The agent's `AgentLogs` service.
#[derive(Clone, Debug)]
pub(crate) struct LogService {
    work_dir: PathBuf,
    runs: ActiveRuns,
    admission: Admission,
}

impl LogService {
    pub(crate) fn new(work_dir: PathBuf, runs: ActiveRuns, admission: Admission) -> Self {
        Self {
            work_dir,
            runs,
            admission,
        }
    }
}

/// Checks the apiserver's proof for reading `namespace/name` (token mode).
fn check_proof(key: &[u8], request: &Request<LogsRequest>) -> Result<(), Status> {
    let message = request.get_ref();
    let now = chrono::Utc::now().timestamp();
    let mut last = None;
    for value in request.metadata().get_all(logs_auth::METADATA_KEY) {
        let value = value.to_str().unwrap_or_default();
        match logs_auth::verify(key, value, &message.namespace, &message.name, now) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(Status::unauthenticated(match last {
        Some(e) => format!("this logs port serves only the apiserver: {e}"),
        None => format!(
            "this logs port serves only the apiserver: the call carries no {} proof",
            logs_auth::METADATA_KEY
        ),
    }))
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;

struct Follow {
    file: tokio::fs::File,
    key: RunKey,
    follow: bool,
    runs: ActiveRuns,
    buf: Vec<u8>,
    failed: bool,
    /// The log's offset just after what was read from it.
    read_to: u64,
    shape: Shape,
}

/// What the chunks hold.
enum Shape {
    /// The combined output as it is in the log.
    Plain,
    /// `timestamps` or `since_seconds`: the output as dated lines.
    Dated(Dated),
    /// `split_streams`: each chunk one stream's.
    Split(Split),
}

/// The state of a read of dated lines.
struct Dated {
    output: PathBuf,
    times: Index,
    lines: LineStamper,
}

impl Dated {
    async fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.lines.needs_reload(&self.times, chunk.len()) {
            self.times.refresh(&self.output).await;
        }
        let now = chrono::Utc::now().timestamp_millis();
        self.lines.push(chunk, &self.times, now)
    }

    async fn finish(&mut self) -> Vec<u8> {
        if self.lines.needs_reload(&self.times, 0) {
            self.times.refresh(&self.output).await;
        }
        let now = chrono::Utc::now().timestamp_millis();
        self.lines.finish(&self.times, now)
    }

    fn chunk(&self, data: Vec<u8>) -> LogChunk {
        LogChunk {
            data,
            next_offset: offset_i64(self.lines.next_offset()),
            ..LogChunk::default()
        }
    }
}

/// The state of a read split by stream: bytes read from the log and not
/// sent yet, and the index that says which stream wrote them.
struct Split {
    output: PathBuf,
    index: Index,
    held: Vec<u8>,
    /// The log offset of `held`'s first byte.
    held_at: u64,
}

impl Split {
    /// The longest run of held bytes from one stream; None when nothing
    /// can be sent yet. Bytes the index does not cover (yet) are sent as
    /// the combined stream once the run is `finished`.
    async fn next(&mut self, finished: bool) -> Option<LogChunk> {
        if self.held.is_empty() {
            return None;
        }
        if self.index.span_at(self.held_at).is_none() {
            self.index.refresh(&self.output).await;
        }
        let (stream, len) = match self.index.span_at(self.held_at) {
            Some((stream, end)) => (stream, end.saturating_sub(self.held_at)),
            None if finished => (None, self.held.len() as u64),
            None => return None,
        };
        let len = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(self.held.len());
        let rest = self.held.split_off(len);
        let data = std::mem::replace(&mut self.held, rest);
        self.held_at += len as u64;
        let stream = match stream {
            Some(output_index::Stream::Stdout) => LogStream::Stdout,
            Some(output_index::Stream::Stderr) => LogStream::Stderr,
            None => LogStream::Unspecified,
        };
        Some(LogChunk {
            data,
            stream: stream.into(),
            next_offset: offset_i64(self.held_at),
        })
    }
}

fn offset_i64(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}

impl Follow {
    /// The next chunk; None once everything was sent (and, when following,
    /// the run has finished).
    async fn next(&mut self) -> Option<Result<LogChunk, Status>> {
        if self.failed {
            return None;
        }
        loop {
            // Looked at before reading: output written before the run ended
            // is read below, so nothing is lost at the end.
            let finished = !self.follow || !self.runs.contains(&self.key);
            if let Shape::Split(split) = &mut self.shape {
                if let Some(chunk) = split.next(finished).await {
                    return Some(Ok(chunk));
                }
                if !split.held.is_empty() {
                    // Its index line is on the way.
                    tokio::time::sleep(FOLLOW_POLL).await;
                    continue;
                }
            }
            match self.file.read(&mut self.buf).await {
                Ok(0) if finished => {
                    let Shape::Dated(dated) = &mut self.shape else {
                        return None;
                    };
                    let last = dated.finish().await;
                    let chunk = dated.chunk(last);
                    self.shape = Shape::Plain;
                    return (!chunk.data.is_empty()).then_some(Ok(chunk));
                }
                Ok(0) => tokio::time::sleep(FOLLOW_POLL).await,
                Ok(n) => {
                    self.read_to += n as u64;
                    let read = &self.buf[..n];
                    let chunk = match &mut self.shape {
                        Shape::Plain => LogChunk {
                            data: read.to_vec(),
                            next_offset: offset_i64(self.read_to),
                            ..LogChunk::default()
                        },
                        Shape::Dated(dated) => {
                            let data = dated.push(read).await;
                            dated.chunk(data)
                        }
                        Shape::Split(split) => {
                            split.held.extend_from_slice(read);
                            continue;
                        }
                    };
                    if !chunk.data.is_empty() {
                        return Some(Ok(chunk));
                    }
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(Status::internal(format!(
                        "cannot read the output of taskrun {}: {e}",
                        self.key
                    ))));
                }
            }
        }
    }
}

#[tonic::async_trait]
impl AgentLogs for LogService {
    type LogsStream = ChunkStream;

    async fn logs(&self, request: Request<LogsRequest>) -> Result<Response<ChunkStream>, Status> {
        if let Admission::TokenProof { key } = &self.admission {
            check_proof(key, &request)?;
        }
        let request = request.into_inner();
        let key = check_key(&request.namespace, &request.name).map_err(Status::invalid_argument)?;
        let offset = u64::try_from(request.offset).map_err(|_| {
            Status::invalid_argument(format!(
                "offset must not be negative (is {})",
                request.offset
            ))
        })?;
        let path = output_path(&self.work_dir, &key);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Status::not_found(format!(
                    "no output for taskrun {key} on this agent (it has not started here)"
                )));
            }
            Err(e) => {
                return Err(Status::internal(format!(
                    "cannot open the output of taskrun {key}: {e}"
                )));
            }
        };
        if offset > 0 {
            file.seek(SeekFrom::Start(offset)).await.map_err(|e| {
                Status::internal(format!("cannot seek in the output of taskrun {key}: {e}"))
            })?;
        }
        let shape = if request.timestamps || request.since_seconds > 0 {
            let not_before = (request.since_seconds > 0).then(|| {
                chrono::Utc::now().timestamp_millis() - request.since_seconds.saturating_mul(1000)
            });
            Shape::Dated(Dated {
                times: Index::default(),
                lines: LineStamper::new(
                    LineFilter {
                        timestamps: request.timestamps,
                        not_before,
                    },
                    offset,
                ),
                output: path,
            })
        } else if request.split_streams {
            Shape::Split(Split {
                output: path,
                index: Index::default(),
                held: Vec::new(),
                held_at: offset,
            })
        } else {
            Shape::Plain
        };
        let state = Follow {
            file,
            key,
            follow: request.follow,
            runs: self.runs.clone(),
            buf: vec![0; CHUNK_BYTES],
            failed: false,
            read_to: offset,
            shape,
        };
        let stream = futures_util::stream::unfold(state, |mut state| async move {
            state.next().await.map(|item| (item, state))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn tail_cuts_at_a_character_boundary() {
        assert_eq!(utf8_tail(b"hello", 10), "hello");
        assert_eq!(utf8_tail(b"hello", 3), "llo");
        let text = "aé€😀";
        // "😀" is 4 bytes, "€" 3, "é" 2.
        for max in 0..=text.len() {
            let tail = utf8_tail(text.as_bytes(), max);
            assert!(tail.len() <= max, "{max}: {tail:?}");
            assert!(text.ends_with(&tail), "{max}: {tail:?}");
        }
        assert_eq!(utf8_tail(text.as_bytes(), 5), "😀");
        assert_eq!(utf8_tail(text.as_bytes(), 7), "€😀");
        // Invalid bytes grow into U+FFFD but the result stays within max.
        let tail = utf8_tail(&[b'a', 0xff, 0xfe, b'b'], 4);
        assert!(tail.len() <= 4 && tail.ends_with('b'), "{tail:?}");
    }

    #[tokio::test]
    async fn reads_the_tail_of_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out");
        assert_eq!(read_tail(&path, 10).await.expect("missing"), "");
        std::fs::write(&path, "0123456789abc").expect("write");
        assert_eq!(read_tail(&path, 4).await.expect("tail"), "9abc");
        assert_eq!(read_tail(&path, 100).await.expect("all"), "0123456789abc");
    }

    #[test]
    fn peer_keys_cannot_escape_the_work_dir() {
        assert!(check_key("default", "t1").is_ok());
        for (ns, name) in [
            ("..", "x"),
            ("default", ".."),
            ("a/b", "x"),
            ("default", "a/b"),
            ("", "x"),
        ] {
            assert!(check_key(ns, name).is_err(), "{ns:?} {name:?}");
        }
    }

    #[tokio::test]
    async fn serves_from_an_offset_and_follows_until_the_run_ends() {
        let dir = tempfile::tempdir().expect("temp dir");
        let runs = ActiveRuns::default();
        let service = LogService::new(dir.path().to_path_buf(), runs.clone(), Admission::Open);
        let key = RunKey::new("default", "t1");
        let request = |follow, offset| {
            Request::new(LogsRequest {
                namespace: "default".into(),
                name: "t1".into(),
                follow,
                offset,
                ..LogsRequest::default()
            })
        };
        let err = service
            .logs(request(false, 0))
            .await
            .err()
            .expect("no file");
        assert_eq!(err.code(), tonic::Code::NotFound);
        std::fs::create_dir_all(run_dir(dir.path(), &key)).expect("dir");
        let path = output_path(dir.path(), &key);
        std::fs::write(&path, "hello ").expect("write");
        let collect = |stream: ChunkStream| async move {
            let chunks: Vec<_> = stream.collect().await;
            let mut all = Vec::new();
            for chunk in chunks {
                all.extend(chunk.expect("chunk").data);
            }
            String::from_utf8(all).expect("utf-8")
        };
        let stream = service
            .logs(request(false, 2))
            .await
            .expect("logs")
            .into_inner();
        assert_eq!(collect(stream).await, "llo ");

        let (guard, _stop) = runs.insert(key.clone(), "uid").expect("hold");
        let stream = service
            .logs(request(true, 0))
            .await
            .expect("logs")
            .into_inner();
        let reader = tokio::spawn(collect(stream));
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        std::io::Write::write_all(&mut file, b"world").expect("append");
        drop(guard);
        let text = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("follow ended")
            .expect("task");
        assert_eq!(text, "hello world");
    }
}
