//! `slothctl config ...`: kubectl config's commands on slothctl's config
//! file (`--config`, SLOTH_CONFIG, else ~/.sloth/config.yaml). Changes are
//! written to a temporary file renamed over the old one, readable by the
//! owner only (the file may hold tokens).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::cli::Cli;
use crate::config::{Config, NamedCluster, NamedContext, NamedUser, load};
use crate::error::CliError;
use crate::printer::{emit, table};

/// What tokens are shown as by `config view` without `--raw`.
const REDACTED: &str = "REDACTED";

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the config file (tokens REDACTED unless --raw).
    View(ViewArgs),
    /// List the contexts; the current one is marked with `*`.
    GetContexts,
    /// Print the current context's name.
    CurrentContext,
    /// Make NAME the current context.
    UseContext(NameArg),
    /// Create or change a context: --cluster, --user, and the global
    /// -n/--namespace; NAME defaults to the current context with --current.
    SetContext(SetContextArgs),
    // clap help text, not markdown: `[,URL]` is no link.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// Create or change a cluster: the global --server URL[,URL] and
    /// --ca-file.
    SetCluster(NameArg),
    /// Create or change a user: the global --token, --token-file,
    /// --cert-file and --key-file.
    SetCredentials(NameArg),
}

#[derive(Debug, Args)]
pub(crate) struct ViewArgs {
    /// Show tokens as they are.
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Args)]
pub(crate) struct NameArg {
    pub name: String,
}

#[derive(Debug, Args)]
pub(crate) struct SetContextArgs {
    /// The context (not with --current).
    pub name: Option<String>,
    /// Change the current context.
    #[arg(long)]
    pub current: bool,
    /// The cluster it uses.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The user it uses.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

pub(crate) fn run(cli: &Cli, command: &ConfigCommand) -> anyhow::Result<()> {
    let path = cli
        .config_file()
        .ok_or_else(|| CliError::usage("no config file: set HOME, --config or SLOTH_CONFIG"))?;
    let mut config = load(Some(&path))?;
    let message = match command {
        ConfigCommand::View(args) => {
            if !args.raw {
                redact(&mut config);
            }
            return Ok(emit(&yaml(&config)?)?);
        }
        ConfigCommand::GetContexts => return Ok(emit(&contexts_table(&config))?),
        ConfigCommand::CurrentContext => {
            let name = config
                .current_context
                .ok_or_else(|| CliError::failed("current-context is not set"))?;
            return Ok(emit(&format!("{name}\n"))?);
        }
        ConfigCommand::UseContext(NameArg { name }) => {
            config.context(name)?;
            config.current_context = Some(name.clone());
            format!("Switched to context {name:?}.")
        }
        ConfigCommand::SetContext(args) => set_context(&mut config, args, cli.namespace.clone())?,
        ConfigCommand::SetCluster(NameArg { name }) => {
            let cluster = entry(
                &mut config.clusters,
                name,
                |c| &c.name,
                |n| NamedCluster {
                    name: n,
                    ..NamedCluster::default()
                },
            );
            if !cli.server.is_empty() {
                cluster.server = Some(cli.server.join(","));
                cluster.servers.clear();
            }
            if let Some(ca) = &cli.credentials.ca_file {
                cluster.ca_file = Some(absolute(ca));
            }
            format!("Cluster {name:?} set.")
        }
        ConfigCommand::SetCredentials(NameArg { name }) => {
            let flags = &cli.credentials;
            let user = entry(
                &mut config.users,
                name,
                |u| &u.name,
                |n| NamedUser {
                    name: n,
                    ..NamedUser::default()
                },
            );
            if flags.token.is_some() {
                user.token = flags.token.clone();
            }
            if let Some(f) = &flags.token_file {
                user.token_file = Some(absolute(f));
            }
            if let Some(f) = &flags.cert_file {
                user.cert_file = Some(absolute(f));
            }
            if let Some(f) = &flags.key_file {
                user.key_file = Some(absolute(f));
            }
            format!("User {name:?} set.")
        }
    };
    save(&path, &config)?;
    emit(&format!("{message}\n"))?;
    Ok(())
}

fn set_context(
    config: &mut Config,
    args: &SetContextArgs,
    namespace: Option<String>,
) -> Result<String, CliError> {
    let name = match (&args.name, args.current) {
        (Some(name), false) => name.clone(),
        (None, true) => config
            .current_context
            .clone()
            .ok_or_else(|| CliError::usage("--current: no current context is set"))?,
        _ => {
            return Err(CliError::usage(
                "give a context NAME or --current (not both)",
            ));
        }
    };
    let existed = config.contexts.iter().any(|c| c.name == name);
    let context = entry(
        &mut config.contexts,
        &name,
        |c| &c.name,
        |n| NamedContext {
            name: n,
            ..NamedContext::default()
        },
    );
    if args.cluster.is_some() {
        context.cluster = args.cluster.clone();
    }
    if args.user.is_some() {
        context.user = args.user.clone();
    }
    if namespace.is_some() {
        context.namespace = namespace;
    }
    Ok(format!(
        "Context {name:?} {}.",
        if existed { "modified" } else { "created" }
    ))
}

/// The item called `name`, added when there is none.
fn entry<'a, T>(
    items: &'a mut Vec<T>,
    name: &str,
    name_of: impl Fn(&T) -> &String,
    make: impl FnOnce(String) -> T,
) -> &'a mut T {
    let index = match items.iter().position(|i| name_of(i) == name) {
        Some(index) => index,
        None => {
            items.push(make(name.to_string()));
            items.len() - 1
        }
    };
    &mut items[index]
}

/// Paths are stored absolute, so the file works from any directory.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// kubectl's `get-contexts` table.
fn contexts_table(config: &Config) -> String {
    let headers: Vec<String> = ["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]
        .map(String::from)
        .to_vec();
    let rows: Vec<Vec<String>> = config
        .contexts
        .iter()
        .map(|c| {
            let current = config.current_context.as_deref() == Some(c.name.as_str());
            vec![
                if current { "*" } else { "" }.to_string(),
                c.name.clone(),
                c.cluster.clone().unwrap_or_default(),
                c.user.clone().unwrap_or_default(),
                c.namespace.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table::render(Some(&headers), &rows)
}

fn redact(config: &mut Config) {
    let hide = |t: &mut Option<String>| {
        if t.is_some() {
            *t = Some(REDACTED.to_string());
        }
    };
    hide(&mut config.token);
    for user in &mut config.users {
        hide(&mut user.token);
    }
}

fn yaml(config: &Config) -> Result<String, CliError> {
    serde_norway::to_string(config)
        .map_err(|e| CliError::failed(format!("cannot encode the config: {e}")))
}

/// Writes `config` to `path` atomically, mode 0600.
fn save(path: &Path, config: &Config) -> Result<(), CliError> {
    let text = yaml(config)?;
    let fail = |what: &str, e: std::io::Error| {
        CliError::failed(format!("cannot {what} config file {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail("create the directory of the", e))?;
    }
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| fail("write the", e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| fail("write the", e))?;
    std::fs::rename(&temp, path).map_err(|e| fail("replace the", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_context_creates_then_modifies() {
        let mut config = Config::default();
        let args = SetContextArgs {
            name: Some("prod".into()),
            current: false,
            cluster: Some("p".into()),
            user: None,
        };
        let m = set_context(&mut config, &args, Some("ci".into())).expect("create");
        assert_eq!(m, r#"Context "prod" created."#);
        let args = SetContextArgs {
            name: Some("prod".into()),
            current: false,
            cluster: None,
            user: Some("admin".into()),
        };
        let m = set_context(&mut config, &args, None).expect("modify");
        assert_eq!(m, r#"Context "prod" modified."#);
        assert_eq!(
            config.contexts,
            [NamedContext {
                name: "prod".into(),
                cluster: Some("p".into()),
                user: Some("admin".into()),
                namespace: Some("ci".into()),
            }]
        );
        config.current_context = Some("prod".into());
        let table = contexts_table(&config);
        assert_eq!(
            table,
            "CURRENT   NAME   CLUSTER   AUTHINFO   NAMESPACE\n*         prod   p         admin      ci\n"
        );
    }
}
