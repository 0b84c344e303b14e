//! `slothctl run (--agent NAME | -l SELECTOR) -- COMMAND [ARG...]`: creates
//! an ad-hoc TaskRun, streams its output as it runs and exits with its exit
//! code.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sloth_sdk::duration::Duration;
use sloth_sdk::objects::{
    LabelSelector, LabelSelectorRequirement, Payload, SelectorOperator, TaskRunSpec,
};
use sloth_sdk::selector::Labels;
use sloth_sdk::{API_VERSION, DynamicObject, Error as SdkError};

use super::Context;
use super::follow::{self, status_text};
use super::output_sink::Sink;
use crate::cli::RunArgs;
use crate::error::CliError;

/// The prefix of the names of ad-hoc TaskRuns.
const GENERATE_NAME: &str = "run-";
/// Exit code after Ctrl-C, as shells report SIGINT.
const INTERRUPTED: u8 = 130;

pub(crate) async fn run(ctx: &Context, args: RunArgs) -> anyhow::Result<()> {
    run_with(ctx, args, Sink::default()).await
}

/// [`run`] printing the output through `sink`: the command's stdout on
/// stdout and its stderr on stderr.
pub(crate) async fn run_with(ctx: &Context, args: RunArgs, sink: Sink) -> anyhow::Result<()> {
    let mut spec = spec(&args)?;
    if let Some(dir) = &args.workspace {
        spec.workspace = Some(super::workspace::upload_dir(ctx, dir).await?);
    }
    if let Some(agent) = &args.agent {
        match ctx.client.get("Agent", "", agent).await {
            Ok(_) => {}
            Err(SdkError::NotFound(_)) => {
                return Err(CliError::failed(format!("agent {agent:?} not found")).into());
            }
            Err(e) => return Err(ctx.error(e).into()),
        }
    }
    let object = json!({
        "apiVersion": API_VERSION,
        "kind": "TaskRun",
        "metadata": {"generateName": GENERATE_NAME, "namespace": ctx.namespace},
        "spec": serde_json::to_value(&spec)
            .map_err(|e| CliError::failed(format!("cannot encode the TaskRun: {e}")))?,
    });
    let created = ctx
        .client
        .create(&object)
        .await
        .map_err(|e| ctx.error(e).with_context("error when creating the TaskRun"))?;
    let name = created.metadata.name.clone();
    eprintln!("taskrun/{name} created");

    let mut told_unschedulable = false;
    let options = follow::OutputOptions {
        sink: Sink {
            split_streams: true,
            ..sink
        },
        ..follow::OutputOptions::default()
    };
    let streamed = follow::stream_output(ctx, &ctx.namespace, &name, options, |taskrun| {
        if !told_unschedulable && let Some(message) = follow::unschedulable_message(taskrun) {
            eprintln!("taskrun/{name} is waiting for an agent: Unschedulable: {message}");
            told_unschedulable = true;
        }
    });
    let taskrun = tokio::select! {
        taskrun = streamed => taskrun?,
        Ok(()) = tokio::signal::ctrl_c() => {
            eprintln!(
                "\ninterrupted: taskrun/{name} goes on; \
                 `slothctl logs -f {name}` follows it, `slothctl delete taskrun {name}` stops it"
            );
            return Err(CliError::reported(INTERRUPTED).into());
        }
    };
    match outcome(&taskrun) {
        Outcome::Exit(0) => Ok(()),
        Outcome::Exit(code) => Err(CliError::reported(code).into()),
        Outcome::Failed(message) => Err(CliError::failed(message).into()),
    }
}

/// The TaskRun spec the flags describe; invalid input is a usage error.
pub(crate) fn spec(args: &RunArgs) -> Result<TaskRunSpec, CliError> {
    let timeout = args
        .timeout
        .as_deref()
        .map(|t| {
            t.parse::<Duration>()
                .map_err(|e| CliError::usage(format!("--timeout: {e}")))
        })
        .transpose()?;
    let mut env = BTreeMap::new();
    for pair in &args.env {
        match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                env.insert(key.to_string(), value.to_string());
            }
            _ => return Err(CliError::usage(format!("--env {pair:?}: expected K=V"))),
        }
    }
    let agent_selector = args.selector.as_deref().map(agent_selector).transpose()?;
    if let Some(agent) = &args.agent
        && agent.trim().is_empty()
    {
        return Err(CliError::usage("--agent: the agent name is empty"));
    }
    if args.command.iter().all(|w| w.trim().is_empty()) {
        return Err(CliError::usage(
            "no command given: run ... -- COMMAND [ARG...]",
        ));
    }
    Ok(TaskRunSpec {
        run: payload(&args.command),
        agent_selector,
        agent_name: args.agent.clone(),
        timeout,
        env: env.into(),
        workdir: args.workdir.clone().filter(|w| !w.is_empty()),
        ..TaskRunSpec::default()
    })
}

/// The payload for a command line: the words executed directly
/// (`run.command`, no shell started) when a shell would only have run them
/// as a program and its arguments; a shell script otherwise (one word with
/// shell syntax, or a shell builtin or keyword as the program).
pub(crate) fn payload(words: &[String]) -> Payload {
    if needs_shell(words) {
        Payload {
            shell: Some(shell_command(words)),
            ..Payload::default()
        }
    } else {
        Payload {
            command: Some(words.to_vec()),
            ..Payload::default()
        }
    }
}

/// Bash builtins that are no program on `PATH` (or behave differently from
/// it), so they need the shell; `true` and `false` are programs too.
const BUILTINS: &[&str] = &[
    ".",
    ":",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "cd",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "[",
    "times",
    "trap",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
];

/// Whether `words` mean something to bash beyond "run this program with
/// these arguments": one word that is not a plain program name (it is a
/// script), or a program that is a builtin, a keyword or an assignment.
fn needs_shell(words: &[String]) -> bool {
    let Some(program) = words.first() else {
        return true;
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:,+@%^".contains(c);
    let script = words.len() == 1 && !program.chars().all(plain);
    script
        || program.is_empty()
        || program.contains('=')
        || RESERVED.contains(&program.as_str())
        || BUILTINS.contains(&program.as_str())
}

/// The shell script for a command line: one word is a script as it stands
/// (`run -- 'make && make test'`); several words are a command and its
/// arguments, each quoted so that the program receives exactly these words
/// (`run -- sh -c 'echo hi; exit 3'`).
pub(crate) fn shell_command(words: &[String]) -> String {
    match words {
        [script] => script.clone(),
        _ => words
            .iter()
            .enumerate()
            .map(|(i, w)| quote(w, i == 0))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Bash words that mean something else in command position.
const RESERVED: &[&str] = &[
    "case", "coproc", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if", "in",
    "select", "then", "time", "until", "while",
];

/// One word quoted for bash: plain words stay as they are, others go in
/// single quotes (a quote inside becomes `'\''`). In command position a word
/// with `=` (an assignment to bash) or a reserved word is quoted too.
fn quote(word: &str, command: bool) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:,+@%^".contains(c);
    let safe = !word.is_empty()
        && word.chars().all(|c| plain(c) || (c == '=' && !command))
        && !(command && RESERVED.contains(&word));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A label selector as `spec.agentSelector`: `k=v` terms become matchLabels,
/// the others matchExpressions (`k!=v` is `NotIn [v]`, as in Kubernetes).
pub(crate) fn agent_selector(text: &str) -> Result<LabelSelector, CliError> {
    let labels = Labels::parse(text).map_err(|e| CliError::usage(format!("-l: {e}")))?;
    let mut selector = LabelSelector::default();
    let canonical = labels.to_string();
    for term in split_terms(&canonical) {
        let requirement = |key: &str, operator, values: Vec<String>| LabelSelectorRequirement {
            key: key.to_string(),
            operator,
            values,
        };
        let set = |rest: &str| -> Result<Vec<String>, CliError> {
            let values: Vec<String> = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect();
            if values.is_empty() {
                return Err(CliError::usage(format!(
                    "-l {text:?}: {term:?} needs at least one value"
                )));
            }
            Ok(values)
        };
        let expression = if let Some(key) = term.strip_prefix('!') {
            requirement(key, SelectorOperator::DoesNotExist, Vec::new())
        } else if let Some((key, rest)) = term.split_once(" notin ") {
            requirement(key, SelectorOperator::NotIn, set(rest)?)
        } else if let Some((key, rest)) = term.split_once(" in ") {
            requirement(key, SelectorOperator::In, set(rest)?)
        } else if let Some((key, value)) = term.split_once("!=") {
            requirement(key, SelectorOperator::NotIn, vec![value.to_string()])
        } else if let Some((key, value)) = term.split_once('=') {
            match selector.match_labels.get(key) {
                // A second value for one key cannot be a match label.
                Some(v) if v != value => {
                    requirement(key, SelectorOperator::In, vec![value.to_string()])
                }
                _ => {
                    selector
                        .match_labels
                        .insert(key.to_string(), value.to_string());
                    continue;
                }
            }
        } else if !term.is_empty() && !term.contains([' ', '(', ')']) {
            requirement(term, SelectorOperator::Exists, Vec::new())
        } else {
            return Err(CliError::usage(format!(
                "-l {text:?}: cannot turn {term:?} into an agent selector"
            )));
        };
        selector.match_expressions.push(expression);
    }
    Ok(selector)
}

/// Splits a selector on the commas outside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms.into_iter().filter(|t| !t.is_empty()).collect()
}

/// How a finished TaskRun ends `slothctl run`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Exit with this code, the command's own.
    Exit(u8),
    /// Exit 1 after printing `error: ` and this.
    Failed(String),
}

/// Reasons for which Sloth, not the command, ended a TaskRun: an exit code
/// that comes with them (143 after SIGTERM, say) is not the command's own.
const STOPPED_REASONS: &[&str] = &[
    "TimedOut",
    "AgentLost",
    "AgentRestarted",
    "Unschedulable",
    "Killed",
    "Cancelled",
    "Deleted",
];

/// Succeeded: 0; Failed with the command's exit code: that code; Failed
/// otherwise (timed out, agent lost, ...): a message naming the reason.
pub(crate) fn outcome(taskrun: &DynamicObject) -> Outcome {
    let name = &taskrun.metadata.name;
    let phase = follow::phase(taskrun);
    let exit_code = taskrun.status.get("exitCode").and_then(Value::as_i64);
    if phase == "Succeeded" {
        return Outcome::Exit(0);
    }
    let reason = status_text(taskrun, "reason");
    if let Some(code) = exit_code.and_then(|c| u8::try_from(c).ok())
        && code != 0
        && phase == "Failed"
        && !STOPPED_REASONS.contains(&reason)
    {
        return Outcome::Exit(code);
    }
    let message = status_text(taskrun, "message");
    let mut text = format!("taskrun {name} failed");
    for part in [reason, message] {
        if !part.is_empty() {
            text.push_str(": ");
            text.push_str(part);
        }
    }
    if let Some(code) = exit_code
        && reason.is_empty()
        && message.is_empty()
    {
        text.push_str(&format!(": exit code {code}"));
    }
    if phase != "Failed" {
        text = format!("taskrun {name} ended in phase {phase}");
    }
    Outcome::Failed(text)
}

/// The exit code for an outcome (for tests and documentation).
#[cfg(test)]
fn exit_code(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Exit(code) => *code,
        Outcome::Failed(_) => crate::error::FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error;
    use clap::Parser;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_commands_run_without_a_shell_scripts_and_builtins_with_one() {
        let run = |w: &[&str]| payload(&words(w));
        assert_eq!(
            run(&["printf-x", "a b", "$HOME", "*"]).command,
            Some(words(&["printf-x", "a b", "$HOME", "*"]))
        );
        assert_eq!(run(&["make"]).command, Some(words(&["make"])));
        assert_eq!(run(&["true"]).command, Some(words(&["true"])));
        assert_eq!(
            run(&["/usr/bin/env", "A=1"]).command,
            Some(words(&["/usr/bin/env", "A=1"]))
        );
        for shell in [
            &["make && make test"][..],
            &["echo hi; exit 3"],
            &["cd", "/tmp"],
            &["exit", "3"],
            &["FOO=1", "env"],
            &["time", "ls"],
            &["echo", "hi"],
            &["ls *.txt"],
        ] {
            let p = run(shell);
            assert_eq!(p.command, None, "{shell:?}");
            assert_eq!(
                p.shell.as_deref(),
                Some(shell_command(&words(shell)).as_str())
            );
        }
    }

    #[test]
    fn several_words_are_quoted_one_word_is_a_script() {
        assert_eq!(
            shell_command(&words(&["sh", "-c", "echo hi; exit 3"])),
            "sh -c 'echo hi; exit 3'"
        );
        assert_eq!(
            shell_command(&words(&["echo hi && date"])),
            "echo hi && date"
        );
        assert_eq!(
            shell_command(&words(&["printf", "%s\\n", "it's", "", "a=b", "$HOME"])),
            r"printf '%s\n' 'it'\''s' '' a=b '$HOME'"
        );
        assert_eq!(
            shell_command(&words(&["FOO=1", "env"])),
            "'FOO=1' env",
            "not an assignment"
        );
        assert_eq!(
            shell_command(&words(&["time", "ls", "-la"])),
            "'time' ls -la"
        );
        assert_eq!(
            shell_command(&words(&["ls", "*.txt", "~", "a b"])),
            "ls '*.txt' '~' 'a b'"
        );
    }

    #[test]
    fn quoted_words_reach_the_program_unchanged() {
        let args = [
            "x",
            "it's",
            "",
            " a  b ",
            "$(id)",
            "\\",
            "\"q\"",
            "tab\there",
            "*",
        ];
        let mut all = vec!["printf".to_string(), "[%s]\\n".to_string()];
        all.extend(words(&args));
        let out = std::process::Command::new("bash")
            .args(["-c", &shell_command(&all)])
            .output()
            .expect("bash");
        let expected: String = args.iter().map(|a| format!("[{a}]\n")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }

    fn requirement(
        key: &str,
        operator: SelectorOperator,
        values: &[&str],
    ) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator,
            values: words(values),
        }
    }

    #[test]
    fn selectors_become_match_labels_and_expressions() {
        let s = agent_selector("gpu=true,zone in (a, b),tier!=db,ssd,!spot,os notin (win)")
            .expect("selector");
        assert_eq!(
            s.match_labels,
            BTreeMap::from([("gpu".to_string(), "true".to_string())])
        );
        assert_eq!(
            s.match_expressions,
            [
                requirement("zone", SelectorOperator::In, &["a", "b"]),
                requirement("tier", SelectorOperator::NotIn, &["db"]),
                requirement("ssd", SelectorOperator::Exists, &[]),
                requirement("spot", SelectorOperator::DoesNotExist, &[]),
                requirement("os", SelectorOperator::NotIn, &["win"]),
            ]
        );
        let s = agent_selector("a==1,b=2,a=3").expect("selector");
        assert_eq!(s.match_labels.len(), 2);
        assert_eq!(
            s.match_expressions,
            [requirement("a", SelectorOperator::In, &["3"])]
        );
        // What the selector means is kept.
        for text in ["gpu=true,zone in (a,b),tier!=db,ssd,!spot", "a=1,a=3"] {
            let s = agent_selector(text).expect("selector");
            let back = Labels::from_selector(&s);
            for labels in [
                &[("gpu", "true"), ("zone", "a"), ("ssd", "")][..],
                &[("gpu", "true"), ("zone", "c"), ("ssd", "")],
                &[("a", "1")],
                &[],
            ] {
                let labels: BTreeMap<String, String> = labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let direct = Labels::parse(text).expect("parse");
                assert_eq!(
                    back.matches(&labels),
                    direct.matches(&labels),
                    "{text} {labels:?}"
                );
            }
        }
        for bad in ["gpu in (", "=x", "a b", "zone in ()"] {
            let e = agent_selector(bad).expect_err(bad);
            assert_eq!(e.code, error::USAGE, "{bad}");
        }
    }

    fn taskrun(status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "kind": "TaskRun", "metadata": {"name": "run-x"},
            "spec": {"run": {"shell": "true"}}, "status": status
        }))
        .expect("object")
    }

    #[test]
    fn exit_codes_follow_the_taskrun() {
        let cases = [
            (json!({"phase": "Succeeded", "exitCode": 0}), 0, None),
            (json!({"phase": "Succeeded"}), 0, None),
            (
                json!({"phase": "Failed", "exitCode": 3, "reason": "Error"}),
                3,
                None,
            ),
            (json!({"phase": "Failed", "exitCode": 255}), 255, None),
            (
                json!({"phase": "Failed", "reason": "TimedOut", "message": "killed after 1s"}),
                1,
                Some("taskrun run-x failed: TimedOut: killed after 1s"),
            ),
            (
                json!({"phase": "Failed", "reason": "TimedOut", "exitCode": 143,
                       "message": "timed out after 1s"}),
                1,
                Some("taskrun run-x failed: TimedOut: timed out after 1s"),
            ),
            (
                json!({"phase": "Failed", "reason": "AgentLost"}),
                1,
                Some("taskrun run-x failed: AgentLost"),
            ),
            (
                json!({"phase": "Failed", "exitCode": 0}),
                1,
                Some("taskrun run-x failed: exit code 0"),
            ),
            (
                json!({"phase": "Failed", "exitCode": -9}),
                1,
                Some("taskrun run-x failed: exit code -9"),
            ),
        ];
        for (status, code, message) in cases {
            let outcome = outcome(&taskrun(status.clone()));
            assert_eq!(exit_code(&outcome), code, "{status}");
            match (&outcome, message) {
                (Outcome::Failed(text), Some(m)) => assert_eq!(text, m),
                (Outcome::Exit(_), None) => {}
                _ => panic!("{status}: {outcome:?}"),
            }
        }
    }

    #[test]
    fn flags_become_the_spec() {
        let cli = crate::cli::Cli::try_parse_from([
            "slothctl",
            "run",
            "--agent",
            "a1",
            "--timeout",
            "1m30s",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "--workdir",
            "/tmp",
            "--",
            "sh",
            "-c",
            "echo hi; exit 3",
        ])
        .expect("parse");
        let crate::cli::Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let spec = super::spec(&args).expect("spec");
        assert_eq!(
            spec.run.command,
            Some(words(&["sh", "-c", "echo hi; exit 3"])),
            "a program and its arguments run without a shell"
        );
        assert_eq!(spec.agent_name.as_deref(), Some("a1"));
        assert_eq!(spec.timeout, Some(Duration::from_secs(90)));
        assert_eq!(spec.env["B"], "x=y");
        assert_eq!(spec.workdir.as_deref(), Some("/tmp"));

        let parse = |argv: &[&str]| {
            let mut all = vec!["slothctl", "run"];
            all.extend(argv);
            crate::cli::Cli::try_parse_from(all).map(|cli| match cli.command {
                crate::cli::Command::Run(args) => args,
                _ => panic!("not run"),
            })
        };
        // Without `--` too, and flags of the command stay the command's.
        let args = parse(&["-l", "gpu=true", "ls", "-la", "--agent", "x"]).expect("parse");
        assert_eq!(args.command, ["ls", "-la", "--agent", "x"]);
        assert_eq!(args.agent, None);
        assert!(parse(&["--agent", "a", "-l", "x=y", "--", "true"]).is_err());
        assert!(parse(&["--", "true"]).is_err(), "no target");
        assert!(parse(&["--agent", "a"]).is_err(), "no command");
        for bad in [
            &["--agent", "a", "--timeout", "soon", "--", "true"][..],
            &["--agent", "a", "--env", "NOVALUE", "--", "true"],
            &["-l", "a in (", "--", "true"],
        ] {
            let e = super::spec(&parse(bad).expect("parse")).expect_err("invalid");
            assert_eq!(e.code, error::USAGE, "{bad:?}");
        }
    }
}
