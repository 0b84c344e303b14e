//! The server side: a reloading rustls config, and an accept loop that
//! turns a TCP listener into connections (TLS or plain) that carry the
//! peer's address and verified certificate identity.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::io::MaybeTls;
use super::{CertIdentity, Reloading, TlsError};

/// A client that has not finished its handshake by then is dropped, so a
/// slow or silent peer cannot hold a handshake slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait in the
/// kernel's backlog.
const MAX_HANDSHAKES: usize = 256;

/// The files of a server's TLS configuration.
#[derive(Clone, Debug)]
pub struct ServerTlsFiles {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// The certificate's private key (PEM).
    pub key: PathBuf,
    /// Client certificates are verified against this CA.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: a client without a certificate may still connect
    /// (and authenticate otherwise); a wrong certificate never may.
    pub client_certificate_optional: bool,
}

/// A server's TLS configuration, rebuilt when its files change.
#[derive(Debug)]
pub struct ServerTls {
    config: Reloading<rustls::ServerConfig>,
}

impl ServerTls {
    /// Reads the files, and reloads them when they change; fails when they
    /// cannot be used now.
    pub fn load(files: ServerTlsFiles) -> Result<Self, TlsError> {
        let mut paths = vec![files.cert.clone(), files.key.clone()];
        paths.extend(files.client_ca.clone());
        let config = Reloading::new("server TLS certificate", paths, move || build(&files))?;
        Ok(Self { config })
    }

    /// The configuration built from the files' current content.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.current()
    }
}

fn build(files: &ServerTlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    let provider = super::provider();
    let invalid = |path: &PathBuf, e: &dyn std::fmt::Display| TlsError::Invalid {
        path: path.clone(),
        message: e.to_string(),
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(&files.cert, &e))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(super::roots(ca)?),
                provider,
            );
            if files.client_certificate_optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|e| invalid(ca, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(
            super::certificates(&files.cert)?,
            super::private_key(&files.key)?,
        )
        .map_err(|e| {
            invalid(
                &files.key,
                &format!("does not fit {}: {e}", files.cert.display()),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// The identity of a client certificate the handshake verified.
    pub certificate: Option<CertIdentity>,
}

/// An accepted connection, TLS or plain.
pub struct Conn {
    io: MaybeTls<tokio_rustls::server::TlsStream<TcpStream>>,
    peer: PeerInfo,
}

impl Conn {
    /// Who is on the other end.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Accepts connections on `listener` until `shutdown`: with `tls`, each
/// completes its handshake (with the configuration current at that moment)
/// before it is handed on; one that fails is closed and logged.
pub fn accept(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    shutdown: CancellationToken,
) -> mpsc::Receiver<Conn> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, remote_addr) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: give the
                    // process a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Small replies would otherwise wait on delayed ACKs (~40 ms).
            let _ = stream.set_nodelay(true);
            let Some(tls) = &tls else {
                let conn = Conn {
                    io: MaybeTls::Plain(stream),
                    peer: PeerInfo {
                        remote_addr,
                        certificate: None,
                    },
                };
                if tx.send(conn).await.is_err() {
                    return;
                }
                continue;
            };
            let Ok(permit) = handshakes.clone().acquire_owned().await else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let handshake =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                let stream = match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::info!(peer = %remote_addr, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(peer = %remote_addr, "TLS handshake timed out");
                        return;
                    }
                };
                let certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| CertIdentity::from_der(leaf));
                let conn = Conn {
                    io: MaybeTls::Tls(Box::new(stream)),
                    peer: PeerInfo {
                        remote_addr,
                        certificate,
                    },
                };
                let _ = tx.send(conn).await;
            });
        }
    });
    rx
}
