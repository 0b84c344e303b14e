//! Secrets end to end, with real processes over mutual TLS and tokens:
//! values are encrypted at rest (embedded file, etcd's data), admins read
//! them back, viewers see key names only, an agent reads only the Secrets
//! its own unfinished TaskRuns reference; env, envFrom, files and Lua get
//! the values and every output shows `***` instead; keys rotate; a missing
//! Secret or key fails the run before it starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sloth_sdk::objects::secret::{decode, encode};
use sloth_tests::{Agent, ApiServer, Etcd, Run, ctl_bare, wait_until};

/// The value delivered; no output, log or stored byte may hold it.
const PW: &str = "Pw-7f3a9c1e-hunter";
const USER: &str = "dbuser-51b2e";

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const VIEWER_TOKEN: &str = "viewer-token-0123456789abcdef";
const A1_TOKEN: &str = "agent-a1-token-0123456789abcdef";
const A2_TOKEN: &str = "agent-a2-token-0123456789abcdef";

const DEADLINE: Duration = Duration::from_secs(60);

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `slothctl ARGS` with a temporary HOME (no config file).
fn slothctl(args: &[&str], input: Option<&str>) -> Run {
    ctl_bare(args, input)
}

/// Every byte under `dir`, file by file.
fn raw_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Asserts that neither `value` nor its base64 is in any file under `dir`.
fn assert_absent_from_files(dir: &Path, value: &str) {
    let b64 = encode(value.as_bytes());
    let files = raw_files(dir);
    assert!(!files.is_empty(), "no files under {}", dir.display());
    for (file, bytes) in files {
        for form in [value, b64.as_str()] {
            assert!(
                !contains(&bytes, form),
                "{form:?} is in the raw bytes of {}",
                file.display()
            );
        }
    }
}

fn assert_absent(what: &str, text: &str) {
    for form in [PW.to_string(), encode(PW.as_bytes()), USER.to_string()] {
        assert!(!text.contains(&form), "{form:?} is in {what}:\n{text}");
    }
}

/// The mutual-TLS cluster: CA, server and agent certificates, tokens.
struct Tls {
    _temp: tempfile::TempDir,
    certs: PathBuf,
    tokens: PathBuf,
    audit: PathBuf,
}

impl Tls {
    fn new() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let certs = temp.path().join("certs");
        let dir = path(&certs).to_string();
        slothctl(
            &["certs", "init", "--dir", &dir, "--hosts", "127.0.0.1"],
            None,
        )
        .ok();
        for name in ["agent:a1", "agent:a2"] {
            slothctl(&["certs", "issue", "--dir", &dir, "--name", name], None).ok();
        }
        let tokens = temp.path().join("tokens.csv");
        std::fs::write(
            &tokens,
            format!(
                "{ADMIN_TOKEN},alice,admin\n{VIEWER_TOKEN},vic,viewer\n\
                 {A1_TOKEN},agent:a1,agent\n{A2_TOKEN},agent:a2,agent\n"
            ),
        )
        .expect("write tokens");
        let audit = temp.path().join("audit.log");
        Self {
            _temp: temp,
            certs,
            tokens,
            audit,
        }
    }

    fn file(&self, name: &str) -> String {
        path(&self.certs.join(name)).to_string()
    }

    fn server_args(&self) -> Vec<String> {
        vec![
            "--controllers".into(),
            "--tls-cert-file".into(),
            self.file("server.pem"),
            "--tls-key-file".into(),
            self.file("server-key.pem"),
            "--tls-ca-file".into(),
            self.file("ca.pem"),
            "--token-file".into(),
            path(&self.tokens).into(),
            "--audit-log".into(),
            path(&self.audit).into(),
        ]
    }

    /// `--ca-file --cert-file --key-file` of certificate `stem`.
    fn client_flags(&self, stem: &str) -> Vec<String> {
        vec![
            "--ca-file".into(),
            self.file("ca.pem"),
            "--cert-file".into(),
            self.file(&format!("{stem}.pem")),
            "--key-file".into(),
            self.file(&format!("{stem}-key.pem")),
        ]
    }
}

/// slothctl over mutual TLS (the `client` certificate) with `token`.
fn as_user(server: &str, tls: &Tls, token: &str, args: &[&str], input: Option<&str>) -> Run {
    let mut all: Vec<String> = vec!["--server".into(), server.into()];
    all.extend(tls.client_flags("client"));
    all.extend(["--token".into(), token.into()]);
    all.extend(args.iter().map(|a| a.to_string()));
    slothctl(&all.iter().map(String::as_str).collect::<Vec<_>>(), input)
}

fn taskrun_json(server: &str, tls: &Tls, name: &str) -> Value {
    as_user(
        server,
        tls,
        ADMIN_TOKEN,
        &["get", "taskrun", name, "-o", "json"],
        None,
    )
    .ok()
    .json()
}

const ENV_RUN: &str = r#"
apiVersion: sloth.dev/v1
kind: TaskRun
metadata: {name: env-run}
spec:
  agentName: a1
  env:
    - {name: PW, valueFrom: {secretKeyRef: {name: db, key: password}}}
    - {name: PLAIN, value: visible}
  envFrom:
    - secretRef: {name: db}
  secretFiles:
    - {secretName: db, path: creds/db}
  run:
    shell: |
      echo "pw=$PW plain=$PLAIN"
      echo "from-envFrom=$password user=$user"
      echo "b64=$(printf %s "$PW" | base64)"
      printf 'split=%s' "${PW:0:7}"; sleep 0.5; printf '%s\n' "${PW:7}"
      echo "mode=$(stat -c %a creds/db/password) file=$(cat creds/db/password)"
      printf 'leak=%s\n' "$PW" >> "$SLOTH_RESULTS"
"#;

const LUA_RUN: &str = r#"
apiVersion: sloth.dev/v1
kind: TaskRun
metadata: {name: lua-run}
spec:
  agentName: a1
  secrets: [db]
  run:
    lua:
      script: |
        local pw = secret.get("db", "password")
        print("lua pw=" .. pw .. " user=" .. secrets.db.user)
        return true, "length " .. #pw, { pw = pw }
"#;

const WORKFLOW_FILE: &str = r#"
workflow.define("with_secrets", {
  secrets = { "db" },
  tasks = {
    task("use"):command(function(this, params, input)
      print("runner pw=" .. secrets.db.password)
      return true, "used", { n = tostring(#secrets.db.password) }
    end),
  },
})
"#;

const MISSING: &str = r#"
apiVersion: sloth.dev/v1
kind: TaskRun
metadata: {name: missing-key}
spec:
  agentName: a1
  env:
    - {name: PW, valueFrom: {secretKeyRef: {name: db, key: nope}}}
  run: {shell: 'echo should-not-run'}
---
apiVersion: sloth.dev/v1
kind: TaskRun
metadata: {name: missing-secret}
spec:
  agentName: a1
  envFrom:
    - secretRef: {name: nosuch}
  run: {shell: 'echo should-not-run'}
"#;

#[test]
fn secrets_are_encrypted_read_by_role_delivered_to_their_runs_and_masked() {
    let tls = Tls::new();
    let args = tls.server_args();
    let server = ApiServer::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let url = format!("https://{}", server.grpc_address());
    let url = url.as_str();
    let agent = |name: &str| {
        let flags = tls.client_flags(&format!("agent-{name}"));
        Agent::start_at(
            url,
            name,
            &flags.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let a1 = agent("a1");
    let a2 = agent("a2");
    let admin = |args: &[&str]| as_user(url, &tls, ADMIN_TOKEN, args, None);
    let viewer = |args: &[&str]| as_user(url, &tls, VIEWER_TOKEN, args, None);

    // Created by an admin; read back by an admin.
    admin(&[
        "create",
        "secret",
        "db",
        "--from-literal",
        &format!("password={PW}"),
        "--from-literal",
        &format!("user={USER}"),
    ])
    .ok();
    let stored = admin(&["get", "secret", "db", "-o", "json"]).ok().json();
    let data = &stored["spec"]["data"];
    assert_eq!(
        decode(data["password"].as_str().expect("b64")).ok(),
        Some(PW.as_bytes().to_vec())
    );
    assert_eq!(data["user"], encode(USER.as_bytes()));

    // Encrypted at rest: not in any byte of the data dir.
    assert_absent_from_files(server.data_dir(), PW);
    assert_absent_from_files(server.data_dir(), USER);

    // A viewer sees the key names, never the values (get, list, describe);
    // and cannot create one.
    let seen = viewer(&["get", "secret", "db", "-o", "json"]).ok();
    assert_eq!(
        seen.json()["spec"]["data"]["password"],
        "",
        "{}",
        seen.stdout
    );
    assert_eq!(
        seen.json()["metadata"]["annotations"]["sloth.dev/values-hidden"],
        "true"
    );
    let listed = viewer(&["get", "secrets", "-o", "json"]).ok();
    assert_absent("a viewer's list", &listed.stdout);
    assert!(listed.stdout.contains("password"), "{}", listed.stdout);
    let described = viewer(&["describe", "secret", "db"]).ok();
    assert!(
        described.stdout.contains("<hidden>"),
        "{}",
        described.stdout
    );
    assert_absent("a viewer's describe", &described.stdout);
    let described = admin(&["describe", "secret", "db"]).ok();
    assert!(
        described.stdout.contains(&format!("{} bytes", PW.len())),
        "{}",
        described.stdout
    );
    assert_absent("an admin's describe", &described.stdout);
    let refused = viewer(&["create", "secret", "other", "--from-literal", "k=v"]);
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(refused.stderr.contains("forbidden"), "{refused:#?}");

    // An agent reads a Secret only while a TaskRun bound to it references
    // it: a2's running TaskRun lets a2 read, never a1.
    let as_agent = |token: &str| {
        as_user(
            url,
            &tls,
            token,
            &["get", "secret", "db", "-o", "json"],
            None,
        )
    };
    let refused = as_agent(A2_TOKEN);
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(
        refused.stderr.contains("no unfinished TaskRun"),
        "{refused:#?}"
    );
    as_user(
        url,
        &tls,
        ADMIN_TOKEN,
        &["apply", "-f", "-"],
        Some(
            "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata: {name: hold-a2}\n\
             spec: {agentName: a2, secrets: [db], run: {shell: 'sleep 60'}}\n",
        ),
    )
    .ok();
    let running = wait_until(DEADLINE, || {
        (taskrun_json(url, &tls, "hold-a2")["status"]["phase"] == "Running").then_some(())
    });
    assert!(running.is_some(), "hold-a2 never ran:\n{}", a2.log());
    let read = as_agent(A2_TOKEN).ok();
    assert_eq!(
        read.json()["spec"]["data"]["password"],
        encode(PW.as_bytes())
    );
    let refused = as_agent(A1_TOKEN);
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(refused.stderr.contains("forbidden"), "{refused:#?}");
    admin(&["delete", "taskrun", "hold-a2"]).ok();
    let denied_after = wait_until(DEADLINE, || (as_agent(A2_TOKEN).code == 1).then_some(()));
    assert!(
        denied_after.is_some(),
        "a2 still reads db after its TaskRun is gone"
    );

    // env, envFrom and files: delivered, and masked in logs, logTail and results.
    as_user(url, &tls, ADMIN_TOKEN, &["apply", "-f", "-"], Some(ENV_RUN)).ok();
    admin(&["wait", "taskrun", "env-run", "--timeout", "60s"]).ok();
    let logs = admin(&["logs", "env-run"]).ok().stdout;
    for line in [
        "pw=*** plain=visible",
        "from-envFrom=*** user=***",
        "b64=***",
        "split=***",
        "mode=600 file=***",
    ] {
        assert!(logs.contains(line), "{line:?} not in the logs:\n{logs}");
    }
    assert_absent("slothctl logs", &logs);
    let run = taskrun_json(url, &tls, "env-run");
    let tail = run["status"]["logTail"].as_str().unwrap_or_default();
    assert!(tail.contains("pw=***"), "{run}");
    assert_eq!(run["status"]["results"]["leak"], "***", "{run}");
    assert!(
        !a1.work_dir()
            .join("default/env-run/creds/db/password")
            .exists(),
        "the secret file outlived its run"
    );

    // Lua: secret.get and the secrets global.
    as_user(url, &tls, ADMIN_TOKEN, &["apply", "-f", "-"], Some(LUA_RUN)).ok();
    admin(&["wait", "taskrun", "lua-run", "--timeout", "60s"]).ok();
    let logs = admin(&["logs", "lua-run"]).ok().stdout;
    assert!(logs.contains("lua pw=*** user=***"), "{logs}");
    let run = taskrun_json(url, &tls, "lua-run");
    assert_eq!(run["status"]["results"]["pw"], "***", "{run}");
    assert_eq!(
        run["status"]["message"],
        format!("length {}", PW.len()),
        "{run}"
    );

    // A sloth-runner file declaring the Secret: the Workflow holds its
    // name only; the task reads `secrets.db`.
    let temp = tempfile::tempdir().expect("temp");
    let file = temp.path().join("wf.lua");
    std::fs::write(&file, WORKFLOW_FILE).expect("write");
    admin(&["apply", "-f", path(&file)]).ok();
    admin(&["wait", "workflow", "with-secrets", "--timeout", "60s"]).ok();
    let workflow = admin(&["get", "workflow", "with-secrets", "-o", "json"])
        .ok()
        .json();
    assert_eq!(workflow["spec"]["secrets"], serde_json::json!(["db"]));
    let runs = admin(&[
        "get",
        "taskruns",
        "-l",
        "sloth.dev/workflow=with-secrets",
        "-o",
        "json",
    ])
    .ok()
    .json();
    let name = runs["items"][0]["metadata"]["name"]
        .as_str()
        .expect("a TaskRun")
        .to_string();
    let logs = admin(&["logs", &name]).ok().stdout;
    assert!(logs.contains("runner pw=***"), "{logs}");
    assert_eq!(
        runs["items"][0]["status"]["results"]["n"],
        PW.len().to_string()
    );

    // A missing key or Secret fails the run before it starts, naming it.
    as_user(url, &tls, ADMIN_TOKEN, &["apply", "-f", "-"], Some(MISSING)).ok();
    for (name, reason, named) in [
        ("missing-key", "SecretKeyNotFound", "no key \"nope\""),
        (
            "missing-secret",
            "SecretNotFound",
            "Secret \"nosuch\" not found",
        ),
    ] {
        let waited = admin(&["wait", "taskrun", name, "--timeout", "60s"]);
        assert_eq!(waited.code, 1, "{waited:#?}");
        let run = taskrun_json(url, &tls, name);
        assert_eq!(run["status"]["reason"], reason, "{run}");
        let message = run["status"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{run}");
        let logs = admin(&["logs", name]);
        assert!(!logs.stdout.contains("should-not-run"), "{logs:#?}");
    }

    // The value is in no object, Event, process log or audit line.
    for kind in ["taskruns", "workflows", "events", "agents", "locks"] {
        let all = admin(&["get", kind, "-A", "-o", "json"]).ok();
        assert_absent(kind, &all.stdout);
    }
    assert_absent("the apiserver's log", &server.log());
    assert_absent("agent a1's log", &a1.log());
    assert_absent("agent a2's log", &a2.log());
    let audit = std::fs::read_to_string(&tls.audit).expect("audit log");
    assert!(
        audit.to_lowercase().contains("secret"),
        "no Secret call audited:\n{audit}"
    );
    assert_absent("the audit log", &audit);
    assert_absent_from_files(server.data_dir(), PW);
}

/// Keys rotate without losing a Secret: add the new key second, restart;
/// make it first, restart (Secrets are re-encrypted with it); remove the
/// old key, restart: every Secret still reads.
#[test]
fn keys_rotate_and_every_secret_still_reads() {
    let temp = tempfile::tempdir().expect("temp");
    let keys = temp.path().join("keys");
    let line = |name: &str, byte: u8| format!("{name}:{}", encode(&[byte; 32]));
    std::fs::write(&keys, format!("{}\n", line("old", 1))).expect("write keys");
    let data = temp.path().join("data");
    let mut server = ApiServer::start_in(Some(&data), &["--encryption-key-file", path(&keys)]);
    let ctl = |server: &ApiServer, args: &[&str]| {
        let mut all = vec!["--server", server.grpc_url()];
        all.extend_from_slice(args);
        slothctl(&all, None)
    };
    let values = [("s1", "first-value-81f"), ("s2", "second-value-9ac")];
    for (name, value) in values {
        ctl(
            &server,
            &[
                "create",
                "secret",
                name,
                "--from-literal",
                &format!("k={value}"),
            ],
        )
        .ok();
    }
    let all_read = |server: &ApiServer| {
        for (name, value) in values {
            let got = ctl(server, &["get", "secret", name, "-o", "json"])
                .ok()
                .json();
            let k = got["spec"]["data"]["k"].as_str().expect("k").to_string();
            assert_eq!(decode(&k).ok(), Some(value.as_bytes().to_vec()), "{name}");
        }
    };
    let restart = |server: &mut ApiServer, text: String| {
        assert!(
            server.stop(),
            "the apiserver did not stop cleanly:\n{}",
            server.log()
        );
        std::fs::write(&keys, text).expect("write keys");
        server.start_again();
    };
    // 1. The new key second: it decrypts, the old one still encrypts.
    restart(
        &mut server,
        format!("{}\n{}\n", line("old", 1), line("new", 2)),
    );
    all_read(&server);
    // 2. The new key first: every Secret is rewritten with it.
    restart(
        &mut server,
        format!("{}\n{}\n", line("new", 2), line("old", 1)),
    );
    // One line per start (three so far); the third is this start's.
    let rewritten = wait_until(DEADLINE, || {
        (server
            .log()
            .matches("Secrets re-encrypted with the first key")
            .count()
            >= 3)
            .then_some(())
    });
    assert!(rewritten.is_some(), "{}", server.log());
    all_read(&server);
    // 3. The old key removed.
    restart(&mut server, format!("{}\n", line("new", 2)));
    all_read(&server);
    for (_, value) in values {
        assert_absent_from_files(&data, value);
    }
}

/// On etcd, Secrets need a key file (a clear refusal without one); with
/// one, etcd's data holds only ciphertext.
#[test]
fn on_etcd_a_key_file_is_required_and_etcd_holds_ciphertext() {
    let etcd = Etcd::start();
    let endpoints = etcd.endpoints();
    let temp = tempfile::tempdir().expect("temp");
    let keys = temp.path().join("keys");
    std::fs::write(&keys, format!("k1:{}\n", encode(&[7u8; 32]))).expect("write keys");
    let create = |server: &ApiServer| {
        slothctl(
            &[
                "--server",
                server.grpc_url(),
                "create",
                "secret",
                "db",
                "--from-literal",
                &format!("password={PW}"),
            ],
            None,
        )
    };
    let base = ["--store", "etcd", "--etcd-endpoints", endpoints.as_str()];
    let keyless = ApiServer::start_with(&base);
    let refused = create(&keyless);
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(
        refused.stderr.contains("--encryption-key-file"),
        "{refused:#?}"
    );
    drop(keyless);

    let mut args = base.to_vec();
    args.extend(["--encryption-key-file", path(&keys)]);
    let server = ApiServer::start_with(&args);
    create(&server).ok();
    let got = slothctl(
        &[
            "--server",
            server.grpc_url(),
            "get",
            "secret",
            "db",
            "-o",
            "json",
        ],
        None,
    )
    .ok()
    .json();
    assert_eq!(got["spec"]["data"]["password"], encode(PW.as_bytes()));
    for dir in etcd.data_dirs() {
        assert_absent_from_files(&dir, PW);
    }
}
