//! Where the servers are and how to authenticate: flags (or env
//! `SLOTH_SERVER`, `SLOTH_TOKEN`, handled by clap), else
//! `~/.sloth/config.yaml`, else the local default.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sloth_sdk::credentials::CredentialFlags;

use crate::error::CliError;

/// The server used when nothing else names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50053";

/// `~/.sloth/config.yaml`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// One server, or several separated by commas.
    #[serde(default)]
    pub server: Option<String>,
    #[serde(default)]
    pub servers: Vec<String>,
    /// Bearer token.
    #[serde(default)]
    pub token: Option<String>,
    /// File holding the bearer token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// CA certificate(s) the server's certificate must chain to.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Its private key.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl Config {
    /// Parses a config file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, CliError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_norway::from_str(text)
            .map_err(|e| CliError::usage(format!("invalid config file {}: {e}", path.display())))
    }

    /// The credentials the file names, as flags would give them.
    pub fn credentials(&self) -> CredentialFlags {
        CredentialFlags {
            token: self.token.clone(),
            token_file: self.token_file.clone(),
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
        }
    }

    /// The servers the file names, in order.
    pub fn server_urls(&self) -> Vec<String> {
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
pub fn default_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".sloth").join("config.yaml"))
}

/// `~/.sloth/config.yaml`; the default (empty) config when there is none.
pub fn load() -> Result<Config, CliError> {
    let Some(path) = default_path() else {
        return Ok(Config::default());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Config::parse(&text, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(CliError::usage(format!(
            "cannot read config file {}: {e}",
            path.display()
        ))),
    }
}

/// The servers to talk to: from the command line or environment when given
/// (`flag`), else from the config file, else the default.
pub fn servers(flag: &[String], config: &Config) -> Vec<String> {
    let from_flag = split_urls(flag.iter().map(String::as_str));
    if !from_flag.is_empty() {
        return from_flag;
    }
    let urls = config.server_urls();
    if !urls.is_empty() {
        return urls;
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
        assert_eq!(servers(&[], &c), ["http://a:1", "b:2", "c:3"]);
        assert_eq!(servers(&[], &Config::default()), [DEFAULT_SERVER]);
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
        let config = Config {
            server: Some("http://file:1".into()),
            ..Config::default()
        };
        let urls = servers(&["http://a:1,http://b:2".to_string()], &config);
        assert_eq!(urls, ["http://a:1", "http://b:2"]);
    }
}
