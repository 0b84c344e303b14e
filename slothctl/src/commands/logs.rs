//! `slothctl logs TASKRUN [-f] [--tail N] [--timestamps] [--since D]`: a
//! TaskRun's output, as written so far (lines dated by the agent on
//! request), or with `-f` as it is written until the TaskRun finishes;
//! `logs -l SELECTOR` and `logs workflow/NAME [TASK]`: the output of several
//! TaskRuns (a workflow's: every attempt of every task), one after another,
//! each under a `==> taskrun/NAME <==` line unless --prefix marks lines.

use futures_util::StreamExt;
use sloth_sdk::well_known::{TASK_LABEL, WORKFLOW_LABEL};
use sloth_sdk::{DynamicObject, Error as SdkError, ListParams, LogOptions};

use super::follow::{self, status_text};
use super::{Context, check_selectors};
use crate::cli::LogsArgs;
use crate::error::CliError;
use crate::kind;
use crate::printer::emit_bytes;

pub(crate) async fn run(ctx: &Context, args: LogsArgs) -> anyhow::Result<()> {
    let namespace = ctx.namespace.as_str();
    let selector = match (&args.selector, &args.taskrun) {
        (Some(_), Some(_)) => {
            return Err(CliError::usage("give a TaskRun or -l SELECTOR, not both").into());
        }
        (Some(selector), None) => Some(selector.clone()),
        (None, Some(target)) => workflow_selector(target, args.task.as_deref())?,
        (None, None) => return Err(CliError::usage("give a TaskRun or -l SELECTOR").into()),
    };
    if let Some(selector) = selector {
        if args.follow {
            return Err(CliError::usage("-f follows one TaskRun: name it").into());
        }
        check_selectors(&selector, "")?;
        return many(ctx, namespace, &selector, &args).await;
    }
    if args.task.is_some() {
        return Err(CliError::usage("a TASK is given only after workflow/NAME").into());
    }
    let name = taskrun_name(args.taskrun.as_deref().unwrap_or_default())?;
    if args.follow {
        let printed = match args.tail {
            Some(tail) => print_tail(ctx, namespace, &name, tail, &dated(&args)).await?,
            None => 0,
        };
        let options = follow::OutputOptions {
            timestamps: args.timestamps,
            since: args.since,
            ..follow::OutputOptions::default()
        };
        let mut told = false;
        follow::stream_output_from(ctx, namespace, &name, printed, options, |taskrun| {
            if !told && follow::phase(taskrun) == "Pending" {
                eprintln!("waiting for taskrun/{name} to start...");
                told = true;
            }
        })
        .await?;
        return Ok(());
    }
    let taskrun = ctx
        .client
        .get("TaskRun", namespace, &name)
        .await
        .map_err(|e| ctx.error(e))?;
    let output = read(ctx, &taskrun, &dated(&args)).await?;
    emit_bytes(&shape(&output, args.tail, None))?;
    Ok(())
}

/// What the agent is asked for: plain output, or dated lines.
fn dated(args: &LogsArgs) -> LogOptions {
    LogOptions {
        timestamps: args.timestamps,
        since_seconds: args
            .since
            .map_or(0, |d| i64::try_from(d.as_secs().max(1)).unwrap_or(i64::MAX)),
        ..LogOptions::default()
    }
}

/// `--tail N -f`: the last `tail` lines written so far (dated or filtered
/// as `options` say); returns the byte offset the follow goes on from. A
/// TaskRun that has not started has nothing to show yet: the follow starts
/// at its beginning.
async fn print_tail(
    ctx: &Context,
    namespace: &str,
    name: &str,
    tail: usize,
    options: &LogOptions,
) -> anyhow::Result<i64> {
    let taskrun = ctx
        .client
        .get("TaskRun", namespace, name)
        .await
        .map_err(|e| ctx.error(e))?;
    let phase = follow::phase(&taskrun);
    if phase != "Running" && !follow::is_terminal(phase) {
        return Ok(0);
    }
    let (output, end) = read_to(ctx, &taskrun, options).await?;
    emit_bytes(&shape(&output, Some(tail), None))?;
    Ok(end)
}

/// `workflow/NAME [TASK]` as a label selector of its TaskRuns; None for a
/// TaskRun.
fn workflow_selector(target: &str, task: Option<&str>) -> Result<Option<String>, CliError> {
    let (kind_part, name) = kind::split_type_name(target);
    let Some(name) = name else {
        return Ok(None);
    };
    let kind = kind::resolve(kind_part)?;
    if kind.kind != "Workflow" {
        return Ok(None);
    }
    let mut selector = format!("{WORKFLOW_LABEL}={name}");
    if let Some(task) = task {
        selector.push_str(&format!(",{TASK_LABEL}={task}"));
    }
    Ok(Some(selector))
}

/// The output of every TaskRun matching `selector`, by task, then attempt,
/// then creation.
async fn many(
    ctx: &Context,
    namespace: &str,
    selector: &str,
    args: &LogsArgs,
) -> anyhow::Result<()> {
    let params = ListParams {
        label_selector: selector.to_string(),
        ..ListParams::default()
    };
    let mut taskruns = ctx
        .client
        .list_all("TaskRun", namespace, &params)
        .await
        .map_err(|e| ctx.error(e))?
        .items;
    if taskruns.is_empty() {
        return Err(CliError::failed(format!("no taskruns match {selector}")).into());
    }
    taskruns.sort_by_key(|t| {
        (
            t.metadata
                .labels
                .get(TASK_LABEL)
                .cloned()
                .unwrap_or_default(),
            t.spec.get("attempt").and_then(serde_json::Value::as_i64),
            t.metadata.creation_timestamp,
        )
    });
    for taskrun in &taskruns {
        let name = &taskrun.metadata.name;
        let output = match read(ctx, taskrun, &dated(args)).await {
            Ok(output) => output,
            Err(e) => {
                eprintln!("{e}");
                continue;
            }
        };
        if args.prefix {
            emit_bytes(&shape(
                &output,
                args.tail,
                Some(&format!("[taskrun/{name}] ")),
            ))?;
        } else {
            emit_bytes(format!("==> taskrun/{name} <==\n").as_bytes())?;
            emit_bytes(&shape(&output, args.tail, None))?;
        }
    }
    Ok(())
}

/// The whole output written so far; a finished TaskRun's `status.logTail`
/// when its agent cannot serve it.
async fn read(
    ctx: &Context,
    taskrun: &DynamicObject,
    options: &LogOptions,
) -> Result<Vec<u8>, CliError> {
    Ok(read_to(ctx, taskrun, options).await?.0)
}

/// [`read`], and the offset in the plain output just after what it holds
/// (where a follow goes on).
async fn read_to(
    ctx: &Context,
    taskrun: &DynamicObject,
    options: &LogOptions,
) -> Result<(Vec<u8>, i64), CliError> {
    let name = &taskrun.metadata.name;
    let namespace = &taskrun.metadata.namespace;
    let plain_end = |output: Vec<u8>| {
        let end = i64::try_from(output.len()).unwrap_or(i64::MAX);
        (output, end)
    };
    let mut stream = match ctx.client.log_chunks(namespace, name, options).await {
        Ok(stream) => stream,
        Err(e) => return fallback(ctx, taskrun, e).map(plain_end),
    };
    let mut output = Vec::new();
    let mut end = options.offset;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                output.extend_from_slice(&chunk.data);
                end = chunk
                    .next_offset
                    .unwrap_or_else(|| end + i64::try_from(chunk.data.len()).unwrap_or(i64::MAX));
            }
            Err(e) if output.is_empty() => return fallback(ctx, taskrun, e).map(plain_end),
            Err(e) => return Err(CliError::failed(format!("reading the output: {e}"))),
        }
    }
    Ok((output, end))
}

/// The last `tail` lines (all when None), each after `prefix`.
fn shape(output: &[u8], tail: Option<usize>, prefix: Option<&str>) -> Vec<u8> {
    let lines: Vec<&[u8]> = output.split_inclusive(|b| *b == b'\n').collect();
    let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
    let mut out = Vec::with_capacity(output.len());
    for line in &lines[skip..] {
        if let Some(prefix) = prefix {
            out.extend_from_slice(prefix.as_bytes());
        }
        out.extend_from_slice(line);
    }
    if prefix.is_some() && !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

/// `NAME` or `taskrun/NAME` (any alias of TaskRun).
fn taskrun_name(arg: &str) -> Result<String, CliError> {
    let (kind, names) = match kind::split_type_name(arg) {
        (_, Some(_)) => kind::resolve_args(arg, &[])?,
        (name, None) => kind::resolve_args("taskrun", &[name.to_string()])?,
    };
    if kind.kind != "TaskRun" {
        return Err(CliError::usage(format!(
            "logs are kept for taskruns (and workflow/NAME), not for {}",
            kind.plural
        )));
    }
    Ok(names.into_iter().next().unwrap_or_default())
}

/// When the agent cannot serve the output of a finished TaskRun, its last
/// lines in `status.logTail`; otherwise the error.
fn fallback(ctx: &Context, taskrun: &DynamicObject, error: SdkError) -> Result<Vec<u8>, CliError> {
    let tail = status_text(taskrun, "logTail");
    if follow::is_terminal(follow::phase(taskrun)) && !tail.is_empty() {
        eprintln!(
            "warning: the agent cannot serve this output ({error}); \
             showing its last lines (status.logTail)"
        );
        let mut output = tail.as_bytes().to_vec();
        if !tail.ends_with('\n') {
            output.push(b'\n');
        }
        return Ok(output);
    }
    Err(ctx.error(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taskruns_are_named_plainly_or_with_their_kind() {
        assert_eq!(taskrun_name("run-x").expect("name"), "run-x");
        assert_eq!(taskrun_name("tr/run-x").expect("name"), "run-x");
        assert_eq!(taskrun_name("taskrun/run-x").expect("name"), "run-x");
        assert_eq!(
            taskrun_name("ag/x").expect_err("agent").code,
            crate::error::USAGE
        );
    }

    #[test]
    fn workflows_select_their_taskruns() {
        assert_eq!(
            workflow_selector("wf/build", Some("test")).expect("wf"),
            Some("sloth.dev/workflow=build,sloth.dev/task=test".to_string())
        );
        assert_eq!(
            workflow_selector("workflow/build", None).expect("wf"),
            Some("sloth.dev/workflow=build".to_string())
        );
        assert_eq!(workflow_selector("tr/x", None).expect("tr"), None);
        assert_eq!(workflow_selector("x", None).expect("plain"), None);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(shape(b"a\nb\nc\n", Some(2), None), b"b\nc\n");
        assert_eq!(shape(b"a\nb\nc", Some(1), None), b"c");
        assert_eq!(shape(b"a\nb\n", Some(0), None), b"");
        assert_eq!(shape(b"a\nb\n", None, None), b"a\nb\n");
        assert_eq!(shape(b"a\nb", Some(5), Some("> ")), b"> a\n> b\n");
    }
}
