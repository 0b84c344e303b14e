//! Who a client certificate says its holder is: user = subject CN,
//! role = subject O (as `slothctl certs` issues them).

use x509_parser::prelude::{FromDer, X509Certificate};

/// The identity in a verified client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertIdentity {
    /// The subject CN: the user name.
    pub user: String,
    /// Empty when the certificate has no O.
    pub role: String,
}

impl CertIdentity {
    /// Reads CN and O of a DER certificate; None when it has no CN.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject = cert.subject();
        let user = subject
            .iter_common_name()
            .next()?
            .as_str()
            .ok()?
            .to_string();
        let role = subject
            .iter_organization()
            .next()
            .and_then(|o| o.as_str().ok())
            .unwrap_or_default()
            .to_string();
        Some(Self { user, role })
    }
}
