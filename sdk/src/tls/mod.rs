//! TLS for every Sloth process, on rustls with the ring provider: server
//! and client configurations that reload their files when they change on
//! disk, the identity a client certificate carries, and the connection
//! types servers accept and clients dial.

mod client;
mod files;
mod identity;
mod io;
mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use client::{ClientTls, ClientTlsFiles, Connector};
pub use files::Reloading;
pub use identity::CertIdentity;
pub use io::MaybeTls;
pub use server::{Conn, PeerInfo, ServerTls, ServerTlsFiles, accept};

/// Why a TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error of the file system.
        source: std::io::Error,
    },
    /// A certificate file holds no PEM certificate.
    #[error("{path}: no PEM certificate in it")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A key file holds no usable PEM private key.
    #[error("{path}: no PEM private key in it: {message}")]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM reader found instead.
        message: String,
    },
    /// The files were read but do not make a configuration (a key that does
    /// not fit its certificate, a bad CA).
    #[error("{path}: {message}")]
    Invalid {
        /// The file the problem is blamed on.
        path: PathBuf,
        /// What rustls said.
        message: String,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    let pem = read(path)?;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<rustls_pki_types::PrivateKeyDer<'static>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    let pem = read(path)?;
    rustls_pki_types::PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::NoKey {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(|e| TlsError::Invalid {
            path: path.to_path_buf(),
            message: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}
