//! `slothctl certs`: TLS certificates for a fleet, made locally (no server
//! is contacted). `init` writes a CA, a server certificate and an admin
//! client certificate; `issue` signs more certificates with that CA, one per
//! user or agent.
//!
//! The apiserver reads identity from client certificates: the user is the
//! subject CN and the role the subject O. Agent certificates have CN
//! `agent:NAME`, O `agent` and a DNS SAN `NAME`.

mod files;
mod pki;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use sloth_sdk::role::Role;
use sloth_sdk::validation::names;

use crate::error::CliError;
use files::{CERT_MODE, KEY_MODE, Output};
use pki::{ALWAYS_HOSTS, CA_DAYS, Ca, Leaf, LoadError};

/// The file stems of `certs init`.
const CA_STEM: &str = "ca";
const SERVER_STEM: &str = "server";
const CLIENT_STEM: &str = "client";
/// Subject CN of the server certificate of `certs init`.
const SERVER_NAME: &str = "sloth-apiserver";
/// User (CN) of the client certificate of `certs init`.
const ADMIN_USER: &str = "admin";
/// Prefix of agent user names: `agent:NAME`.
const AGENT_PREFIX: &str = "agent:";

#[derive(Debug, Subcommand)]
pub(crate) enum CertsCommand {
    /// Write a CA, a server certificate and an admin client certificate.
    Init(InitArgs),
    /// Sign a certificate for a user or an agent with the CA of --dir.
    Issue(IssueArgs),
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Directory to write ca.pem, ca-key.pem, server.pem, server-key.pem,
    /// client.pem and client-key.pem to (created, mode 0700, if missing).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Host names and IP addresses the server certificate is valid for,
    /// besides localhost and 127.0.0.1.
    #[arg(long, value_name = "H1,H2", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Days the server and client certificates are valid (the CA: 10 years).
    #[arg(long, value_name = "N", default_value_t = 365, value_parser = days_parser())]
    pub days: u32,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct IssueArgs {
    /// Directory holding ca.pem and ca-key.pem; the new files go there too.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The user (subject CN); `agent:AGENTNAME` for an agent.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// The role (subject O); required unless NAME is `agent:AGENTNAME`.
    #[arg(long, value_enum, value_name = "ROLE")]
    pub role: Option<Role>,
    /// Host names and IP addresses to add as SANs; the certificate then also
    /// serves TLS (e.g. a new apiserver certificate).
    #[arg(long, value_name = "H1,H2", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Write DIR/STEM.pem and DIR/STEM-key.pem [default: NAME with ':'
    /// replaced by '-'].
    #[arg(long, value_name = "STEM")]
    pub out: Option<String>,
    /// Days the certificate is valid.
    #[arg(long, value_name = "N", default_value_t = 365, value_parser = days_parser())]
    pub days: u32,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

fn days_parser() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=36500)
}

pub(crate) fn run(command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Init(args) => init(&args),
        CertsCommand::Issue(args) => issue(&args),
    }
}

fn cert_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.pem"))
}

fn key_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}-key.pem"))
}

/// `hosts` trimmed, without empty entries and duplicates, in order; each
/// checked to be an IP address or a DNS name.
fn clean_hosts<'a>(hosts: impl IntoIterator<Item = &'a str>) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for host in hosts {
        let host = host.trim();
        if host.is_empty() || out.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            continue;
        }
        if host.parse::<std::net::IpAddr>().is_err() && !is_dns_name(host) {
            return Err(CliError::usage(format!(
                "--hosts: {host:?} is neither an IP address nor a DNS name"
            ))
            .into());
        }
        out.push(host.to_string());
    }
    Ok(out)
}

/// A DNS name as a SAN: dot-separated labels of letters, digits and '-'
/// (not at either end), the first label may be `*`.
fn is_dns_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').enumerate().all(|(i, label)| {
            (i == 0 && label == "*" && host.len() > 2)
                || (!label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        })
}

fn init(args: &InitArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    let mut server_hosts = clean_hosts(args.hosts.iter().map(String::as_str))?;
    for host in ALWAYS_HOSTS {
        if !server_hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            server_hosts.push(host.to_string());
        }
    }
    let paths: Vec<PathBuf> = [CA_STEM, SERVER_STEM, CLIENT_STEM]
        .iter()
        .flat_map(|stem| [cert_path(dir, stem), key_path(dir, stem)])
        .collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    files::refuse_existing(&refs, args.force)?;

    let ca = Ca::generate()?;
    let server = ca.issue(&Leaf {
        common_name: SERVER_NAME,
        organization: Role::Admin.as_str(),
        hosts: &server_hosts,
        // The apiserver also presents it as a client when it dials agents.
        server_auth: true,
        days: args.days,
    })?;
    let client = ca.issue(&Leaf {
        common_name: ADMIN_USER,
        organization: Role::Admin.as_str(),
        hosts: &[],
        server_auth: false,
        days: args.days,
    })?;
    if args.days > CA_DAYS {
        eprintln!(
            "warning: --days {} outlives the CA ({CA_DAYS} days)",
            args.days
        );
    }

    let outputs: Vec<Output> = [
        (CA_STEM, &ca.pair),
        (SERVER_STEM, &server),
        (CLIENT_STEM, &client),
    ]
    .into_iter()
    .flat_map(|(stem, pair)| pair_outputs(dir, stem, pair))
    .collect();
    files::ensure_dir(dir)?;
    files::write_all(&outputs)?;
    for out in &outputs {
        println!("wrote {}", out.path.display());
    }
    let p = |stem: &str, key: bool| {
        let path = if key {
            key_path(dir, stem)
        } else {
            cert_path(dir, stem)
        };
        path.display().to_string()
    };
    println!();
    println!("Serve TLS and require client certificates:");
    println!(
        "  sloth-apiserver --tls-cert-file {} --tls-key-file {} --tls-ca-file {}",
        p(SERVER_STEM, false),
        p(SERVER_STEM, true),
        p(CA_STEM, false)
    );
    println!("Connect as {ADMIN_USER} (role admin):");
    println!(
        "  slothctl --ca-file {} --cert-file {} --key-file {} get agents",
        p(CA_STEM, false),
        p(CLIENT_STEM, false),
        p(CLIENT_STEM, true)
    );
    println!(
        "More users and agents: slothctl certs issue --dir {} --name agent:NAME",
        dir.display()
    );
    Ok(())
}

fn pair_outputs(dir: &Path, stem: &str, pair: &pki::Pair) -> [Output; 2] {
    [
        Output {
            path: cert_path(dir, stem),
            contents: pair.cert_pem.clone(),
            mode: CERT_MODE,
        },
        Output {
            path: key_path(dir, stem),
            contents: pair.key_pem.clone(),
            mode: KEY_MODE,
        },
    ]
}

/// The role, the SAN hosts and whether the certificate serves TLS for
/// `issue`, after checking NAME and ROLE go together.
fn issue_identity(args: &IssueArgs) -> anyhow::Result<(Role, Vec<String>, bool)> {
    let name = args.name.as_str();
    let extra = clean_hosts(args.hosts.iter().map(String::as_str))?;
    if let Some(agent) = name.strip_prefix(AGENT_PREFIX) {
        names::validate_name(agent).map_err(|e| {
            CliError::usage(format!(
                "--name {name:?}: invalid agent name {agent:?}: {e}"
            ))
        })?;
        if let Some(role) = args.role.filter(|r| *r != Role::Agent) {
            return Err(CliError::usage(format!(
                "--name {name:?} is an agent: its role must be agent, not {}",
                role.as_str()
            ))
            .into());
        }
        // The apiserver checks that the agent's SAN is its name; the agent
        // serves its logs port with this certificate.
        let mut hosts = vec![agent.to_string()];
        hosts.extend(extra.into_iter().filter(|h| h != agent));
        return Ok((Role::Agent, hosts, true));
    }
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(
            CliError::usage(format!("--name {name:?}: must be a non-empty user name")).into(),
        );
    }
    let Some(role) = args.role else {
        return Err(CliError::usage(format!(
            "--role is required for --name {name:?}; one of: {}",
            Role::NAMES
        ))
        .into());
    };
    if role == Role::Agent {
        return Err(CliError::usage(format!(
            "role agent is only for agents: use --name agent:AGENTNAME (not {name:?})"
        ))
        .into());
    }
    let server_auth = !extra.is_empty();
    Ok((role, extra, server_auth))
}

/// The file stem of `issue`: --out, else NAME with ':' replaced by '-'.
fn issue_stem(args: &IssueArgs) -> anyhow::Result<String> {
    let stem = match &args.out {
        Some(out) => out.clone(),
        None => args.name.replace(':', "-"),
    };
    let valid = !stem.is_empty()
        && !stem.starts_with('.')
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if !valid {
        return Err(CliError::usage(format!(
            "file stem {stem:?} is not a plain file name (letters, digits, '-', '_', '.', '@'); \
             choose one with --out"
        ))
        .into());
    }
    if stem == CA_STEM {
        return Err(CliError::usage("--out ca would overwrite the CA").into());
    }
    Ok(stem)
}

fn issue(args: &IssueArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    let (role, hosts, server_auth) = issue_identity(args)?;
    let stem = issue_stem(args)?;
    let cert_file = cert_path(dir, &stem);
    let key_file = key_path(dir, &stem);
    files::refuse_existing(&[&cert_file, &key_file], args.force)?;

    let ca = load_ca(dir)?;
    if ca.outlived_by(args.days) {
        eprintln!(
            "warning: the certificate is valid for {} days, longer than the CA",
            args.days
        );
    }
    let pair = ca.issue(&Leaf {
        common_name: &args.name,
        organization: role.as_str(),
        hosts: &hosts,
        server_auth,
        days: args.days,
    })?;
    let outputs = pair_outputs(dir, &stem, &pair);
    files::write_all(&outputs)?;
    for out in &outputs {
        println!("wrote {}", out.path.display());
    }
    println!(
        "{} (role {}), signed by {}",
        args.name,
        role.as_str(),
        cert_path(dir, CA_STEM).display()
    );
    Ok(())
}

/// Loads DIR/ca.pem and DIR/ca-key.pem; any problem is a usage error (exit
/// 2) naming the file.
fn load_ca(dir: &Path) -> anyhow::Result<Ca> {
    let cert_file = cert_path(dir, CA_STEM);
    let key_file = key_path(dir, CA_STEM);
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| {
            CliError::usage(format!(
                "cannot read the CA file {}: {e} (make one with `slothctl certs init --dir {}`)",
                path.display(),
                dir.display()
            ))
        })
    };
    let cert_pem = read(&cert_file)?;
    let key_pem = read(&key_file)?;
    Ca::load(&cert_pem, &key_pem).map_err(|e| {
        let (path, why) = match e {
            LoadError::Cert(why) => (&cert_file, why),
            LoadError::Key(why) => (&key_file, why),
        };
        CliError::usage(format!("bad CA file {}: {why}", path.display())).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_and_hosts() {
        assert!(is_dns_name("sloth.example.com"));
        assert!(is_dns_name("*.example.com"));
        assert!(is_dns_name("build-1"));
        assert!(!is_dns_name("-bad"));
        assert!(!is_dns_name("a..b"));
        assert!(!is_dns_name("a b"));
        assert!(!is_dns_name("*"));
        let hosts = clean_hosts([" a.example ", "", "10.0.0.1", "A.example", "::1"]);
        assert_eq!(
            hosts.ok(),
            Some(vec!["a.example".into(), "10.0.0.1".into(), "::1".into()])
        );
        assert!(clean_hosts(["bad host"]).is_err());
    }

    fn issue_args(name: &str, role: Option<Role>) -> IssueArgs {
        IssueArgs {
            dir: PathBuf::from("."),
            name: name.into(),
            role,
            hosts: Vec::new(),
            out: None,
            days: 1,
            force: false,
        }
    }

    #[test]
    fn agents_get_their_name_as_san_and_both_usages() {
        let (role, hosts, server) =
            issue_identity(&issue_args("agent:build-1", None)).expect("agent");
        assert_eq!(
            (role, hosts, server),
            (Role::Agent, vec!["build-1".into()], true)
        );
        assert!(issue_identity(&issue_args("agent:build-1", Some(Role::Viewer))).is_err());
        assert!(issue_identity(&issue_args("agent:Bad_Name", None)).is_err());
        assert!(issue_identity(&issue_args("alice", None)).is_err());
        assert!(issue_identity(&issue_args("alice", Some(Role::Agent))).is_err());
        let (role, hosts, server) =
            issue_identity(&issue_args("alice", Some(Role::Viewer))).expect("user");
        assert_eq!((role, hosts.len(), server), (Role::Viewer, 0, false));
    }

    #[test]
    fn stems() {
        assert_eq!(
            issue_stem(&issue_args("agent:build-1", None))
                .ok()
                .as_deref(),
            Some("agent-build-1")
        );
        let mut args = issue_args("x", None);
        args.out = Some("../evil".into());
        assert!(issue_stem(&args).is_err());
        args.out = Some("ca".into());
        assert!(issue_stem(&args).is_err());
    }

    #[test]
    fn issued_certificates_are_signed_by_a_loaded_ca() {
        let ca = Ca::generate().expect("ca");
        let loaded = Ca::load(&ca.pair.cert_pem, &ca.pair.key_pem).expect("load");
        let pair = loaded
            .issue(&Leaf {
                common_name: "agent:a",
                organization: "agent",
                hosts: &["a".to_string()],
                server_auth: true,
                days: 1,
            })
            .expect("issue");
        assert!(pair.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let other = Ca::generate().expect("other ca");
        assert!(matches!(
            Ca::load(&ca.pair.cert_pem, &other.pair.key_pem),
            Err(LoadError::Key(_))
        ));
        assert!(matches!(
            Ca::load(&pair.cert_pem, &pair.key_pem),
            Err(LoadError::Cert(_))
        ));
    }
}
