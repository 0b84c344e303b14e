//! The apiserver's security settings from its flags: TLS, who may
//! authenticate how, and where to listen by default.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use sloth_apiserver::access::auth::Authenticator;
use sloth_sdk::tls::{ClientTls, ClientTlsFiles, ServerTls, ServerTlsFiles};

use crate::Args;

pub(crate) struct Security {
    pub grpc_tls: Option<Arc<ServerTls>>,
    pub http_tls: Option<Arc<ServerTls>>,
    /// How the apiserver presents itself to agents' TLS logs ports.
    pub agent_tls: Option<Arc<ClientTls>>,
    pub authenticator: Authenticator,
}

impl Security {
    pub(crate) fn from_args(args: &Args) -> anyhow::Result<Self> {
        let server_tls = |client_certificate_optional| -> anyhow::Result<_> {
            let (Some(cert), Some(key)) = (&args.tls_cert_file, &args.tls_key_file) else {
                return Ok(None);
            };
            let tls = ServerTls::load(ServerTlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_ca_file.clone(),
                client_certificate_optional,
            })
            .context("cannot set up TLS")?;
            Ok(Some(Arc::new(tls)))
        };
        // The API refuses clients without a certificate at the handshake;
        // the HTTP port lets them through for /healthz and /readyz (load
        // balancers) and authenticates /metrics by token or certificate.
        let grpc_tls = server_tls(false)?;
        let http_tls = server_tls(true)?;
        let agent_tls = match (&args.tls_ca_file, &args.tls_cert_file, &args.tls_key_file) {
            (Some(ca), Some(cert), Some(key)) => Some(Arc::new(
                ClientTls::load(ClientTlsFiles {
                    ca: ca.clone(),
                    cert_and_key: Some((cert.clone(), key.clone())),
                })
                .context("cannot set up TLS towards agents")?,
            )),
            _ => None,
        };
        let authenticator = Authenticator::new(args.token_file.clone(), args.tls_ca_file.is_some())
            .context("cannot use --token-file")?;
        Ok(Self {
            grpc_tls,
            http_tls,
            agent_tls,
            authenticator,
        })
    }

    /// All interfaces when callers must authenticate, loopback otherwise:
    /// an open apiserver runs commands on every agent for anyone.
    pub(crate) fn default_addr(&self, port: u16) -> SocketAddr {
        let ip = if self.authenticator.enabled() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        };
        SocketAddr::new(ip, port)
    }

    pub(crate) fn warn_if_open(&self, addr: SocketAddr) {
        if self.authenticator.enabled() {
            return;
        }
        if addr.ip().is_loopback() {
            tracing::warn!(
                "unauthenticated: no --token-file or --tls-ca-file, so every caller is admin; \
                 listening on loopback only (docs/security.md)"
            );
        } else {
            tracing::warn!(
                %addr,
                "UNAUTHENTICATED ON A NETWORK ADDRESS: no --token-file or --tls-ca-file, so \
                 anyone who reaches {addr} can run commands on every agent (docs/security.md)"
            );
        }
        if self.grpc_tls.is_none() {
            tracing::info!("serving without TLS (--tls-cert-file, --tls-key-file)");
        }
    }
}
