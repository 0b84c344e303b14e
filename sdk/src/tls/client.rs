//! The client side: a reloading rustls config and the connector tonic
//! dials through (plain TCP for `http://`, TLS for `https://`).

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use super::io::MaybeTls;
use super::{Reloading, TlsError};

/// TCP connect plus handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The files of a client's TLS configuration.
#[derive(Clone, Debug, Default)]
pub struct ClientTlsFiles {
    /// CA certificates the server's certificate must chain to.
    pub ca: PathBuf,
    /// Client certificate and key, for mutual TLS.
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
}

/// A client's TLS configuration, rebuilt when its files change.
#[derive(Debug)]
pub struct ClientTls {
    config: Reloading<rustls::ClientConfig>,
}

impl ClientTls {
    /// Reads the files, and reloads them when they change; fails when they
    /// cannot be used now.
    pub fn load(files: ClientTlsFiles) -> Result<Self, TlsError> {
        let mut paths = vec![files.ca.clone()];
        if let Some((cert, key)) = &files.cert_and_key {
            paths.extend([cert.clone(), key.clone()]);
        }
        let config = Reloading::new("client TLS configuration", paths, move || build(&files))?;
        Ok(Self { config })
    }

    /// The configuration built from the files' current content.
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        self.config.current()
    }
}

fn build(files: &ClientTlsFiles) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid {
            path: files.ca.clone(),
            message: e.to_string(),
        })?
        .with_root_certificates(super::roots(&files.ca)?);
    let mut config = match &files.cert_and_key {
        Some((cert, key)) => builder
            .with_client_auth_cert(super::certificates(cert)?, super::private_key(key)?)
            .map_err(|e| TlsError::Invalid {
                path: key.clone(),
                message: format!("does not fit {}: {e}", cert.display()),
            })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Dials `http://` URIs over TCP and `https://` ones over TLS. Cheap to
/// clone.
#[derive(Clone, Debug, Default)]
pub struct Connector {
    tls: Option<Arc<ClientTls>>,
    /// Checked against the server's certificate instead of the URI's host
    /// (the apiserver dialing an agent by address checks the agent's name).
    server_name: Option<String>,
}

impl Connector {
    /// A connector; without `tls` only `http://` URIs can be dialed.
    pub fn new(tls: Option<Arc<ClientTls>>) -> Self {
        Self {
            tls,
            server_name: None,
        }
    }

    /// Verifies the server's certificate for `name` whatever host is dialed.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    async fn connect(self, uri: Uri) -> io::Result<Io> {
        let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
        let host = uri
            .host()
            .ok_or_else(|| invalid(format!("{uri}: no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        tcp.set_nodelay(true)?;
        if !https {
            return Ok(Io::Plain(tcp));
        }
        let tls = self.tls.as_ref().ok_or_else(|| {
            invalid(format!(
                "{uri} needs TLS, but no CA file is set (--ca-file)"
            ))
        })?;
        let name = self.server_name.unwrap_or(host);
        let name = ServerName::try_from(name.clone())
            .map_err(|e| invalid(format!("{name:?} is not a valid TLS server name: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(tls.config())
            .connect(name, tcp)
            .await?;
        Ok(Io::Tls(Box::new(stream)))
    }
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<Io>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Io>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(uri)).await {
                Ok(io) => io.map(TokioIo::new),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {CONNECT_TIMEOUT:?}"),
                )),
            }
        })
    }
}

/// A dialed connection, TLS or plain.
pub(super) type Io = MaybeTls<tokio_rustls::client::TlsStream<TcpStream>>;
