//! Making the certificates with rcgen (ring): the CA, certificates signed by
//! it, and loading an existing CA back. The server reads who a client is
//! from its certificate: the user is the subject CN, the role the subject O.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The subject CN of the CA.
pub(super) const CA_COMMON_NAME: &str = "Sloth CA";
/// How long the CA is valid: 10 years.
pub(super) const CA_DAYS: u32 = 3650;
/// Hosts every server certificate of `certs init` is valid for.
pub(super) const ALWAYS_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// Validity starts this much before now, for clocks slightly behind.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// A certificate and its private key, both PEM.
pub(super) struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A loaded or freshly made CA that can sign certificates.
pub(super) struct Ca {
    pub pair: Pair,
    issuer: Issuer<'static, KeyPair>,
    /// When the CA certificate expires (Unix seconds).
    pub not_after: i64,
}

/// What goes into a certificate signed by the CA.
pub(super) struct Leaf<'a> {
    /// Subject CN: the user name (e.g. `admin`, `agent:build-1`).
    pub common_name: &'a str,
    /// Subject O: the role.
    pub organization: &'a str,
    /// Subject alternative names; IP addresses become IP SANs, the rest DNS SANs.
    pub hosts: &'a [String],
    /// Also usable as a server certificate (EKU serverAuth besides clientAuth).
    pub server_auth: bool,
    pub days: u32,
}

/// The SAN of one host: an IP address or a DNS name.
pub(super) fn san(host: &str) -> anyhow::Result<SanType> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let name = host
        .try_into()
        .with_context(|| format!("host {host:?} is neither an IP address nor a DNS name"))?;
    Ok(SanType::DnsName(name))
}

/// Makes `params` valid for `days` days from now (from an hour ago, for
/// clocks slightly behind).
fn set_validity(params: &mut CertificateParams, days: u32) -> anyhow::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + now.saturating_sub(BACKDATE);
    params.not_after = epoch + now + DAY * days;
    Ok(())
}

fn subject(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        name.push(DnType::OrganizationName, organization);
    }
    name
}

fn new_key() -> anyhow::Result<KeyPair> {
    // ECDSA P-256 with SHA-256 (ring).
    KeyPair::generate().context("cannot generate a private key")
}

/// Unix seconds of an rcgen time.
fn unix(params: &CertificateParams) -> i64 {
    params.not_after.unix_timestamp()
}

impl Ca {
    /// A new self-signed CA: CN `Sloth CA`, basic constraints CA, key usages
    /// keyCertSign and cRLSign, valid [`CA_DAYS`] days.
    pub(super) fn generate() -> anyhow::Result<Self> {
        let key = new_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(CA_COMMON_NAME, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, CA_DAYS)?;
        let cert = params
            .self_signed(&key)
            .context("cannot make the CA certificate")?;
        let pair = Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        let not_after = unix(&params);
        Ok(Self {
            pair,
            issuer: Issuer::new(params, key),
            not_after,
        })
    }

    /// Loads a CA from its certificate and key (PEM). The error says what is
    /// wrong, without naming the files (the caller does).
    pub(super) fn load(cert_pem: &str, key_pem: &str) -> Result<Self, LoadError> {
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| LoadError::Key(format!("not a PEM private key: {e}")))?;
        let der = pem_certificate(cert_pem).map_err(LoadError::Cert)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| LoadError::Cert(format!("not an X.509 certificate: {e}")))?;
        match cert.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => {}
            _ => return Err(LoadError::Cert("not a CA certificate".into())),
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(LoadError::Key(
                "does not belong to the CA certificate".into(),
            ));
        }
        let not_after = cert.validity().not_after.timestamp();
        let issuer = Issuer::from_ca_cert_der(&der.clone().into(), key)
            .map_err(|e| LoadError::Cert(format!("cannot use it as an issuer: {e}")))?;
        Ok(Self {
            pair: Pair {
                cert_pem: cert_pem.to_string(),
                key_pem: key_pem.to_string(),
            },
            issuer,
            not_after,
        })
    }

    /// A new key and a certificate for it signed by this CA.
    pub(super) fn issue(&self, leaf: &Leaf<'_>) -> anyhow::Result<Pair> {
        let key = new_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(leaf.common_name, Some(leaf.organization));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if leaf.server_auth {
            params
                .extended_key_usages
                .insert(0, ExtendedKeyUsagePurpose::ServerAuth);
        }
        params.subject_alt_names = leaf
            .hosts
            .iter()
            .map(|h| san(h))
            .collect::<anyhow::Result<_>>()?;
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, leaf.days)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .with_context(|| format!("cannot sign the certificate of {:?}", leaf.common_name))?;
        Ok(Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Whether a certificate valid `days` days from now outlives the CA.
    pub(super) fn outlived_by(&self, days: u32) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let end = now.saturating_add(u64::from(days) * DAY.as_secs());
        i64::try_from(end).map_or(true, |end| end > self.not_after)
    }
}

/// Why an existing CA cannot be used.
#[derive(Debug)]
pub(super) enum LoadError {
    /// Something is wrong with the certificate file.
    Cert(String),
    /// Something is wrong with the key file.
    Key(String),
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
fn pem_certificate(text: &str) -> Result<Vec<u8>, String> {
    let pem = x509_parser::pem::Pem::iter_from_buffer(text.as_bytes())
        .next()
        .ok_or("no PEM block found")?
        .map_err(|e| format!("not PEM: {e}"))?;
    if pem.label != "CERTIFICATE" {
        return Err(format!("a PEM {:?} block, not a CERTIFICATE", pem.label));
    }
    Ok(pem.contents)
}
