//! Command-line flags and the settings resolved from them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use sloth_sdk::backoff::Backoff;
use sloth_sdk::credentials::CredentialFlags;
use sloth_sdk::validation::limits::MAX_AGENT_CAPACITY;
use sloth_sdk::validation::names;
use sloth_sdk::well_known::{RESTRICTED_LABEL_PREFIX, capability_label};

pub(crate) use sloth_sdk::lease::heartbeat_lock_name;

/// The pauses while no apiserver answers at startup (registering the
/// Agent, taking the heartbeat lease): 200ms doubling up to 5s.
pub(crate) const STARTUP_BACKOFF: Backoff =
    Backoff::fixed(Duration::from_millis(200), Duration::from_secs(5));

#[derive(Parser, Debug)]
#[command(
    name = "sloth-agent",
    version,
    about = "Sloth's agent: registers this machine and runs the TaskRuns bound to it"
)]
pub(crate) struct Args {
    /// Unique agent name (the Agent object's name).
    #[arg(long, value_parser = parse_agent_name)]
    pub name: String,
    /// Apiservers, comma-separated (failover): URLs, or HOST:PORT for
    /// http:// (https:// with --ca-file). `--master` is the seeds' spelling.
    #[arg(
        long,
        visible_alias = "master",
        env = "SLOTH_SERVER",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50053"
    )]
    pub server: Vec<String>,
    /// Capabilities used by agentSelector: k=v[,k=v].
    #[arg(long, value_name = "k=v[,k=v]", value_parser = parse_labels)]
    pub labels: Option<Labels>,
    /// Capabilities (seed spelling): `a,b` becomes the labels
    /// `capability.sloth.dev/a=true,...`, which a string agent selector
    /// (`:agent_selector("a")` in a Lua workflow) matches.
    #[arg(long, value_name = "a[,b]", value_parser = parse_capabilities)]
    pub capabilities: Option<Labels>,
    /// Maximum concurrent TaskRuns (default: the number of CPUs).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_AGENT_CAPACITY)))]
    pub capacity: Option<u32>,
    /// Where the agent's own gRPC service (logs) listens [default: 0.0.0.0,
    /// or 127.0.0.1 when the agent has no token and no certificate].
    #[arg(long, value_name = "IP")]
    pub bind_address: Option<IpAddr>,
    /// Port of the agent's gRPC service; 0 lets the OS pick.
    #[arg(long, default_value_t = 50051)]
    pub port: u16,
    // clap help text, not markdown: `<port>` is no HTML tag.
    #[allow(rustdoc::invalid_html_tags)]
    /// What the apiserver dials to reach this agent
    /// (default: <bind-address, or 127.0.0.1 when unspecified>:<port>).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub report_address: Option<String>,
    /// Per-TaskRun working directories and output logs (default ./.sloth/agent/NAME).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// An absolute directory under which a TaskRun's `workdir` may be an
    /// absolute path (repeatable). Without it, every workdir is inside the
    /// TaskRun's own run directory.
    #[arg(long = "allow-workdir-root", value_name = "DIR", value_parser = parse_workdir_root)]
    pub allow_workdir_roots: Vec<PathBuf>,
    /// Lease of the heartbeat Lock, renewed every third of it. Payloads are
    /// stopped 2/3 of it after the last renewal that succeeded, and killed
    /// by their supervisors at 5/6 (see docs/agents.md, Fencing).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub lease_seconds: u32,
    /// Most bytes of task output kept on disk; beyond it the output of the
    /// oldest finished runs is deleted first (units K, M, G, Ki, Mi, Gi).
    #[arg(long, value_name = "BYTES", default_value = "1GiB", value_parser = crate::retention::parse_bytes)]
    pub max_output_bytes: u64,
    /// Most bytes of workspaces and artifacts cached by digest (in the
    /// work dir); the least recently used go first.
    #[arg(long, value_name = "BYTES", default_value = "2GiB", value_parser = crate::retention::parse_bytes)]
    pub blob_cache_bytes: u64,
    /// Credentials towards the apiserver. With --cert-file the agent's logs
    /// port serves TLS with that certificate too and admits only callers
    /// with a certificate of role admin (the apiserver) signed by --ca-file.
    #[command(flatten)]
    pub credentials: CredentialFlags,
    /// Not supported: prints how to run the agent under systemd and exits 2
    /// (the seeds' `agent start --daemon`).
    #[arg(long)]
    pub daemon: bool,
    /// Serve Prometheus metrics (plain HTTP, no authentication) on
    /// http://ADDR/metrics; port 0 picks one. Off when not given.
    #[arg(long, value_name = "ADDR")]
    pub metrics_address: Option<SocketAddr>,
    #[command(flatten)]
    pub log: sloth_sdk::telemetry::LogFlags,
    /// The per-run supervisor executable [default: `sloth-supervise`
    /// beside this agent's executable, else the agent itself with its
    /// hidden `supervise` subcommand] (docs/agents.md, Fencing).
    #[arg(long, value_name = "PATH")]
    pub supervisor: Option<PathBuf>,
}

/// Agent labels, as parsed from `--labels`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Labels(pub BTreeMap<String, String>);

fn parse_agent_name(value: &str) -> Result<String, String> {
    names::validate_name(value)?;
    // The heartbeat Lock is named after the agent and must be a valid name too.
    names::validate_name(&heartbeat_lock_name(value))
        .map_err(|e| format!("too long for the heartbeat lock name: {e}"))?;
    Ok(value.to_string())
}

/// Parses `k=v[,k=v]`; an empty string means no labels.
pub(crate) fn parse_labels(value: &str) -> Result<Labels, String> {
    let mut labels = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((key, val)) = item.split_once('=') else {
            return Err(format!("{item:?} must be key=value"));
        };
        names::validate_label_key(key).map_err(|e| format!("label key {key:?}: {e}"))?;
        if key.starts_with(RESTRICTED_LABEL_PREFIX) {
            return Err(format!(
                "label {key:?}: labels under {RESTRICTED_LABEL_PREFIX} are set by admins and \
                 operators (slothctl label agent NAME KEY=VALUE), not by the agent"
            ));
        }
        names::validate_label_value(val)
            .map_err(|e| format!("value of label {key:?} ({val:?}): {e}"))?;
        if labels.insert(key.to_string(), val.to_string()).is_some() {
            return Err(format!("label {key:?} is given more than once"));
        }
    }
    Ok(Labels(labels))
}

/// Parses `a[,b]`: each capability a label name (letters, digits, `-`,
/// `_`, `.`), carried as the label `capability.sloth.dev/NAME=true`.
pub(crate) fn parse_capabilities(value: &str) -> Result<Labels, String> {
    let mut labels = BTreeMap::new();
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let key = capability_label(name);
        names::validate_label_key(&key).map_err(|e| format!("capability {name:?}: {e}"))?;
        if labels.insert(key, "true".to_string()).is_some() {
            return Err(format!("capability {name:?} is given more than once"));
        }
    }
    Ok(Labels(labels))
}

/// An absolute path without `..`, so that "under this root" means what it
/// says.
fn parse_workdir_root(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value);
    if !path.is_absolute()
        || path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(format!("{value:?} must be an absolute path without `..`"));
    }
    Ok(path)
}

fn parse_host_port(value: &str) -> Result<String, String> {
    names::validate_host_port(value)?;
    Ok(value.to_string())
}

/// Everything the agent runs with, resolved from the flags.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub name: String,
    pub servers: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub capacity: u32,
    pub bind: SocketAddr,
    pub report_address: Option<String>,
    pub work_dir: PathBuf,
    pub lease: Duration,
    pub max_output_bytes: u64,
    pub blob_cache_bytes: u64,
    pub credentials: CredentialFlags,
    pub workdir_roots: Vec<PathBuf>,
    pub metrics_address: Option<SocketAddr>,
    pub supervisor: Option<PathBuf>,
}

impl Config {
    pub(crate) fn from_args(args: Args) -> Self {
        let work_dir = args
            .work_dir
            .unwrap_or_else(|| PathBuf::from(".sloth").join("agent").join(&args.name));
        Self {
            labels: args
                .labels
                .unwrap_or_default()
                .0
                .into_iter()
                .chain(args.capabilities.unwrap_or_default().0)
                .collect(),
            capacity: args.capacity.unwrap_or_else(cpu_count),
            bind: SocketAddr::new(
                args.bind_address
                    .unwrap_or_else(|| default_bind_address(&args.credentials)),
                args.port,
            ),
            report_address: args.report_address,
            work_dir,
            lease: Duration::from_secs(u64::from(args.lease_seconds)),
            max_output_bytes: args.max_output_bytes,
            blob_cache_bytes: args.blob_cache_bytes,
            servers: args.server,
            name: args.name,
            credentials: args.credentials,
            workdir_roots: args.allow_workdir_roots,
            metrics_address: args.metrics_address,
            supervisor: args.supervisor,
        }
    }

    /// The lease in whole seconds, as the Lock records it.
    pub(crate) fn lease_seconds(&self) -> u32 {
        u32::try_from(self.lease.as_secs()).unwrap_or(u32::MAX)
    }

    /// The address reported to the apiserver for a service bound at `bound`.
    pub(crate) fn report_address_for(&self, bound: SocketAddr) -> String {
        if let Some(address) = &self.report_address {
            return address.clone();
        }
        let ip = if bound.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            bound.ip()
        };
        SocketAddr::new(ip, bound.port()).to_string()
    }
}

/// All interfaces, but loopback only in development mode (no token, no
/// certificate), where the logs port cannot tell the apiserver from
/// anyone else.
fn default_bind_address(credentials: &CredentialFlags) -> IpAddr {
    if credentials.token.is_none()
        && credentials.token_file.is_none()
        && credentials.cert_file.is_none()
    {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// The number of CPUs this process may use (at least 1).
pub(crate) fn cpu_count() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
        .clamp(1, MAX_AGENT_CAPACITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_become_labels() {
        let labels = parse_capabilities("build-agents, docker").expect("valid");
        assert_eq!(labels.0["capability.sloth.dev/build-agents"], "true");
        assert_eq!(labels.0["capability.sloth.dev/docker"], "true");
        assert!(parse_capabilities("no way").is_err());
        assert!(parse_capabilities("a,a").is_err());
        let config = Config::from_args(
            Args::try_parse_from([
                "sloth-agent",
                "--name",
                "a1",
                "--labels",
                "zone=x",
                "--capabilities",
                "gpu",
            ])
            .expect("args"),
        );
        assert_eq!(config.labels["zone"], "x");
        assert_eq!(config.labels["capability.sloth.dev/gpu"], "true");
    }

    #[test]
    fn labels_parse_and_validate() {
        let labels = parse_labels("zone=eu-west, gpu=true,empty=").expect("valid");
        assert_eq!(labels.0.len(), 3);
        assert_eq!(labels.0["zone"], "eu-west");
        assert_eq!(labels.0["empty"], "");
        assert_eq!(parse_labels("").expect("empty").0.len(), 0);
        let err = parse_labels("gpu").expect_err("no =");
        assert!(err.contains("key=value"), "{err}");
        let err = parse_labels("bad key=v").expect_err("bad key");
        assert!(err.contains("label key \"bad key\""), "{err}");
        let err = parse_labels("k=no way").expect_err("bad value");
        assert!(err.contains("value of label \"k\""), "{err}");
        let err = parse_labels("restricted.sloth.dev/tier=secure").expect_err("restricted");
        assert!(err.contains("slothctl label"), "{err}");
        let err = parse_labels("k=a,k=b").expect_err("twice");
        assert!(err.contains("more than once"), "{err}");
    }

    #[test]
    fn flags_resolve_to_defaults() {
        let args =
            Args::try_parse_from(["sloth-agent", "--name", "a1", "--port", "0"]).expect("parse");
        let config = Config::from_args(args);
        assert_eq!(config.work_dir, PathBuf::from(".sloth/agent/a1"));
        assert!(config.capacity >= 1);
        assert_eq!(config.lease, Duration::from_secs(15));
        assert_eq!(config.max_output_bytes, 1 << 30);
        // No credentials: development mode, loopback only.
        assert!(config.bind.ip().is_loopback(), "{}", config.bind);
        let args = Args::try_parse_from([
            "sloth-agent",
            "--name",
            "a1",
            "--token",
            "0123456789abcdef0123",
        ])
        .expect("parse");
        assert!(Config::from_args(args).bind.ip().is_unspecified());
        let args = Args::try_parse_from([
            "sloth-agent",
            "--name",
            "a1",
            "--token-file",
            "/etc/sloth/agent.token",
        ])
        .expect("parse");
        assert!(Config::from_args(args).bind.ip().is_unspecified());
        let bound: SocketAddr = "0.0.0.0:4242".parse().expect("addr");
        assert_eq!(config.report_address_for(bound), "127.0.0.1:4242");
        let bound: SocketAddr = "10.1.2.3:4242".parse().expect("addr");
        assert_eq!(config.report_address_for(bound), "10.1.2.3:4242");
        let bound: SocketAddr = "[::1]:4242".parse().expect("addr");
        assert_eq!(config.report_address_for(bound), "[::1]:4242");
    }

    #[test]
    fn master_is_the_seeds_spelling_of_server() {
        let args = Args::try_parse_from([
            "sloth-agent",
            "--name",
            "a1",
            "--master",
            "10.0.0.5:50053,http://h:1",
        ])
        .expect("parse");
        assert_eq!(args.server, ["10.0.0.5:50053", "http://h:1"]);
    }

    #[test]
    fn bad_flags_are_rejected() {
        for bad in [
            vec!["--name", "Not_A_Name"],
            vec!["--name", "a1", "--capacity", "0"],
            vec!["--name", "a1", "--labels", "x"],
            vec!["--name", "a1", "--report-address", "http://x:1"],
            vec!["--name", "a1", "--bind-address", "nowhere"],
            vec!["--name", "a1", "--lease-seconds", "0"],
        ] {
            let argv = std::iter::once("sloth-agent").chain(bad.iter().copied());
            assert!(Args::try_parse_from(argv).is_err(), "{bad:?} was accepted");
        }
    }
}
