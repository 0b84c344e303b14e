//! `slothctl certs init` and `certs issue`: the files and their modes, and
//! the certificates parsed back: the CA, subjects (user = CN, role = O),
//! SANs, extended key usages, and signatures that verify against the CA.
//! Refusals exit 2 and write nothing.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sloth_tests::{Run, binary, run_to_end};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

const DEADLINE: Duration = Duration::from_secs(30);

fn certs(args: &[&str]) -> Run {
    let home = tempfile::tempdir().expect("temp home");
    let mut cmd = Command::new(binary("slothctl"));
    cmd.arg("certs")
        .args(args)
        .env("HOME", home.path())
        .env_remove("SLOTH_SERVER");
    run_to_end(cmd, None, DEADLINE)
}

fn init(dir: &Path, extra: &[&str]) -> Run {
    let dir = dir.to_str().expect("utf-8 path");
    let mut args = vec!["init", "--dir", dir];
    args.extend_from_slice(extra);
    certs(&args)
}

fn issue(dir: &Path, extra: &[&str]) -> Run {
    let dir = dir.to_str().expect("utf-8 path");
    let mut args = vec!["issue", "--dir", dir];
    args.extend_from_slice(extra);
    certs(&args)
}

fn pem(path: &Path) -> Pem {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Pem::iter_from_buffer(&data)
        .next()
        .expect("a PEM block")
        .expect("valid PEM")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn cn(cert: &X509Certificate<'_>) -> String {
    let names: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().expect("utf-8 CN").to_string())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    names[0].clone()
}

fn org(cert: &X509Certificate<'_>) -> String {
    let names: Vec<_> = cert
        .subject()
        .iter_organization()
        .map(|a| a.as_str().expect("utf-8 O").to_string())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    names[0].clone()
}

/// (DNS SANs, IP SANs).
fn sans(cert: &X509Certificate<'_>) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    let Some(ext) = cert.subject_alternative_name().expect("SAN extension") else {
        return (dns, ips);
    };
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(d) => dns.push(d.to_string()),
            GeneralName::IPAddress(b) => ips.push(match b.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*b).expect("v4")),
                16 => IpAddr::from(<[u8; 16]>::try_from(*b).expect("v6")),
                n => panic!("IP SAN of {n} bytes"),
            }),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    (dns, ips)
}

/// (serverAuth, clientAuth).
fn ekus(cert: &X509Certificate<'_>) -> (bool, bool) {
    let eku = cert
        .extended_key_usage()
        .expect("EKU extension")
        .expect("an EKU");
    (eku.value.server_auth, eku.value.client_auth)
}

/// Parses `stem.pem` in `dir`, checks the modes of it and its key, that it
/// is not a CA, that its issuer is the CA's subject and that its signature
/// verifies with the CA's key; then hands it to `check`.
fn check_leaf(dir: &Path, stem: &str, check: impl FnOnce(&X509Certificate<'_>)) {
    let ca_pem = pem(&dir.join("ca.pem"));
    let ca = ca_pem.parse_x509().expect("CA certificate");
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}-key.pem"));
    assert_eq!(mode(&cert_path), 0o644, "{stem}.pem");
    assert_eq!(mode(&key_path), 0o600, "{stem}-key.pem");
    assert_eq!(pem(&key_path).label, "PRIVATE KEY");
    let leaf_pem = pem(&cert_path);
    let leaf = leaf_pem.parse_x509().expect("certificate");
    assert!(!leaf.is_ca(), "{stem} must not be a CA");
    assert_eq!(leaf.issuer(), ca.subject(), "{stem}: issuer");
    leaf.verify_signature(Some(ca.public_key()))
        .unwrap_or_else(|e| panic!("{stem}: signature does not verify with the CA key: {e}"));
    check(&leaf);
}

#[test]
fn init_writes_a_ca_a_server_and_an_admin_client_certificate() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("pki");
    let run = init(&dir, &["--hosts", "sloth.example.com,10.1.2.3"]).ok();
    for file in [
        "ca.pem",
        "ca-key.pem",
        "server.pem",
        "server-key.pem",
        "client.pem",
        "client-key.pem",
    ] {
        let path = dir.join(file);
        assert!(
            run.stdout.contains(&path.display().to_string()),
            "{file} not printed: {run:#?}"
        );
    }
    assert!(run.stdout.contains("--tls-cert-file"), "{run:#?}");
    assert!(run.stdout.contains("--ca-file"), "{run:#?}");
    assert_eq!(mode(&dir) & 0o777, 0o700, "created directory");
    assert_eq!(mode(&dir.join("ca.pem")), 0o644);
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);

    let ca_pem = pem(&dir.join("ca.pem"));
    let ca = ca_pem.parse_x509().expect("CA certificate");
    assert!(ca.is_ca());
    assert_eq!(cn(&ca), "Sloth CA");
    assert_eq!(ca.issuer(), ca.subject(), "self-signed");
    ca.verify_signature(None).expect("CA signs itself");
    let usage = ca.key_usage().expect("key usage").expect("a key usage");
    assert!(usage.value.key_cert_sign() && usage.value.crl_sign());
    let years = (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp())
        / (365 * 24 * 3600);
    assert!(years >= 9, "CA valid {years} years");

    check_leaf(&dir, "server", |cert| {
        assert_eq!(cn(cert), "sloth-apiserver");
        assert_eq!(org(cert), "admin");
        let (dns, ips) = sans(cert);
        assert!(dns.contains(&"sloth.example.com".to_string()), "{dns:?}");
        assert!(dns.contains(&"localhost".to_string()), "{dns:?}");
        assert!(ips.contains(&"10.1.2.3".parse().expect("ip")), "{ips:?}");
        assert!(ips.contains(&"127.0.0.1".parse().expect("ip")), "{ips:?}");
        assert_eq!(ekus(cert), (true, true), "serverAuth and clientAuth");
        let days =
            (cert.validity().not_after.timestamp() - chrono::Utc::now().timestamp()) / (24 * 3600);
        assert!((364..=365).contains(&days), "default --days: {days}");
    });
    check_leaf(&dir, "client", |cert| {
        assert_eq!(cn(cert), "admin");
        assert_eq!(org(cert), "admin");
        assert_eq!(ekus(cert), (false, true), "clientAuth only");
    });
}

#[test]
fn issue_signs_agent_user_and_server_certificates_with_the_ca() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    init(dir, &[]).ok();

    let run = issue(dir, &["--name", "agent:build-1", "--days", "30"]).ok();
    assert!(run.stdout.contains("agent-build-1.pem"), "{run:#?}");
    check_leaf(dir, "agent-build-1", |cert| {
        assert_eq!(cn(cert), "agent:build-1");
        assert_eq!(org(cert), "agent");
        assert_eq!(sans(cert), (vec!["build-1".to_string()], vec![]));
        assert_eq!(ekus(cert), (true, true), "serverAuth and clientAuth");
        let days =
            (cert.validity().not_after.timestamp() - chrono::Utc::now().timestamp()) / (24 * 3600);
        assert!((29..=30).contains(&days), "--days 30: {days}");
    });

    issue(dir, &["--name", "alice", "--role", "viewer"]).ok();
    check_leaf(dir, "alice", |cert| {
        assert_eq!(cn(cert), "alice");
        assert_eq!(org(cert), "viewer");
        assert_eq!(sans(cert), (vec![], vec![]));
        assert_eq!(ekus(cert), (false, true), "clientAuth only");
    });

    // A new server certificate, for rotation.
    issue(
        dir,
        &[
            "--name",
            "sloth-apiserver",
            "--role",
            "admin",
            "--hosts",
            "127.0.0.1",
            "--out",
            "server-new",
        ],
    )
    .ok();
    check_leaf(dir, "server-new", |cert| {
        assert_eq!(cn(cert), "sloth-apiserver");
        assert_eq!(org(cert), "admin");
        assert_eq!(sans(cert), (vec![], vec!["127.0.0.1".parse().expect("ip")]));
        assert_eq!(ekus(cert), (true, true));
    });
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("dir entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).expect("read file"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn existing_files_are_kept_unless_forced() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    init(dir, &[]).ok();
    issue(dir, &["--name", "agent:build-1"]).ok();
    let before = snapshot(dir);

    let run = init(dir, &[]).code(2);
    assert!(run.stderr.contains("ca.pem"), "{run:#?}");
    assert!(run.stderr.contains("--force"), "{run:#?}");
    let run = issue(dir, &["--name", "agent:build-1"]).code(2);
    assert!(run.stderr.contains("agent-build-1.pem"), "{run:#?}");
    assert_eq!(
        snapshot(dir),
        before,
        "nothing written, no temporary files left"
    );

    // Only one of the files exists: still nothing written.
    std::fs::remove_file(dir.join("client.pem")).expect("remove");
    let before = snapshot(dir);
    init(dir, &[]).code(2);
    assert_eq!(snapshot(dir), before);

    issue(dir, &["--name", "agent:build-1", "--force"]).ok();
    let after = snapshot(dir);
    let file = |files: &[(String, Vec<u8>)], name: &str| {
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.clone())
    };
    assert_ne!(
        file(&after, "agent-build-1.pem"),
        file(&before, "agent-build-1.pem")
    );
    check_leaf(dir, "agent-build-1", |cert| assert_eq!(org(cert), "agent"));

    init(dir, &["--force"]).ok();
    assert_ne!(file(&snapshot(dir), "ca.pem"), file(&before, "ca.pem"));
    check_leaf(dir, "client", |cert| assert_eq!(cn(cert), "admin"));
}

#[test]
fn bad_roles_names_and_missing_cas_exit_2() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();

    let run = issue(dir, &["--name", "alice", "--role", "viewer"]).code(2);
    assert!(run.stderr.contains("ca.pem"), "{run:#?}");

    init(dir, &[]).ok();
    let before = snapshot(dir);
    let run = issue(dir, &["--name", "alice", "--role", "boss"]).code(2);
    assert!(run.stderr.contains("viewer"), "lists the roles: {run:#?}");
    let run = issue(dir, &["--name", "alice"]).code(2);
    assert!(
        run.stderr.contains("admin, operator, viewer, agent"),
        "{run:#?}"
    );
    issue(dir, &["--name", "agent:build-1", "--role", "viewer"]).code(2);
    issue(dir, &["--name", "agent:Not_Valid"]).code(2);
    issue(dir, &["--name", "alice", "--role", "agent"]).code(2);
    issue(
        dir,
        &["--name", "alice", "--role", "viewer", "--out", "../x"],
    )
    .code(2);
    assert_eq!(snapshot(dir), before, "nothing written");

    // A CA key that does not belong to the CA certificate.
    let other = tempfile::tempdir().expect("temp dir");
    init(other.path(), &[]).ok();
    std::fs::copy(other.path().join("ca-key.pem"), dir.join("ca-key.pem")).expect("copy");
    let run = issue(dir, &["--name", "alice", "--role", "viewer"]).code(2);
    assert!(run.stderr.contains("ca-key.pem"), "{run:#?}");
}
