//! The credential flags every client binary takes (`--token`, `--ca-file`,
//! `--cert-file`, `--key-file`), turned into [`ClientOptions`].

use std::path::PathBuf;

use crate::client::ClientOptions;
use crate::tls::ClientTlsFiles;

/// How a client proves who it is and checks whom it talks to.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct CredentialFlags {
    /// Bearer token (also env SLOTH_TOKEN).
    #[arg(long, global = true, env = "SLOTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate(s) the server's certificate must chain to (PEM);
    /// with it, server URLs without a scheme are dialed with TLS.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --key-file.
    #[arg(long, global = true, value_name = "FILE")]
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM) of --cert-file.
    #[arg(long, global = true, value_name = "FILE")]
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
        Ok(ClientOptions {
            tls,
            token: self.token.clone().or(fallback.token.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
