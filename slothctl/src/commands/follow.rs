//! Following one object by watching it (`run`, `logs -f`, `wait`), and
//! streaming a TaskRun's output as it is written: the output is opened once
//! the TaskRun runs, resumed from the byte offset already printed when the
//! stream breaks (the agent says which offset its chunks reach, since dated
//! lines are longer than the bytes they come from), and drained once more
//! after the TaskRun finished.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::Value;
use sloth_sdk::backoff::{Backoff, Retries};
use sloth_sdk::client::LogChunk;
use sloth_sdk::watcher::{Event, ListSemantic, watcher_with};
use sloth_sdk::{DynamicObject, Error as SdkError, LogOptions, WatchParams};
use tokio::time::Instant;

use super::Context;
use super::output_sink::Sink;
use crate::error::CliError;
use crate::printer::emit_bytes;

/// How long the servers may stay unreachable once a watch has started
/// before a command gives up (exit 3).
const UNREACHABLE_LIMIT: Duration = Duration::from_secs(30);
/// Pauses between attempts to open a TaskRun's output: 100ms doubling up
/// to 2s, reset by output that arrives.
const RETRY: Backoff = Backoff::fixed(Duration::from_millis(100), Duration::from_secs(2));
/// Attempts to read the rest of the output once the TaskRun has finished.
const FINAL_ATTEMPTS: u32 = 3;

/// `status.phase`, or `Pending` when there is no status yet.
pub(crate) fn phase(object: &DynamicObject) -> &str {
    object
        .status
        .get("phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
}

/// A string field of `status`, or "".
pub(crate) fn status_text<'a>(object: &'a DynamicObject, field: &str) -> &'a str {
    object
        .status
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Succeeded and Failed are final for TaskRuns; Workflows can also end
/// Cancelled.
pub(crate) fn is_terminal(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "Cancelled")
}

/// The agent a TaskRun is bound to, if any.
fn bound_agent(object: &DynamicObject) -> Option<&str> {
    let agent = status_text(object, "agent");
    let agent = if agent.is_empty() {
        object
            .spec
            .get("agentName")
            .and_then(Value::as_str)
            .unwrap_or_default()
    } else {
        agent
    };
    (!agent.is_empty()).then_some(agent)
}

/// The scheduler's explanation while a TaskRun cannot be placed: a condition
/// (or the status) with reason `Unschedulable`.
pub(crate) fn unschedulable_message(object: &DynamicObject) -> Option<String> {
    if phase(object) != "Pending" {
        return None;
    }
    let conditions = object.status.get("conditions").and_then(Value::as_array);
    let from_condition = conditions.into_iter().flatten().find_map(|c| {
        (c.get("reason").and_then(Value::as_str) == Some("Unschedulable")).then(|| {
            c.get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        })
    });
    from_condition.or_else(|| {
        (status_text(object, "reason") == "Unschedulable")
            .then(|| status_text(object, "message").to_string())
    })
}

/// Watches one object by name and reports each new state of it. The watch
/// survives apiserver restarts; the object disappearing is an error (exit 1),
/// and so is the servers staying unreachable for [`UNREACHABLE_LIMIT`]
/// (exit 3).
pub(crate) struct Tracker {
    stream: BoxStream<'static, Result<Event<DynamicObject>, SdkError>>,
    /// `taskrun` or `workflow`, for messages.
    singular: &'static str,
    plural: &'static str,
    name: String,
    listed: bool,
    unreachable_since: Option<Instant>,
    warned: bool,
}

impl Tracker {
    pub(crate) fn new(
        ctx: &Context,
        kind: &'static sloth_sdk::kinds::KindInfo,
        namespace: &str,
        name: &str,
    ) -> Self {
        let params = WatchParams {
            label_selector: String::new(),
            field_selector: format!("metadata.name={name}"),
            allow_bookmarks: true,
        };
        Self {
            // The object may have been created by this very command a moment
            // ago: the first list must see it, so it reads the store.
            stream: watcher_with(
                ctx.client.clone(),
                kind.kind,
                namespace,
                params,
                ListSemantic::MostRecent,
            ),
            singular: kind.singular,
            plural: kind.plural,
            name: name.to_string(),
            listed: false,
            unreachable_since: None,
            warned: false,
        }
    }

    /// The object's next state (the current one first). Cancel-safe: state
    /// changes only once an event has been taken from the stream.
    pub(crate) async fn next(&mut self, ctx: &Context) -> Result<DynamicObject, CliError> {
        let listed = self.listed;
        match self.next_state(ctx).await? {
            Some(object) => Ok(object),
            None if listed => Err(self.deleted()),
            None => Err(ctx.error(SdkError::NotFound(format!(
                "{} {:?} not found",
                self.plural, self.name
            )))),
        }
    }

    /// As [`Self::next`], with None when the object is gone (deleted, or
    /// not there when first listed).
    pub(crate) async fn next_state(
        &mut self,
        ctx: &Context,
    ) -> Result<Option<DynamicObject>, CliError> {
        loop {
            let Some(item) = self.stream.next().await else {
                return Err(CliError::failed(format!(
                    "the watch on {} {} ended",
                    self.singular, self.name
                )));
            };
            let found = match item {
                Ok(Event::Restarted(items)) => {
                    let found = items.into_iter().find(|o| o.metadata.name == self.name);
                    if found.is_none() {
                        return Ok(None);
                    }
                    found
                }
                Ok(Event::Applied(object)) => Some(object).filter(|o| o.metadata.name == self.name),
                Ok(Event::Deleted(object)) if object.metadata.name == self.name => {
                    return Ok(None);
                }
                Ok(Event::Deleted(_)) => None,
                Err(e) => {
                    if !self.listed {
                        return Err(ctx.error(e));
                    }
                    if e.is_unavailable() {
                        let since = *self.unreachable_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= UNREACHABLE_LIMIT {
                            return Err(ctx.error(e));
                        }
                    }
                    if !self.warned && !matches!(e, SdkError::Expired(_)) {
                        eprintln!("warning: watch interrupted, resuming: {e}");
                        self.warned = true;
                    }
                    continue;
                }
            };
            self.listed = true;
            self.unreachable_since = None;
            self.warned = false;
            if let Some(object) = found {
                return Ok(Some(object));
            }
        }
    }

    fn deleted(&self) -> CliError {
        CliError::failed(format!("{} {} was deleted", self.singular, self.name))
    }
}

/// How a followed output is asked for and printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OutputOptions {
    /// Each line prefixed with its time (`logs -f --timestamps`).
    pub timestamps: bool,
    /// Only lines written this recently before the command started
    /// (`logs -f --since`).
    pub since: Option<Duration>,
    pub sink: Sink,
}

type Chunks = BoxStream<'static, Result<LogChunk, SdkError>>;

/// The output of a TaskRun as it is being written.
struct Output {
    namespace: String,
    name: String,
    options: OutputOptions,
    /// When following began: `since` counts back from there.
    started: Instant,
    stream: Option<Chunks>,
    /// Where a resumed stream starts: the offset in the plain output just
    /// after what was printed.
    offset: i64,
    /// Something was printed.
    printed: bool,
    /// The stream ended cleanly while the TaskRun was still running: reopen
    /// only once it has finished, to drain what is left.
    ended: bool,
    /// Nothing more to print.
    done: bool,
    retry_at: Option<Instant>,
    retries: Retries,
    final_attempts: u32,
    last_error: Option<SdkError>,
}

impl Output {
    fn new(namespace: &str, name: &str, options: OutputOptions) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            options,
            started: Instant::now(),
            stream: None,
            offset: 0,
            printed: false,
            ended: false,
            done: false,
            retry_at: None,
            retries: RETRY.retries(),
            final_attempts: 0,
            last_error: None,
        }
    }

    /// What to ask the agent for, from the current offset: `since` stays
    /// anchored at the start, however late a resumed read comes.
    fn log_options(&self, follow: bool) -> LogOptions {
        let since_seconds = self.options.since.map_or(0, |since| {
            let back = since + self.started.elapsed();
            i64::try_from(back.as_secs() + u64::from(back.subsec_nanos() > 0)).unwrap_or(i64::MAX)
        });
        LogOptions {
            follow,
            offset: self.offset,
            timestamps: self.options.timestamps,
            since_seconds: since_seconds.max(i64::from(self.options.since.is_some())),
            split_streams: self.options.sink.split_streams,
        }
    }

    /// Whether to open the stream now, given the TaskRun's latest state.
    fn should_open(&self, taskrun: &DynamicObject, now: Instant) -> bool {
        let phase = phase(taskrun);
        let started = phase == "Running" || is_terminal(phase);
        self.stream.is_none()
            && !self.done
            && started
            && (!self.ended || is_terminal(phase))
            && self.retry_at.is_none_or(|t| now >= t)
    }

    fn failed_attempt(&mut self, error: SdkError, terminal: bool) {
        self.retry_at = Some(Instant::now() + self.retries.next_delay());
        self.last_error = Some(error);
        if terminal {
            self.final_attempts += 1;
        }
    }

    async fn open(&mut self, ctx: &Context, taskrun: &DynamicObject) {
        let terminal = is_terminal(phase(taskrun));
        if terminal && bound_agent(taskrun).is_none() {
            // Never placed on an agent: there is no output.
            self.done = true;
            return;
        }
        // Once the TaskRun has finished its output is complete: read the
        // rest without following (a follow ends only at the agent's next
        // look at the run).
        let options = self.log_options(!terminal);
        match ctx
            .client
            .log_chunks(&self.namespace, &self.name, &options)
            .await
        {
            Ok(stream) => {
                self.stream = Some(stream);
                self.retry_at = None;
            }
            Err(e) => self.failed_attempt(e, terminal),
        }
    }

    /// Handles one item of the open stream.
    fn receive(
        &mut self,
        item: Option<Result<LogChunk, SdkError>>,
        terminal: bool,
    ) -> std::io::Result<()> {
        match item {
            Some(Ok(chunk)) => {
                self.options.sink.emit(&chunk)?;
                self.printed |= !chunk.data.is_empty();
                self.offset = chunk.next_offset.unwrap_or_else(|| {
                    self.offset + i64::try_from(chunk.data.len()).unwrap_or(i64::MAX)
                });
                self.retries.reset();
            }
            Some(Err(e)) => {
                self.stream = None;
                self.failed_attempt(e, terminal);
            }
            None => {
                self.stream = None;
                if terminal {
                    self.done = true;
                } else {
                    self.ended = true;
                }
            }
        }
        Ok(())
    }

    /// Gives up on the rest of the output of a finished TaskRun: prints
    /// `status.logTail` when nothing was printed, and says what is missing.
    fn give_up(&mut self, taskrun: &DynamicObject) -> std::io::Result<()> {
        self.done = true;
        let reason = self
            .last_error
            .take()
            .map_or_else(String::new, |e| format!(": {e}"));
        let tail = status_text(taskrun, "logTail");
        if !self.printed && self.offset == 0 && !tail.is_empty() {
            eprintln!(
                "warning: the output of taskrun {} cannot be read{reason}; \
                 showing its last lines (status.logTail)",
                self.name
            );
            emit_bytes(tail.as_bytes())?;
            if !tail.ends_with('\n') {
                emit_bytes(b"\n")?;
            }
        } else if self.offset > 0 || !status_text(taskrun, "startTime").is_empty() {
            eprintln!(
                "warning: the output of taskrun {} may be incomplete{reason}",
                self.name
            );
        }
        Ok(())
    }
}

/// Prints a TaskRun's output to stdout as it is written, until the TaskRun
/// has finished and all of its output is printed; returns the TaskRun in
/// its final state. `on_change` sees every state of the TaskRun (to report
/// why it is still pending, for instance).
pub(crate) async fn stream_output(
    ctx: &Context,
    namespace: &str,
    name: &str,
    options: OutputOptions,
    on_change: impl FnMut(&DynamicObject),
) -> anyhow::Result<DynamicObject> {
    stream_output_from(ctx, namespace, name, 0, options, on_change).await
}

/// [`stream_output`] from byte `offset` of the output on (what was
/// printed already, as by `logs --tail N -f`).
pub(crate) async fn stream_output_from(
    ctx: &Context,
    namespace: &str,
    name: &str,
    offset: i64,
    options: OutputOptions,
    mut on_change: impl FnMut(&DynamicObject),
) -> anyhow::Result<DynamicObject> {
    let kind = crate::kind::resolve("taskrun")?;
    let mut tracker = Tracker::new(ctx, kind, namespace, name);
    let mut taskrun = tracker.next(ctx).await?;
    on_change(&taskrun);
    let mut output = Output::new(namespace, name, options);
    output.offset = offset;
    loop {
        let terminal = is_terminal(phase(&taskrun));
        if terminal && output.stream.is_none() && output.final_attempts >= FINAL_ATTEMPTS {
            output.give_up(&taskrun)?;
        }
        if output.done {
            return Ok(taskrun);
        }
        if output.should_open(&taskrun, Instant::now()) {
            output.open(ctx, &taskrun).await;
            continue;
        }
        let retry_at = output.retry_at.filter(|_| output.stream.is_none());
        tokio::select! {
            next = tracker.next(ctx), if !terminal => {
                taskrun = next?;
                on_change(&taskrun);
                if is_terminal(phase(&taskrun)) {
                    // Read the rest at once (from what was printed) rather
                    // than wait for the follow to notice the end.
                    output.stream = None;
                }
            }
            item = next_chunk(&mut output.stream), if output.stream.is_some() => {
                output.receive(item, terminal)?;
            }
            () = sleep_until(retry_at), if retry_at.is_some() => {}
            else => output.give_up(&taskrun)?,
        }
    }
}

async fn next_chunk(stream: &mut Option<Chunks>) -> Option<Result<LogChunk, SdkError>> {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taskrun(status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "kind": "TaskRun",
            "metadata": {"name": "r", "namespace": "default"},
            "spec": {"run": {"shell": "true"}},
            "status": status,
        }))
        .expect("object")
    }

    #[test]
    fn unschedulable_comes_from_a_condition_or_the_status() {
        let t = taskrun(json!({"phase": "Pending", "conditions": [
            {"type": "Scheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/2 agents match"}]}));
        assert_eq!(
            unschedulable_message(&t).as_deref(),
            Some("0/2 agents match")
        );
        let t = taskrun(json!({"reason": "Unschedulable", "message": "no agents"}));
        assert_eq!(unschedulable_message(&t).as_deref(), Some("no agents"));
        let t = taskrun(json!({"phase": "Running", "reason": "Unschedulable"}));
        assert_eq!(unschedulable_message(&t), None);
        assert_eq!(unschedulable_message(&taskrun(Value::Null)), None);
    }

    #[test]
    fn output_opens_once_running_and_after_an_early_end_only_when_finished() {
        let now = Instant::now();
        let mut output = Output::new("default", "r", OutputOptions::default());
        let pending = taskrun(json!({"phase": "Pending"}));
        let running = taskrun(json!({"phase": "Running", "agent": "a1"}));
        let done = taskrun(json!({"phase": "Succeeded", "agent": "a1"}));
        assert!(!output.should_open(&pending, now));
        assert!(output.should_open(&running, now));
        output.receive(None, false).expect("end");
        assert!(output.ended && !output.done);
        assert!(!output.should_open(&running, now));
        assert!(output.should_open(&done, now));
        output.receive(None, true).expect("end");
        assert!(output.done);
        assert!(!output.should_open(&done, now));
    }

    fn chunk(data: &str, next_offset: Option<i64>) -> LogChunk {
        LogChunk {
            data: data.as_bytes().to_vec(),
            stream: sloth_sdk::client::LogStream::Combined,
            next_offset,
        }
    }

    #[test]
    fn a_broken_stream_is_retried_after_growing_pauses_reset_by_output() {
        let ms = Duration::from_millis;
        let mut output = Output::new("default", "r", OutputOptions::default());
        let running = taskrun(json!({"phase": "Running", "agent": "a1"}));
        let fail = |output: &mut Output| {
            let before = Instant::now();
            output
                .receive(Some(Err(SdkError::Invalid("gone".into()))), false)
                .expect("error");
            (before, Instant::now())
        };
        // The pause before the next attempt: 100ms doubling up to 2s.
        for pause in [100, 200, 400, 800, 1600, 2000, 2000].map(ms) {
            let (before, after) = fail(&mut output);
            assert!(
                !output.should_open(&running, before + pause - ms(1)),
                "{pause:?}"
            );
            assert!(output.should_open(&running, after + pause), "{pause:?}");
        }
        assert_eq!(output.final_attempts, 0, "the TaskRun is still running");
        // Output that arrives starts the pauses over.
        output
            .receive(Some(Ok(chunk("hello ", None))), false)
            .expect("print");
        let (before, after) = fail(&mut output);
        assert!(!output.should_open(&running, before + ms(99)));
        assert!(output.should_open(&running, after + ms(100)));
    }

    #[test]
    fn a_resumed_stream_starts_where_the_agent_says_or_after_the_bytes_printed() {
        let mut output = Output::new("default", "r", OutputOptions::default());
        output
            .receive(Some(Ok(chunk("hello ", None))), false)
            .expect("print");
        assert_eq!(output.log_options(true).offset, 6, "an older agent");
        // A dated line is longer than the bytes it stands for.
        output
            .receive(
                Some(Ok(chunk("2026-12-07T01:02:03.456Z x\n", Some(8)))),
                false,
            )
            .expect("print");
        assert_eq!(output.log_options(true).offset, 8);
    }

    #[test]
    fn since_stays_anchored_at_the_start_of_the_follow() {
        let mut output = Output::new(
            "default",
            "r",
            OutputOptions {
                since: Some(Duration::from_secs(60)),
                ..OutputOptions::default()
            },
        );
        // Rounded up: a moment has passed since the start.
        assert_eq!(output.log_options(true).since_seconds, 61);
        output.started -= Duration::from_millis(30_500);
        assert_eq!(output.log_options(true).since_seconds, 91, "rounded up");
        let plain = Output::new("default", "r", OutputOptions::default());
        assert_eq!(plain.log_options(false).since_seconds, 0);
    }
}
