//! Where the servers are and how to authenticate: flags (or env
//! `SLOTH_SERVER`, `SLOTH_TOKEN`, handled by clap), else the config file
//! (`--config`, env `SLOTH_CONFIG`, else `~/.sloth/config.yaml`): its
//! current context's cluster and user (kubeconfig-like), else its
//! top-level one-server keys; else the local default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sloth_sdk::credentials::CredentialFlags;

use crate::error::CliError;

/// The server used when nothing else names one.
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:50053";

/// `~/.sloth/config.yaml`. The top-level keys are the one-server form
/// (still read when no context is in use); `clusters`, `users` and
/// `contexts` are the kubeconfig-like form.
#[derive(Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Config {
    /// One server, or several separated by commas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// File holding the bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// CA certificate(s) the server's certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// Its private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Namespace when no context gives one and -n is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The context used when --context is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<NamedCluster>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<NamedUser>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<NamedContext>,
    /// The apiserver's HTTP address (REST and the dashboard), for `slothctl ui`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_server: Option<String>,
}

/// Where a control plane is.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NamedCluster {
    pub name: String,
    /// One server, or several separated by commas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The apiserver's HTTP address (REST and the dashboard), for `slothctl ui`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_server: Option<String>,
}

/// How to authenticate.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NamedUser {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

/// A cluster, a user and a namespace, chosen together by name.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NamedContext {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What the config file says for one invocation: the context's cluster,
/// user and namespace, or the top-level keys.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    pub servers: Vec<String>,
    pub credentials: CredentialFlags,
    pub namespace: Option<String>,
    /// The HTTP address the file names (`httpServer`), if any.
    pub http_server: Option<String>,
}

impl Config {
    /// Parses a config file's text; `path` names it in errors.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self, CliError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_norway::from_str(text)
            .map_err(|e| CliError::usage(format!("invalid config file {}: {e}", path.display())))
    }

    /// The credentials the file names, as flags would give them.
    pub(crate) fn credentials(&self) -> CredentialFlags {
        CredentialFlags {
            token: self.token.clone(),
            token_file: self.token_file.clone(),
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
        }
    }

    /// The servers the file names, in order.
    pub(crate) fn server_urls(&self) -> Vec<String> {
        let mut urls = split_urls(self.server.iter().map(String::as_str));
        urls.extend(split_urls(self.servers.iter().map(String::as_str)));
        urls
    }
}

/// Splits comma-separated URLs and drops empty ones.
fn split_urls<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    items
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `$HOME/.sloth/config.yaml`, when HOME is set.
pub(crate) fn default_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".sloth").join("config.yaml"))
}

/// The config file at `path` (None: none is known); the default (empty)
/// config when there is none.
pub(crate) fn load(path: Option<&Path>) -> Result<Config, CliError> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Config::parse(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(CliError::usage(format!(
            "cannot read config file {}: {e}",
            path.display()
        ))),
    }
}

impl Config {
    /// The cluster, user and namespace of `context` (--context), else of
    /// the current context, else the top-level keys. A context, cluster or
    /// user named but missing is an error naming it.
    pub(crate) fn resolve(&self, context: Option<&str>) -> Result<Resolved, CliError> {
        let Some(name) = context.or(self.current_context.as_deref()) else {
            return Ok(Resolved {
                servers: self.server_urls(),
                credentials: self.credentials(),
                namespace: self.namespace.clone(),
                http_server: self.http_server.clone(),
            });
        };
        let context = self.context(name)?;
        let cluster = match &context.cluster {
            Some(c) => Some(self.clusters.iter().find(|x| &x.name == c).ok_or_else(|| {
                CliError::usage(format!(
                    "context {name:?} names cluster {c:?}, which does not exist"
                ))
            })?),
            None => None,
        };
        let user = match &context.user {
            Some(u) => Some(self.users.iter().find(|x| &x.name == u).ok_or_else(|| {
                CliError::usage(format!(
                    "context {name:?} names user {u:?}, which does not exist"
                ))
            })?),
            None => None,
        };
        let servers = cluster.map_or_else(Vec::new, |c| {
            let mut urls = split_urls(c.server.iter().map(String::as_str));
            urls.extend(split_urls(c.servers.iter().map(String::as_str)));
            urls
        });
        let credentials = CredentialFlags {
            token: user.and_then(|u| u.token.clone()),
            token_file: user.and_then(|u| u.token_file.clone()),
            ca_file: cluster.and_then(|c| c.ca_file.clone()),
            cert_file: user.and_then(|u| u.cert_file.clone()),
            key_file: user.and_then(|u| u.key_file.clone()),
        };
        Ok(Resolved {
            servers,
            credentials,
            namespace: context.namespace.clone().filter(|n| !n.is_empty()),
            http_server: cluster.and_then(|c| c.http_server.clone()),
        })
    }

    /// The context called `name`, or kubectl's error.
    pub(crate) fn context(&self, name: &str) -> Result<&NamedContext, CliError> {
        self.contexts
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| CliError::usage(format!("no context exists with the name: {name:?}")))
    }
}

/// The servers to talk to: from the command line or environment when given
/// (`flag`), else from the config file, else the default.
pub(crate) fn servers(flag: &[String], config: &Resolved) -> Vec<String> {
    let from_flag = split_urls(flag.iter().map(String::as_str));
    if !from_flag.is_empty() {
        return from_flag;
    }
    if !config.servers.is_empty() {
        return config.servers.clone();
    }
    vec![DEFAULT_SERVER.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_accepts_one_or_many_servers_and_later_keys() {
        let path = Path::new("config.yaml");
        let c = Config::parse("server: http://a:1\n", path).expect("parse");
        assert_eq!(c.server_urls(), ["http://a:1"]);
        let c = Config::parse(
            "servers: [http://a:1, 'b:2,c:3']\ntoken: t\ncaFile: /etc/ca.pem\ncertFile: c.pem\nkeyFile: k.pem\n",
            path,
        )
        .expect("parse");
        assert_eq!(c.server_urls(), ["http://a:1", "b:2", "c:3"]);
        assert_eq!(c.credentials().token.as_deref(), Some("t"));
        assert_eq!(c.credentials().key_file, Some(PathBuf::from("k.pem")));
        let resolved = c.resolve(None).expect("no contexts");
        assert_eq!(servers(&[], &resolved), ["http://a:1", "b:2", "c:3"]);
        assert_eq!(servers(&[], &Resolved::default()), [DEFAULT_SERVER]);
        assert_eq!(Config::parse("", path).expect("empty"), Config::default());
    }

    #[test]
    fn config_typos_are_errors_naming_the_file() {
        let e = Config::parse("sever: x\n", Path::new("/h/.sloth/config.yaml"))
            .expect_err("unknown key");
        assert_eq!(e.code, crate::error::USAGE);
        assert!(e.message.contains("/h/.sloth/config.yaml"), "{e}");
        assert!(e.message.contains("sever"), "{e}");
    }

    #[test]
    fn flag_wins_and_is_split_on_commas() {
        let config = Resolved {
            servers: vec!["http://file:1".into()],
            ..Resolved::default()
        };
        let urls = servers(&["http://a:1,http://b:2".to_string()], &config);
        assert_eq!(urls, ["http://a:1", "http://b:2"]);
    }

    const CONTEXTS: &str = "\
currentContext: dev
server: http://legacy:1
clusters:
- name: prod
  servers: [https://p1:50053, https://p2:50053]
  caFile: /etc/sloth/ca.pem
- name: dev
  server: http://127.0.0.1:50053
users:
- name: admin
  tokenFile: /etc/sloth/token
contexts:
- name: prod
  cluster: prod
  user: admin
  namespace: ci
- name: dev
  cluster: dev
- name: broken
  cluster: nowhere
";

    #[test]
    fn contexts_choose_cluster_user_and_namespace() {
        let c = Config::parse(CONTEXTS, Path::new("c.yaml")).expect("parse");
        let dev = c.resolve(None).expect("current");
        assert_eq!(dev.servers, ["http://127.0.0.1:50053"]);
        assert_eq!(dev.namespace, None);
        let prod = c.resolve(Some("prod")).expect("prod");
        assert_eq!(prod.servers, ["https://p1:50053", "https://p2:50053"]);
        assert_eq!(prod.namespace.as_deref(), Some("ci"));
        assert_eq!(
            prod.credentials.token_file,
            Some(PathBuf::from("/etc/sloth/token"))
        );
        assert_eq!(
            prod.credentials.ca_file,
            Some(PathBuf::from("/etc/sloth/ca.pem"))
        );
        let e = c.resolve(Some("nope")).expect_err("missing");
        assert_eq!(
            e.message,
            r#"error: no context exists with the name: "nope""#
        );
        let e = c.resolve(Some("broken")).expect_err("missing cluster");
        assert!(e.message.contains(r#"cluster "nowhere""#), "{e}");
    }

    #[test]
    fn the_file_round_trips() {
        let c = Config::parse(CONTEXTS, Path::new("c.yaml")).expect("parse");
        let text = serde_norway::to_string(&c).expect("yaml");
        assert_eq!(Config::parse(&text, Path::new("c.yaml")).expect("again"), c);
        assert!(text.contains("currentContext: dev"), "{text}");
    }
}
