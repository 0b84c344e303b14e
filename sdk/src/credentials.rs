//! The credential flags every client binary takes (`--token`, `--ca-file`,
//! `--cert-file`, `--key-file`), turned into [`ClientOptions`].

use std::path::PathBuf;

use crate::client::ClientOptions;
use crate::tls::ClientTlsFiles;

/// How a client proves who it is and checks whom it talks to.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct CredentialFlags {
    /// Bearer token (also env SLOTH_TOKEN). Visible to other users in
    /// `ps`: prefer --token-file.
    #[arg(long, global = true, env = "SLOTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the bearer token (also env SLOTH_TOKEN_FILE), so that
    /// the token stays out of the process list; surrounding whitespace is
    /// ignored.
    #[arg(long, global = true, env = "SLOTH_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificate(s) the server's certificate must chain to (PEM);
    /// with it, server URLs without a scheme are dialed with TLS (also env
    /// SLOTH_CA_FILE).
    #[arg(long, global = true, env = "SLOTH_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --key-file (also env
    /// SLOTH_CERT_FILE).
    #[arg(long, global = true, env = "SLOTH_CERT_FILE", value_name = "FILE")]
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM) of --cert-file (also env SLOTH_KEY_FILE).
    #[arg(long, global = true, env = "SLOTH_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// A flag combination that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CredentialError(String);

impl CredentialFlags {
    /// The options these flags give; `fallback` fills what a flag leaves
    /// unset (slothctl's config file).
    pub fn options(&self, fallback: &CredentialFlags) -> Result<ClientOptions, CredentialError> {
        let pick = |flag: &Option<PathBuf>, other: &Option<PathBuf>| flag.clone().or(other.clone());
        let ca = pick(&self.ca_file, &fallback.ca_file);
        let cert = pick(&self.cert_file, &fallback.cert_file);
        let key = pick(&self.key_file, &fallback.key_file);
        let cert_and_key = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => return Err(CredentialError("--cert-file needs --key-file".into())),
            (None, Some(_)) => return Err(CredentialError("--key-file needs --cert-file".into())),
        };
        let tls = match (ca, cert_and_key) {
            (Some(ca), cert_and_key) => Some(ClientTlsFiles { ca, cert_and_key }),
            (None, Some(_)) => {
                return Err(CredentialError(
                    "--cert-file needs --ca-file (the CA that signed the server's certificate)"
                        .into(),
                ));
            }
            (None, None) => None,
        };
        let token = match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => {
                return Err(CredentialError(
                    "--token and --token-file (or SLOTH_TOKEN and SLOTH_TOKEN_FILE) are both \
                     set: give one"
                        .into(),
                ));
            }
            (Some(token), None) => Some(token.clone()),
            (None, Some(file)) => Some(read_token_file(file)?),
            (None, None) => match &fallback.token_file {
                Some(file) if fallback.token.is_none() => Some(read_token_file(file)?),
                _ => fallback.token.clone(),
            },
        };
        Ok(ClientOptions { tls, token })
    }
}

/// The token in `path`, trimmed; an empty or unreadable file is an error.
fn read_token_file(path: &std::path::Path) -> Result<String, CredentialError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CredentialError(format!("cannot read --token-file {}: {e}", path.display()))
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CredentialError(format!(
            "--token-file {} is empty",
            path.display()
        )));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_gives_the_token_and_excludes_a_token_flag() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("token");
        std::fs::write(&file, "  secret-token\n").expect("write");
        let flags = CredentialFlags {
            token_file: Some(file.clone()),
            ..CredentialFlags::default()
        };
        let fallback = CredentialFlags {
            token: Some("from-config".into()),
            ..CredentialFlags::default()
        };
        let options = flags.options(&fallback).expect("options");
        assert_eq!(options.token.as_deref(), Some("secret-token"));
        let both = CredentialFlags {
            token: Some("t".into()),
            ..flags.clone()
        };
        let e = both.options(&fallback).expect_err("both");
        assert!(e.to_string().contains("--token-file"), "{e}");
        std::fs::write(&file, "\n").expect("write");
        let e = flags.options(&fallback).expect_err("empty");
        assert!(e.to_string().contains("is empty"), "{e}");
        let missing = CredentialFlags {
            token_file: Some(dir.path().join("nope")),
            ..CredentialFlags::default()
        };
        assert!(missing.options(&fallback).is_err());
    }

    #[test]
    fn flags_win_over_the_fallback_and_half_pairs_are_errors() {
        let fallback = CredentialFlags {
            token: Some("from-file".into()),
            ca_file: Some("/file/ca.pem".into()),
            ..CredentialFlags::default()
        };
        let flags = CredentialFlags {
            token: Some("from-flag".into()),
            ..CredentialFlags::default()
        };
        let options = flags.options(&fallback).expect("options");
        assert_eq!(options.token.as_deref(), Some("from-flag"));
        assert_eq!(
            options.tls.map(|t| t.ca),
            Some(PathBuf::from("/file/ca.pem"))
        );

        let half = CredentialFlags {
            cert_file: Some("c.pem".into()),
            ..CredentialFlags::default()
        };
        let e = half
            .options(&CredentialFlags::default())
            .expect_err("cert without key");
        assert!(e.to_string().contains("--key-file"), "{e}");
        let no_ca = CredentialFlags {
            cert_file: Some("c.pem".into()),
            key_file: Some("k.pem".into()),
            ..CredentialFlags::default()
        };
        let e = no_ca
            .options(&CredentialFlags::default())
            .expect_err("no CA");
        assert!(e.to_string().contains("--ca-file"), "{e}");
    }
}
