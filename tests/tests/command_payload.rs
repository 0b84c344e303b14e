//! `run: {command: [argv...]}`: a program executed directly by the agent,
//! with no shell: arguments reach it verbatim (nothing expanded or split),
//! its exit code is the TaskRun's, a timeout kills its whole process group,
//! `slothctl run` uses it when no shell is needed, and admission refuses an
//! empty argv naming the field.

use std::time::Duration;

use sloth_sdk::duration::Duration as SlothDuration;
use sloth_sdk::objects::{Payload, TaskRun, TaskRunPhase, TaskRunSpec};
use sloth_tests::{OneAgent, ctl, ctl_stdin, process_gone, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

fn command(name: &str, argv: &[&str]) -> TaskRun {
    let mut tr = TaskRun::new(
        name,
        TaskRunSpec {
            run: Payload {
                command: Some(argv.iter().map(|a| a.to_string()).collect()),
                ..Payload::default()
            },
            agent_name: Some("a1".into()),
            ..TaskRunSpec::default()
        },
    );
    tr.metadata.namespace = "default".into();
    tr
}

#[test]
fn slothctl_run_execs_the_words_verbatim_without_a_shell() {
    let c = OneAgent::start();
    let args = ["a  b", "$HOME", "it's", "*", "\"q\"", "$(id)", ""];
    let mut words = vec!["run", "--agent", "a1", "--", "/usr/bin/printf", "[%s]\\n"];
    words.extend(args);
    let run = ctl(&c.server, &words).ok();
    let expected: String = args.iter().map(|a| format!("[{a}]\n")).collect();
    assert_eq!(run.stdout, expected, "{run:#?}");
    // It ran as a command, not as a quoted shell script.
    let listed = ctl(&c.server, &["get", "taskruns", "-o", "json"])
        .ok()
        .json();
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{listed}");
    let run_spec = &items[0]["spec"]["run"];
    assert!(run_spec.get("shell").is_none(), "{run_spec}");
    assert_eq!(run_spec["command"][0], "/usr/bin/printf", "{run_spec}");
    assert_eq!(run_spec["command"][5], "*", "{run_spec}");
}

#[test]
fn the_programs_exit_code_is_the_taskruns_and_a_missing_program_is_127() {
    let c = OneAgent::start();
    ctl(
        &c.server,
        &["run", "--agent", "a1", "--", "/bin/sh", "-c", "exit 7"],
    )
    .code(7);
    c.rt.block_on(
        c.api()
            .create(&command("missing", &["/nonexistent/prog", "x"])),
    )
    .expect("create");
    let status = c.finished("missing").status_or_default();
    assert_eq!(status.phase, TaskRunPhase::Failed, "{status:#?}");
    assert_eq!(status.exit_code, Some(127), "{status:#?}");
    assert!(
        status
            .log_tail
            .as_deref()
            .is_some_and(|t| t.contains("/nonexistent/prog")),
        "{status:#?}"
    );
}

#[test]
fn a_timeout_kills_the_commands_whole_process_group() {
    let c = OneAgent::start();
    let mut tr = command(
        "slow",
        &["/bin/sh", "-c", "sleep 300 & echo $! > child.pid; wait"],
    );
    tr.spec.timeout = Some(SlothDuration::from_secs(1));
    c.rt.block_on(c.api().create(&tr)).expect("create");
    let status = c.finished("slow").status_or_default();
    assert_eq!(status.phase, TaskRunPhase::Failed, "{status:#?}");
    assert_eq!(status.reason, "TimedOut", "{status:#?}");
    let pid_file = c.agent.work_dir().join("default/slow/child.pid");
    let child: u32 = wait_until(DEADLINE, || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    })
    .expect("the background child's pid");
    assert!(
        wait_until(DEADLINE, || process_gone(child).then_some(())).is_some(),
        "background child {child} survived the timeout; agent log:\n{}",
        c.agent.log()
    );
}

#[test]
fn an_empty_or_mixed_command_is_refused_naming_the_field() {
    let c = OneAgent::start();
    let empty = "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata: {name: e}\n\
                 spec: {run: {command: []}}\n";
    let run = ctl_stdin(&c.server, &["apply", "-f", "-"], empty);
    assert_ne!(run.code, 0, "{run:#?}");
    assert!(run.stderr.contains("spec.run.command"), "{run:#?}");
    let mixed = "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata: {name: m}\n\
                 spec: {run: {command: [make], shell: make}}\n";
    let run = ctl_stdin(&c.server, &["apply", "-f", "-"], mixed);
    assert_ne!(run.code, 0, "{run:#?}");
    assert!(
        run.stderr
            .contains("spec.run: must set exactly one of shell, lua or command"),
        "{run:#?}"
    );
    let none = c.rt.block_on(c.api().list(&Default::default()));
    assert!(none.is_ok_and(|l| l.items.is_empty()), "nothing was stored");
}
