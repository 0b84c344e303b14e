//! Following one object by watching it (`run`, `logs -f`, `wait`), and
//! streaming a TaskRun's output as it is written: the output is opened once
//! the TaskRun runs, resumed from the byte offset already printed when the
//! stream breaks, and drained once more after the TaskRun finished.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::Value;
use sloth_sdk::watcher::{Event, watcher};
use sloth_sdk::{DynamicObject, Error as SdkError, WatchParams};
use tokio::time::Instant;

use super::Context;
use crate::error::CliError;
use crate::printer::emit_bytes;

/// How long the servers may stay unreachable once a watch has started
/// before a command gives up (exit 3).
const UNREACHABLE_LIMIT: Duration = Duration::from_secs(30);
/// First and largest pause between attempts to open a TaskRun's output.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Attempts to read the rest of the output once the TaskRun has finished.
const FINAL_ATTEMPTS: u32 = 3;

/// `status.phase`, or `Pending` when there is no status yet.
pub fn phase(object: &DynamicObject) -> &str {
    object
        .status
        .get("phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
}

/// A string field of `status`, or "".
pub fn status_text<'a>(object: &'a DynamicObject, field: &str) -> &'a str {
    object
        .status
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Succeeded and Failed are final for TaskRuns; Workflows can also end
/// Cancelled.
pub fn is_terminal(phase: &str) -> bool {
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
pub fn unschedulable_message(object: &DynamicObject) -> Option<String> {
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
pub struct Tracker {
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
    pub fn new(
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
            stream: watcher(ctx.client.clone(), kind.kind, namespace, params),
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
    pub async fn next(&mut self, ctx: &Context) -> Result<DynamicObject, CliError> {
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
    pub async fn next_state(&mut self, ctx: &Context) -> Result<Option<DynamicObject>, CliError> {
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

/// The output of a TaskRun as it is being written.
struct Output {
    namespace: String,
    name: String,
    stream: Option<BoxStream<'static, Result<Vec<u8>, SdkError>>>,
    /// Bytes printed so far: where a resumed stream starts.
    offset: i64,
    /// The stream ended cleanly while the TaskRun was still running: reopen
    /// only once it has finished, to drain what is left.
    ended: bool,
    /// Nothing more to print.
    done: bool,
    retry_at: Option<Instant>,
    delay: Duration,
    final_attempts: u32,
    last_error: Option<SdkError>,
}

impl Output {
    fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            stream: None,
            offset: 0,
            ended: false,
            done: false,
            retry_at: None,
            delay: RETRY_FIRST,
            final_attempts: 0,
            last_error: None,
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
        self.retry_at = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(RETRY_MAX);
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
        match ctx
            .client
            .logs(&self.namespace, &self.name, !terminal, self.offset)
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
        item: Option<Result<Vec<u8>, SdkError>>,
        terminal: bool,
    ) -> std::io::Result<()> {
        match item {
            Some(Ok(bytes)) => {
                emit_bytes(&bytes)?;
                self.offset += i64::try_from(bytes.len()).unwrap_or(i64::MAX);
                self.delay = RETRY_FIRST;
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
        if self.offset == 0 && !tail.is_empty() {
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
pub async fn stream_output(
    ctx: &Context,
    namespace: &str,
    name: &str,
    on_change: impl FnMut(&DynamicObject),
) -> anyhow::Result<DynamicObject> {
    stream_output_from(ctx, namespace, name, 0, on_change).await
}

/// [`stream_output`] from byte `offset` of the output on (what was
/// printed already, as by `logs --tail N -f`).
pub async fn stream_output_from(
    ctx: &Context,
    namespace: &str,
    name: &str,
    offset: i64,
    mut on_change: impl FnMut(&DynamicObject),
) -> anyhow::Result<DynamicObject> {
    let kind = crate::kind::resolve("taskrun")?;
    let mut tracker = Tracker::new(ctx, kind, namespace, name);
    let mut taskrun = tracker.next(ctx).await?;
    on_change(&taskrun);
    let mut output = Output::new(namespace, name);
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

async fn next_chunk(
    stream: &mut Option<BoxStream<'static, Result<Vec<u8>, SdkError>>>,
) -> Option<Result<Vec<u8>, SdkError>> {
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
        let mut output = Output::new("default", "r");
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

    #[test]
    fn a_broken_stream_is_retried_later_with_growing_pauses() {
        let mut output = Output::new("default", "r");
        let running = taskrun(json!({"phase": "Running", "agent": "a1"}));
        output
            .receive(Some(Ok(b"hello ".to_vec())), false)
            .expect("print");
        assert_eq!(output.offset, 6);
        output
            .receive(Some(Err(SdkError::Invalid("gone".into()))), false)
            .expect("error");
        assert!(!output.should_open(&running, Instant::now()));
        assert!(output.should_open(&running, Instant::now() + RETRY_MAX));
        assert_eq!(output.delay, RETRY_FIRST * 2);
        assert_eq!(output.final_attempts, 0);
    }
}
