//! `slothctl logs TASKRUN [-f]`: a TaskRun's output, as written so far, or
//! with `-f` as it is written until the TaskRun finishes.

use futures_util::StreamExt;
use sloth_sdk::Error as SdkError;

use super::Context;
use super::follow::{self, status_text};
use crate::cli::LogsArgs;
use crate::error::CliError;
use crate::kind;
use crate::printer::emit_bytes;

pub async fn run(ctx: &Context, args: LogsArgs) -> anyhow::Result<()> {
    let name = taskrun_name(&args.taskrun)?;
    let namespace = ctx.namespace.as_str();
    if args.follow {
        let mut told = false;
        follow::stream_output(ctx, namespace, &name, |taskrun| {
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
    let mut stream = match ctx.client.logs(namespace, &name, false, 0).await {
        Ok(stream) => stream,
        Err(e) => return fallback(ctx, &taskrun, e),
    };
    let mut printed = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                emit_bytes(&bytes)?;
                printed |= !bytes.is_empty();
            }
            Err(e) if !printed => return fallback(ctx, &taskrun, e),
            Err(e) => return Err(CliError::failed(format!("reading the output: {e}")).into()),
        }
    }
    Ok(())
}

/// `NAME` or `taskrun/NAME` (any alias of TaskRun).
fn taskrun_name(arg: &str) -> Result<String, CliError> {
    let (kind, names) = match kind::split_type_name(arg) {
        (_, Some(_)) => kind::resolve_args(arg, &[])?,
        (name, None) => kind::resolve_args("taskrun", &[name.to_string()])?,
    };
    if kind.kind != "TaskRun" {
        return Err(CliError::usage(format!(
            "logs are kept for taskruns only, not for {}",
            kind.plural
        )));
    }
    Ok(names.into_iter().next().unwrap_or_default())
}

/// When the agent cannot serve the output of a finished TaskRun, its last
/// lines in `status.logTail`; otherwise the error.
fn fallback(
    ctx: &Context,
    taskrun: &sloth_sdk::DynamicObject,
    error: SdkError,
) -> anyhow::Result<()> {
    let tail = status_text(taskrun, "logTail");
    if follow::is_terminal(follow::phase(taskrun)) && !tail.is_empty() {
        eprintln!(
            "warning: the agent cannot serve this output ({error}); \
             showing its last lines (status.logTail)"
        );
        emit_bytes(tail.as_bytes())?;
        if !tail.ends_with('\n') {
            emit_bytes(b"\n")?;
        }
        return Ok(());
    }
    Err(ctx.error(error).into())
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
            taskrun_name("wf/x").expect_err("workflow").code,
            crate::error::USAGE
        );
    }
}
