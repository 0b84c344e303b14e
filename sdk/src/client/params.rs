//! The options of list, watch and log calls, and what lists and watches
//! return.

use sloth_proto::v1 as pb;

/// Objects per list page when `ListParams::limit` is 0.
pub const DEFAULT_PAGE_SIZE: i64 = 500;

/// Options of a list call.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    /// Labels to match, as `slothctl -l` takes them (`app=web,tier!=db`);
    /// empty matches all.
    pub label_selector: String,
    /// Fields to match (`spec.agentName=a1,status.phase!=Failed`); empty
    /// matches all.
    pub field_selector: String,
    /// Most objects per page; 0: `DEFAULT_PAGE_SIZE`. The server may return
    /// fewer (each page is also bounded by bytes) with a continue token.
    pub limit: i64,
    /// Where the previous page stopped (its `continue_token`); empty for the
    /// first page.
    pub continue_token: String,
    /// Empty: the latest data. "0": any recent data, which the apiserver
    /// serves from its watch cache (cheaper; what watchers list with).
    pub resource_version: String,
}

impl ListParams {
    /// The page size sent to the server.
    pub fn page_size(&self) -> i64 {
        if self.limit > 0 {
            self.limit
        } else {
            DEFAULT_PAGE_SIZE
        }
    }
}

/// Options of a watch call.
#[derive(Clone, Debug, Default)]
pub struct WatchParams {
    /// Labels to match (`app=web`); empty watches all.
    pub label_selector: String,
    /// Fields to match (`spec.agentName=a1`); empty watches all.
    pub field_selector: String,
    /// Ask for periodic [`WatchEvent::Bookmark`]s, so that a resumed watch
    /// starts from a recent revision.
    pub allow_bookmarks: bool,
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct ObjectList<K> {
    /// The objects of this page.
    pub items: Vec<K>,
    /// The revision the list is consistent with; watch from here.
    pub resource_version: String,
    /// Pass as `ListParams::continue_token` for the next page; empty on the
    /// last page.
    pub continue_token: String,
}

/// A change seen by a watch.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent<K> {
    /// The object was created (or matches the selector now).
    Added(K),
    /// The object changed.
    Modified(K),
    /// The object was deleted (or no longer matches the selector): its last state.
    Deleted(K),
    /// Every event up to this resourceVersion has been delivered.
    Bookmark(String),
}

impl<K> WatchEvent<K> {
    /// The same event with its object converted by `f` (a Bookmark stays
    /// as it is).
    pub fn map<T>(self, f: impl FnOnce(K) -> T) -> WatchEvent<T> {
        match self {
            Self::Added(k) => WatchEvent::Added(f(k)),
            Self::Modified(k) => WatchEvent::Modified(f(k)),
            Self::Deleted(k) => WatchEvent::Deleted(f(k)),
            Self::Bookmark(rv) => WatchEvent::Bookmark(rv),
        }
    }
}

/// What [`Client::logs_with`](crate::Client::logs_with) asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming until the TaskRun finishes.
    pub follow: bool,
    /// Start at this byte offset of the plain output.
    pub offset: i64,
    /// Prefix each line with its RFC 3339 time.
    pub timestamps: bool,
    /// > 0: only lines written in the last this many seconds.
    pub since_seconds: i64,
    /// Tag each chunk with the stream that wrote it (not with dated lines).
    pub split_streams: bool,
}

/// Which of a payload's streams wrote a [`LogChunk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    /// Not known: the combined output (not asked for, or an older agent).
    Combined,
    /// Standard output only.
    Stdout,
    /// Standard error only.
    Stderr,
}

/// A part of a TaskRun's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogChunk {
    /// The bytes, as written (not necessarily whole lines or UTF-8).
    pub data: Vec<u8>,
    /// Which stream wrote them.
    pub stream: LogStream,
    /// Where a resumed read goes on in the plain output; None from agents
    /// that do not say (count the bytes then).
    pub next_offset: Option<i64>,
}

impl From<pb::LogChunk> for LogChunk {
    fn from(chunk: pb::LogChunk) -> Self {
        let stream = match pb::LogStream::try_from(chunk.stream) {
            Ok(pb::LogStream::Stdout) => LogStream::Stdout,
            Ok(pb::LogStream::Stderr) => LogStream::Stderr,
            _ => LogStream::Combined,
        };
        Self {
            data: chunk.data,
            stream,
            next_offset: (chunk.next_offset > 0).then_some(chunk.next_offset),
        }
    }
}
