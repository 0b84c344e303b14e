//! Security end to end, with real processes: mutual TLS refuses plaintext
//! and certificate-less clients; tokens authenticate and roles authorize;
//! agents with their own credentials run TaskRuns but cannot steer other
//! agents; the audit log records writes and refusals; the server
//! certificate rotates on disk without a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use sloth_sdk::Error;
use sloth_tests::{
    Agent, ApiServer, Run, client_with_token, ctl_bare, http_get, http_get_with, runtime,
    wait_until,
};

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const VIEWER_TOKEN: &str = "viewer-token-0123456789abcdef";
const A1_TOKEN: &str = "agent-a1-token-0123456789abcdef";
const A2_TOKEN: &str = "agent-a2-token-0123456789abcdef";

fn tokens_file(dir: &Path) -> PathBuf {
    let path = dir.join("tokens.csv");
    std::fs::write(
        &path,
        format!(
            "# token,user,role\n{ADMIN_TOKEN},alice,admin\n{VIEWER_TOKEN},vic,viewer\n\
             {A1_TOKEN},agent:a1,agent\n{A2_TOKEN},agent:a2,agent\n"
        ),
    )
    .expect("write tokens");
    path
}

/// `slothctl ARGS` with a temporary HOME (no config file).
fn slothctl(args: &[&str]) -> Run {
    ctl_bare(args, None)
}

/// `slothctl certs init --dir DIR`.
fn init_certs(dir: &Path) {
    let dir = dir.to_str().expect("utf-8 path");
    slothctl(&["certs", "init", "--dir", dir, "--hosts", "127.0.0.1"]).ok();
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `--ca-file`, `--cert-file`, `--key-file` for certificate `stem` of the
/// `slothctl certs` directory `certs`.
fn tls_flags(certs: &Path, stem: &str) -> Vec<String> {
    vec![
        "--ca-file".into(),
        path(&certs.join("ca.pem")).into(),
        "--cert-file".into(),
        path(&certs.join(format!("{stem}.pem"))).into(),
        "--key-file".into(),
        path(&certs.join(format!("{stem}-key.pem"))).into(),
    ]
}

fn audit_lines(file: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every audit line is JSON"))
        .collect()
}

/// An HTTP/1.1 GET over TLS (trusting `ca`, presenting `client` when
/// given); returns the status code, or the connection error.
fn https_get(
    address: &str,
    path: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<u16, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read CA") {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .expect("read cert")
                    .collect::<Result<_, _>>()
                    .expect("cert PEM"),
                PrivateKeyDer::from_pem_file(key).expect("key PEM"),
            )
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    runtime().block_on(async {
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from("127.0.0.1").expect("server name");
        let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut response))
            .await
            .map_err(|_| "no answer within 10 s".to_string())?
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&response);
        text.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: {text:?}"))
    })
}

const TASKRUN: &str = "apiVersion: sloth.dev/v1\nkind: TaskRun\nmetadata: {name: by-viewer}\n\
                       spec: {run: {shell: 'true'}}\n";

#[test]
fn mutual_tls_refuses_plaintext_and_certificateless_clients_and_relays_agent_logs() {
    let temp = tempfile::tempdir().expect("temp dir");
    let certs = temp.path().join("certs");
    init_certs(&certs);
    for name in ["agent:a1", "agent:a2"] {
        slothctl(&["certs", "issue", "--dir", path(&certs), "--name", name]).ok();
    }
    let server = ApiServer::start_with(&[
        "--controllers",
        "--tls-cert-file",
        path(&certs.join("server.pem")),
        "--tls-key-file",
        path(&certs.join("server-key.pem")),
        "--tls-ca-file",
        path(&certs.join("ca.pem")),
    ]);
    let https = format!("https://{}", server.grpc_address());
    let ca = certs.join("ca.pem");

    // Plaintext: the TLS server answers with an alert and hangs up.
    let plain = slothctl(&["--server", server.grpc_url(), "get", "agents"]);
    assert_eq!(plain.code, 1, "{plain:#?}");
    assert!(
        plain.stderr.contains("if the server serves TLS"),
        "{plain:#?}"
    );
    // TLS without a client certificate: refused at the handshake.
    let no_cert = slothctl(&["--server", &https, "--ca-file", path(&ca), "get", "agents"]);
    assert_eq!(no_cert.code, 1, "{no_cert:#?}");
    assert!(no_cert.stderr.contains("--cert-file"), "{no_cert:#?}");
    assert!(
        server.log().contains("TLS handshake refused"),
        "{}",
        server.log()
    );

    let client_pem = certs.join("client.pem");
    let client_key = certs.join("client-key.pem");
    // slothctl as the holder of certificate `stem` (client, agent-a1...).
    let as_holder = |stem: &str, args: &[&str]| {
        let mut all: Vec<String> = vec!["--server".into(), https.clone()];
        all.extend(tls_flags(&certs, stem));
        all.extend(args.iter().map(|a| a.to_string()));
        slothctl(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let admin = |args: &[&str]| as_holder("client", args);
    admin(&["get", "agents"]).ok();

    // The HTTP port: health checks without a certificate (load balancers),
    // /metrics only with one.
    let http = server.http_url().trim_start_matches("http://").to_string();
    assert_eq!(https_get(&http, "/healthz", &ca, None), Ok(200));
    assert_eq!(https_get(&http, "/metrics", &ca, None), Ok(401));
    assert_eq!(
        https_get(&http, "/metrics", &ca, Some((&client_pem, &client_key))),
        Ok(200)
    );

    // An agent with its own certificate: registers over mTLS, serves its
    // logs port with TLS, and the apiserver relays its output.
    let a1_flags = tls_flags(&certs, "agent-a1");
    let a1 = Agent::start_at(
        &https,
        "a1",
        &a1_flags.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(
        a1.logs_address().starts_with("https://"),
        "{}",
        a1.logs_address()
    );
    let run = admin(&["run", "--agent", "a1", "--", "echo", "hello over tls"]).ok();
    assert!(run.stdout.contains("hello over tls"), "{run:#?}");

    // The agent's certificate is role agent: it cannot cordon another agent.
    let cordon = as_holder("agent-a1", &["cordon", "a2"]);
    assert_eq!(cordon.code, 1, "{cordon:#?}");
    assert!(cordon.stderr.contains("forbidden"), "{cordon:#?}");
}

#[test]
fn tokens_authenticate_roles_authorize_and_the_audit_log_records_it() {
    let temp = tempfile::tempdir().expect("temp dir");
    let tokens = tokens_file(temp.path());
    let audit = temp.path().join("audit.log");
    let server =
        ApiServer::start_with(&["--token-file", path(&tokens), "--audit-log", path(&audit)]);
    let url = server.grpc_url();
    let as_user = |token: &str, args: &[&str]| {
        let mut all = vec!["--server", url, "--token", token];
        all.extend_from_slice(args);
        slothctl(&all)
    };
    let manifest = temp.path().join("taskrun.yaml");
    std::fs::write(&manifest, TASKRUN).expect("write manifest");

    // A wrong token and no token: Unauthenticated, exit 1.
    let wrong = as_user("not-a-token-of-anyone", &["get", "taskruns"]);
    assert_eq!(wrong.code, 1, "{wrong:#?}");
    assert!(wrong.stderr.contains("Unauthorized"), "{wrong:#?}");
    assert!(wrong.stderr.contains("invalid bearer token"), "{wrong:#?}");
    let none = slothctl(&["--server", url, "get", "taskruns"]);
    assert_eq!(none.code, 1, "{none:#?}");
    assert!(none.stderr.contains("no credentials"), "{none:#?}");

    // A viewer gets but cannot apply.
    as_user(VIEWER_TOKEN, &["get", "taskruns"]).ok();
    let apply = as_user(VIEWER_TOKEN, &["apply", "-f", path(&manifest)]);
    assert_eq!(apply.code, 1, "{apply:#?}");
    for word in ["forbidden", "\"vic\"", "create", "taskruns"] {
        assert!(apply.stderr.contains(word), "{word}: {apply:#?}");
    }
    as_user(VIEWER_TOKEN, &["get", "taskrun", "by-viewer"]).code(1);

    // The admin applies.
    as_user(ADMIN_TOKEN, &["apply", "-f", path(&manifest)]).ok();
    as_user(VIEWER_TOKEN, &["get", "taskrun", "by-viewer"]).ok();

    // /metrics wants credentials; health checks do not.
    assert_eq!(http_get(server.http_url(), "/metrics").0, 401);
    let bearer = format!("Authorization: Bearer {VIEWER_TOKEN}");
    assert_eq!(
        http_get_with(server.http_url(), "/metrics", &[&bearer]).0,
        200
    );
    assert_eq!(http_get(server.http_url(), "/healthz").0, 200);

    let lines = audit_lines(&audit);
    let has = |user: &str, verb: &str, result: &str| {
        lines.iter().any(|l| {
            l["user"] == user
                && l["verb"] == verb
                && l["result"] == result
                && l["sourceAddress"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("127.0.0.1:"))
        })
    };
    assert!(has("alice", "create", "ok"), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l["user"] == "alice"
            && l["kind"] == "TaskRun"
            && l["namespace"] == "default"
            && l["name"] == "by-viewer"
            && l["role"] == "admin"),
        "{lines:#?}"
    );
    assert!(has("vic", "create", "forbidden"), "{lines:#?}");
    assert!(has("", "list", "unauthenticated"), "{lines:#?}");
    assert!(
        !lines
            .iter()
            .any(|l| l["verb"] == "list" && l["result"] == "ok"),
        "reads that succeed are not audited: {lines:#?}"
    );
    let raw = std::fs::read_to_string(&audit).expect("audit log");
    for secret in [ADMIN_TOKEN, VIEWER_TOKEN, "not-a-token-of-anyone"] {
        assert!(!raw.contains(secret), "the audit log holds a token");
    }
}

#[test]
fn agents_with_their_own_tokens_run_taskruns_but_cannot_steer_other_agents() {
    let temp = tempfile::tempdir().expect("temp dir");
    let tokens = tokens_file(temp.path());
    let server = ApiServer::start_with(&["--controllers", "--token-file", path(&tokens)]);
    let url = server.grpc_url();
    let a1 = Agent::start(&server, "a1", &["--token", A1_TOKEN]);
    let _a2 = Agent::start(&server, "a2", &["--token", A2_TOKEN]);
    let admin = |args: &[&str]| {
        let mut all = vec!["--server", url, "--token", ADMIN_TOKEN];
        all.extend_from_slice(args);
        slothctl(&all)
    };
    let ready = wait_until(Duration::from_secs(20), || {
        let out = admin(&["get", "agents", "--no-headers"]);
        (out.stdout
            .lines()
            .filter(|l| l.contains("Ready") && !l.contains("NotReady"))
            .count()
            == 2)
            .then_some(())
    });
    assert!(
        ready.is_some(),
        "agents did not become Ready:\n{}",
        a1.log()
    );
    for agent in ["a1", "a2"] {
        let run = admin(&["run", "--agent", agent, "--", "echo", "ran-on", agent]).ok();
        assert!(run.stdout.contains(&format!("ran-on {agent}")), "{run:#?}");
    }

    let rt = runtime();
    rt.block_on(async {
        let as_a1 = client_with_token(url, A1_TOKEN);
        let admin = client_with_token(url, ADMIN_TOKEN);

        // Cordon another agent.
        let mut a2 = serde_json::to_value(admin.get("Agent", "", "a2").await.expect("get a2"))
            .expect("json");
        a2["spec"]["unschedulable"] = json!(true);
        let e = as_a1.update(&a2).await.expect_err("a1 cordons a2");
        assert!(matches!(e, Error::Forbidden(_)), "{e}");
        // Create a TaskRun.
        let taskrun = json!({
            "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "from-agent", "namespace": "default"},
            "spec": {"run": {"shell": "true"}}
        });
        let e = as_a1
            .create(&taskrun)
            .await
            .expect_err("a1 creates a TaskRun");
        assert!(matches!(e, Error::Forbidden(_)), "{e}");
        // Write the status of a TaskRun bound to another agent.
        let bound = json!({
            "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "for-a2", "namespace": "default"},
            "spec": {"run": {"shell": "sleep 30"}, "agentName": "a2"}
        });
        let stored = admin
            .create(&bound)
            .await
            .expect("admin creates a TaskRun for a2");
        let mut forged = serde_json::to_value(stored).expect("json");
        forged["status"] = json!({"phase": "Failed", "message": "forged by a1"});
        let e = as_a1
            .update_status(&forged)
            .await
            .expect_err("a1 writes a2's status");
        assert!(matches!(e, Error::Forbidden(_)), "{e}");
        assert!(e.to_string().contains("bound to agent \"a2\""), "{e}");
        let after = admin
            .get("TaskRun", "default", "for-a2")
            .await
            .expect("get");
        assert_ne!(
            after.status.get("message"),
            Some(&json!("forged by a1")),
            "the forged status was not stored"
        );
        // Watch every TaskRun, not only its own.
        let e = as_a1
            .watch("TaskRun", "", &Default::default(), "")
            .await
            .err()
            .expect("a1 watches all TaskRuns");
        assert!(matches!(e, Error::Forbidden(_)), "{e}");
        // Its own heartbeat Lock is fine; another agent's is not.
        let e = as_a1
            .delete("Lock", "sloth-system", "agent-a2", None)
            .await
            .expect_err("a1 deletes a2's heartbeat");
        assert!(matches!(e, Error::Forbidden(_)), "{e}");
    });
}

#[test]
fn rotating_the_server_certificate_on_disk_takes_effect_without_a_restart() {
    let temp = tempfile::tempdir().expect("temp dir");
    let old = temp.path().join("old");
    let new = temp.path().join("new");
    init_certs(&old);
    init_certs(&new);
    // The server's files, replaced in place later.
    let live = temp.path().join("live");
    std::fs::create_dir_all(&live).expect("mkdir");
    for file in ["server.pem", "server-key.pem"] {
        std::fs::copy(old.join(file), live.join(file)).expect("copy");
    }
    let tokens = tokens_file(temp.path());
    let mut server = ApiServer::start_with(&[
        "--token-file",
        path(&tokens),
        "--tls-cert-file",
        path(&live.join("server.pem")),
        "--tls-key-file",
        path(&live.join("server-key.pem")),
    ]);
    let pid = server.pid();
    let https = format!("https://{}", server.grpc_address());
    let get_trusting = |ca: &Path| {
        slothctl(&[
            "--server",
            &https,
            "--ca-file",
            path(&ca.join("ca.pem")),
            "--token",
            ADMIN_TOKEN,
            "get",
            "agents",
        ])
    };
    get_trusting(&old).ok();
    assert_ne!(get_trusting(&new).code, 0, "the new CA is not trusted yet");

    // Rotate: write the new pair beside the old and rename over it.
    for file in ["server.pem", "server-key.pem"] {
        let staged = live.join(format!("{file}.new"));
        std::fs::copy(new.join(file), &staged).expect("stage");
        std::fs::rename(&staged, live.join(file)).expect("rename");
    }
    let rotated = wait_until(Duration::from_secs(15), || {
        (get_trusting(&new).code == 0).then_some(())
    });
    assert!(
        rotated.is_some(),
        "the new certificate was never served:\n{}",
        server.log()
    );
    assert_ne!(
        get_trusting(&old).code,
        0,
        "the old certificate is no longer served"
    );
    assert_eq!(server.pid(), pid, "same process");
    assert!(server.stop(), "the apiserver stops cleanly");
}

#[test]
fn a_client_cannot_hold_more_watches_than_the_limit() {
    let temp = tempfile::tempdir().expect("temp dir");
    let tokens = tokens_file(temp.path());
    let server = ApiServer::start_with(&[
        "--token-file",
        path(&tokens),
        "--max-watches-per-client",
        "2",
    ]);
    let client = |token: &str| client_with_token(server.grpc_url(), token);
    runtime().block_on(async {
        let vic = client(VIEWER_TOKEN);
        let params = Default::default();
        let first = vic.watch("TaskRun", "", &params, "").await.expect("first");
        let _second = vic.watch("Agent", "", &params, "").await.expect("second");
        let e = vic
            .watch("Workflow", "", &params, "")
            .await
            .err()
            .expect("a third watch of the same user");
        assert!(e.to_string().contains("too many open watches"), "{e}");
        // Another user has its own count.
        let _other = client(ADMIN_TOKEN)
            .watch("Workflow", "", &params, "")
            .await
            .expect("another user's watch");
        // Closing a watch frees its slot.
        drop(first);
        let again =
            wait_until_async(|| async { vic.watch("Workflow", "", &params, "").await.ok() }).await;
        assert!(again.is_some(), "the closed watch's slot was never freed");
    });
}

/// Polls `check` until it returns Some, for at most 10 seconds.
async fn wait_until_async<T, F, Fut>(mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
