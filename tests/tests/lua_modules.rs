//! The infrastructure Lua modules on a real `sloth-agent`, against the real
//! tools of this machine: file_ops twice (the second run changes nothing),
//! check mode (reports, changes nothing; spec.checkMode and `slothctl apply
//! --check`), facts against /proc and `uname`, git against a local bare
//! repository, infra_test against a real HTTP server and port, pkg against
//! dpkg, metrics in the status, and the clear errors of docker and systemd
//! where they cannot run.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sloth_sdk::objects::{LuaPayload, Payload, TaskRun, TaskRunPhase, TaskRunSpec, TaskRunStatus};
use sloth_tests::{Agent, ApiServer, OneAgent, ctl, runtime, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

fn lua(script: &str) -> Payload {
    Payload {
        shell: None,
        lua: Some(LuaPayload {
            script: script.to_string(),
            ..LuaPayload::default()
        }),
        command: None,
    }
}

fn run(c: &OneAgent, name: &str, script: &str) -> TaskRunStatus {
    c.run(name, lua(script), Some(DEADLINE)).status_or_default()
}

/// Creates a TaskRun with `spec.checkMode: true` and waits until it finished.
fn run_checked(c: &OneAgent, name: &str, script: &str) -> TaskRunStatus {
    let api = c.api();
    let taskrun = TaskRun::new(
        name,
        TaskRunSpec {
            run: lua(script),
            agent_name: Some("a1".into()),
            check_mode: true,
            ..TaskRunSpec::default()
        },
    );
    c.rt.block_on(api.create(&taskrun)).expect("create");
    wait_until(DEADLINE, || {
        c.rt.block_on(api.get(name))
            .ok()
            .map(|t| t.status_or_default())
            .filter(|s| s.phase.is_terminal())
    })
    .unwrap_or_else(|| panic!("{name} never finished:\n{}", c.agent.log()))
}

fn succeeded(status: &TaskRunStatus) {
    assert_eq!(status.phase, TaskRunPhase::Succeeded, "{status:#?}");
}

/// Succeeded, with these results (among others).
fn assert_results(status: &TaskRunStatus, want: &[(&str, &str)]) {
    succeeded(status);
    for (key, value) in want {
        assert_eq!(
            status.results.get(*key).map(String::as_str),
            Some(*value),
            "result {key}: {status:#?}"
        );
    }
}

/// Failed, with a message holding every one of `parts`.
fn assert_failed_with(status: &TaskRunStatus, parts: &[&str]) {
    assert_eq!(status.phase, TaskRunPhase::Failed, "{status:#?}");
    for part in parts {
        assert!(
            status.message.contains(part),
            "{part:?} not in {}",
            status.message
        );
    }
}

/// The configuration steps: every `changed` flag, in order, as the result
/// `changes`.
fn configure(dir: &Path, port: &str) -> String {
    format!(
        r#"
        local d = "{dir}"
        local changes = {{}}
        local function note(r) changes[#changes + 1] = tostring(r.changed) end
        note(file_ops.mkdir(d .. "/etc"))
        note(file_ops.template(d .. "/app.conf.tpl", d .. "/etc/app.conf", {{port = {port}}}, {{mode = "0640"}}))
        note(file_ops.line_in_file(d .. "/hosts.conf", {{regexp = "^log=", line = "log=info"}}))
        note(file_ops.block_in_file(d .. "/hosts.conf", {{block = "a=1\nb=2"}}))
        note(file_ops.copy(d .. "/etc/app.conf", d .. "/app.conf.bak"))
        note(file_ops.remove(d .. "/old"))
        return true, "configured", {{changes = table.concat(changes, ",")}}
        "#,
        dir = dir.display()
    )
}

#[test]
fn file_ops_twice_then_check_mode_changes_nothing() {
    let c = OneAgent::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("app.conf.tpl"),
        "port={{ port }}\nlog=debug\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("hosts.conf"), "log=debug\n").expect("write");
    std::fs::write(dir.path().join("old"), "x").expect("write");
    let first = run(&c, "configure-1", &configure(dir.path(), "8080"));
    assert_results(&first, &[("changes", "true,true,true,true,true,true")]);
    let conf = dir.path().join("etc/app.conf");
    let written = std::fs::read_to_string(&conf).expect("read");
    assert_eq!(written, "port=8080\nlog=debug\n");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("hosts.conf")).expect("read"),
        "log=info\n# BEGIN SLOTH MANAGED BLOCK\na=1\nb=2\n# END SLOTH MANAGED BLOCK\n"
    );
    let second = run(&c, "configure-2", &configure(dir.path(), "8080"));
    succeeded(&second);
    assert_eq!(
        second.results["changes"],
        "false,false,false,false,false,false"
    );

    // Check mode with a new port: the template would change, nothing does.
    std::fs::write(dir.path().join("old"), "x").expect("write");
    let checked = run_checked(&c, "configure-check", &configure(dir.path(), "9090"));
    succeeded(&checked);
    assert_eq!(
        checked.results["changes"],
        "false,true,false,false,false,true"
    );
    assert_eq!(std::fs::read_to_string(&conf).expect("read"), written);
    assert!(dir.path().join("old").exists(), "check mode removed a file");
}

#[test]
fn this_check_mode_and_the_env_reach_lua_and_shell() {
    let c = OneAgent::start();
    let status = run_checked(
        &c,
        "flags",
        r#"local this = ...
           return true, "", {this = this.check_mode, env = exec.run("echo -n $SLOTH_CHECK_MODE").stdout}"#,
    );
    assert_results(&status, &[("this", "true"), ("env", "1")]);
    let plain = run(
        &c,
        "flags-off",
        r#"local this = ...
           return true, "", {this = this.check_mode, env = exec.run("echo -n ${SLOTH_CHECK_MODE:-unset}").stdout}"#,
    );
    assert_eq!(plain.results["this"], "false");
    assert_eq!(plain.results["env"], "unset");
}

/// Writes `manifest` to a file, applies it with `slothctl apply --check`
/// and waits until TaskRun `taskrun` finished.
fn apply_checked(server: &ApiServer, agent: &Agent, manifest: &str, taskrun: &str) -> TaskRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("manifest.yaml");
    std::fs::write(&file, manifest).expect("write");
    ctl(server, &["apply", "--check", "-f", &file.to_string_lossy()]).ok();
    let rt = runtime();
    let client = server.client_in(&rt);
    let api = sloth_sdk::Api::<TaskRunSpec>::namespaced(client, "default");
    wait_until(DEADLINE, || {
        rt.block_on(api.get(taskrun))
            .ok()
            .filter(|t| t.status_or_default().phase.is_terminal())
    })
    .unwrap_or_else(|| panic!("never finished:\n{}\n{}", agent.log(), server.log()))
}

/// Applies, with `slothctl apply --check`, the manifest `manifest(target)`
/// makes (a Lua task writing `target`) on a server started with
/// `server_args` and agent `a1`; returns the TaskRun `taskrun` once it
/// finished, after checking the file was not written.
fn apply_a_write_checked(
    server_args: &[&str],
    manifest: impl Fn(&str) -> String,
    taskrun: &str,
) -> TaskRun {
    let server = ApiServer::start_with(server_args);
    let agent = Agent::start(&server, "a1", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("made.txt");
    let manifest = manifest(&target.display().to_string());
    let taskrun = apply_checked(&server, &agent, &manifest, taskrun);
    assert!(!target.exists(), "check mode wrote the file");
    taskrun
}

/// The Lua lines of a task that writes `target` and returns what
/// `file_ops.write` said, indented by `indent` spaces.
fn write_script(target: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    format!(
        "{pad}local r = file_ops.write(\"{target}\", \"x\")\n{pad}return true, \"\", {{changed = r.changed, check = r.check_mode}}\n"
    )
}

#[test]
fn slothctl_apply_check_sets_check_mode() {
    let taskrun = apply_a_write_checked(
        &[],
        |target| {
            format!(
                "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata:\n  name: write-file\nspec:\n  agentName: a1\n  run:\n    lua:\n      script: |\n{}",
                write_script(target, 8)
            )
        },
        "write-file",
    );
    assert!(taskrun.spec.check_mode);
    let status = taskrun.status_or_default();
    assert_results(&status, &[("changed", "true"), ("check", "true")]);
}

#[test]
fn slothctl_apply_check_passes_check_mode_through_a_workflow() {
    let taskrun = apply_a_write_checked(
        &["--controllers"],
        |target| {
            format!(
                "apiVersion: sloth.dev/v1\nkind: Workflow\nmetadata:\n  name: dry\nspec:\n  tasks:\n  - name: write\n    run:\n      lua:\n        script: |\n{}",
                write_script(target, 10)
            )
        },
        "dry-write-1",
    );
    assert!(
        taskrun.spec.check_mode,
        "the workflow's TaskRun is not in check mode"
    );
    let status = taskrun.status_or_default();
    assert_results(&status, &[("check", "true")]);
}

fn command_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn facts_match_proc_and_uname() {
    let c = OneAgent::start();
    let status = run(
        &c,
        "facts",
        r#"local f = facts.all()
           return true, "", {hostname = f.hostname, kernel = f.kernel.release, arch = f.arch,
                             cpus = f.cpus.count, memory = f.memory.total, os = f.os.id}"#,
    );
    assert_results(
        &status,
        &[
            ("hostname", &command_output("uname", &["-n"])),
            ("kernel", &command_output("uname", &["-r"])),
            ("arch", &command_output("uname", &["-m"])),
        ],
    );
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .expect("cpuinfo")
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(status.results["cpus"], cpus.to_string());
    let total_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .expect("meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("MemTotal");
    assert_eq!(status.results["memory"], (total_kb * 1024).to_string());
    let id = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("ID=")
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default();
    assert_eq!(status.results["os"], id);
}

fn sh(dir: &Path, script: &str) {
    let status = Command::new("bash")
        .args(["-ec", script])
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .status()
        .expect("bash");
    assert!(status.success(), "{script}");
}

/// The commit the `work` checkout under `dir` is at.
fn work_head(dir: &Path) -> String {
    let work = dir.join("work");
    command_output("git", &["-C", &work.to_string_lossy(), "rev-parse", "HEAD"])
}

#[test]
fn git_clones_pulls_and_reports_against_a_local_bare_repository() {
    let c = OneAgent::start();
    let dir = tempfile::tempdir().expect("tempdir");
    sh(
        dir.path(),
        "git init -q --bare -b main origin.git
         git clone -q origin.git work 2>/dev/null
         cd work && git checkout -q -b main && echo one > f && git add f && git commit -qm one
         git push -q origin main",
    );
    let script = format!(
        r#"local d = "{}"
           local c = git.clone(d .. "/origin.git", d .. "/clone", {{branch = "main", depth = 1}})
           local again = git.clone(d .. "/origin.git", d .. "/clone")
           return true, "", {{first = c.changed, second = again.changed, commit = git.current_commit(d .. "/clone"),
                             subject = git.log(d .. "/clone")[1].subject, clean = git.status(d .. "/clone").clean}}"#,
        dir.path().display()
    );
    let status = run(&c, "git-clone", &script);
    succeeded(&status);
    let head = work_head(dir.path());
    assert_eq!(status.results["first"], "true");
    assert_eq!(status.results["second"], "false");
    assert_eq!(status.results["commit"], head);
    assert_eq!(status.results["subject"], "one");
    assert_eq!(status.results["clean"], "true");

    sh(
        dir.path(),
        "cd work && echo two > f && git commit -qam two && git push -q origin main",
    );
    let pull = format!(
        r#"local d = "{}/clone"
           local p = git.pull(d)
           return true, "", {{changed = p.changed, commit = p.commit, again = git.pull(d).changed}}"#,
        dir.path().display()
    );
    let status = run(&c, "git-pull", &pull);
    succeeded(&status);
    let head = work_head(dir.path());
    assert_eq!(status.results["changed"], "true");
    assert_eq!(status.results["commit"], head);
    assert_eq!(status.results["again"], "false");
}

/// A loopback HTTP server answering "hello sloth"; its port.
fn http_server() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\nhello sloth",
            );
        }
    });
    port
}

#[test]
fn infra_test_passes_against_a_real_server_and_lists_every_failure() {
    let c = OneAgent::start();
    let port = http_server();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let good = format!(
        r#"infra_test.port_is_listening({port})
           infra_test.http_status("http://127.0.0.1:{port}/", 200)
           infra_test.http_contains("http://127.0.0.1:{port}/", "sloth")
           infra_test.port_is_closed({free})
           infra_test.package_is_installed("bash")
           infra_test.command_succeeds("true")
           return true, "all good""#
    );
    let status = run(&c, "infra-good", &good);
    succeeded(&status);
    assert_eq!(status.message, "all good");

    let bad = format!(
        r#"infra_test.port_is_listening({free})
           infra_test.http_contains("http://127.0.0.1:{port}/", "apache")
           infra_test.file_exists("/nonexistent/sloth")
           infra_test.package_is_installed("no-such-package-sloth")
           print("after the assertions")
           return true, "would be fine""#
    );
    let status = run(&c, "infra-bad", &bad);
    assert_failed_with(&status, &[]);
    let message = &status.message;
    assert!(
        message.starts_with("4 infra_test assertions failed:"),
        "{message}"
    );
    for want in [
        &format!("- infra_test.port_is_listening: nothing accepts connections on 127.0.0.1:{free}"),
        "- infra_test.http_contains: GET http://127.0.0.1:",
        "- infra_test.file_exists: /nonexistent/sloth does not exist",
        "- infra_test.package_is_installed: no-such-package-sloth is not installed (apt)",
    ] {
        assert!(message.contains(want), "{want}\n{message}");
    }
    assert!(
        status
            .log_tail
            .unwrap_or_default()
            .contains("after the assertions")
    );
}

#[test]
fn pkg_answers_as_dpkg_does_and_check_mode_shows_the_command() {
    if Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("no dpkg-query on this machine: skipped");
        return;
    }
    let c = OneAgent::start();
    let status = run(
        &c,
        "pkg",
        r#"return true, "", {manager = pkg.manager(), bash = pkg.is_installed("bash"),
                             version = pkg.version("bash"), none = pkg.is_installed("no-such-package-sloth")}"#,
    );
    let version = command_output("dpkg-query", &["-W", "-f=${Version}", "bash"]);
    assert_results(
        &status,
        &[
            ("manager", "apt"),
            ("bash", "true"),
            ("none", "false"),
            ("version", &version),
        ],
    );
    let checked = run_checked(
        &c,
        "pkg-check",
        r#"local r = pkg.install({"bash", "no-such-package-sloth"})
           local same = pkg.install("bash")
           return true, "", {changed = r.changed, command = r.commands[1], same = same.changed}"#,
    );
    assert_results(
        &checked,
        &[
            ("changed", "true"),
            ("same", "false"),
            (
                "command",
                "env DEBIAN_FRONTEND=noninteractive apt-get install -y no-such-package-sloth",
            ),
        ],
    );
}

#[test]
fn docker_and_systemd_fail_clearly_where_they_cannot_run() {
    let c = OneAgent::start();
    let docker = run(
        &c,
        "docker-missing",
        r#"env.set("PATH", "/nonexistent")
           docker.pull("alpine:3")"#,
    );
    assert_failed_with(
        &docker,
        &[
            "docker.pull: docker is not installed (not found on PATH); the command was: docker pull alpine:3",
        ],
    );
    if Path::new("/run/systemd/system").is_dir() {
        return;
    }
    let systemd = run(&c, "systemd-missing", r#"systemd.restart("web.service")"#);
    assert_failed_with(
        &systemd,
        &[
            "systemd.restart: ",
            "the command was: systemctl restart web.service",
        ],
    );
    let checked = run_checked(
        &c,
        "systemd-check",
        r#"return true, "", {start = systemd.start("web.service").command,
                             run = docker.run("nginx:1", {detach = true, name = "web", ports = {"8080:80"}}).command}"#,
    );
    assert_results(
        &checked,
        &[
            ("start", "systemctl start web.service"),
            ("run", "docker run -d --name web -p 8080:80 nginx:1"),
        ],
    );
}

#[test]
fn metrics_appear_in_the_status() {
    let c = OneAgent::start();
    let status = run(
        &c,
        "metrics",
        r#"metrics.gauge("queue.depth", 7)
           metrics.counter("files", 2)
           metrics.counter("files")
           return true"#,
    );
    succeeded(&status);
    assert_eq!(status.metrics.get("queue.depth"), Some(&7.0));
    assert_eq!(status.metrics.get("files"), Some(&3.0));
    assert_eq!(status.metrics.len(), 2);
}
