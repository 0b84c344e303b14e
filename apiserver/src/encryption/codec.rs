//! The stored form of an encrypted value:
//! `sloth:enc:aesgcm:v1:<key name>:` + 12-byte nonce + ciphertext and tag.
//! The store key (`/sloth/secrets/ns/name`) is the associated data, so a
//! ciphertext copied under another key does not decrypt.

use aes_gcm::aead::{Aead, AeadCore, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use bytes::Bytes;

use super::keys::KeyRing;

const PREFIX: &[u8] = b"sloth:enc:aesgcm:v1:";
const NONCE_BYTES: usize = 12;

/// Why a stored value could not be encrypted or decrypted (never the value).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("{key}: encrypted with key {name:?}, which is not in the key file (it has: {known})")]
    UnknownKey {
        key: String,
        name: String,
        known: String,
    },
    #[error("{key}: the stored value is not a valid encrypted value")]
    Malformed { key: String },
    #[error("{key}: decryption with key {name:?} failed (wrong key or altered data)")]
    Decrypt { key: String, name: String },
    #[error("{key}: encryption failed")]
    Encrypt { key: String },
}

/// Encrypts `plaintext` stored at `key` with the ring's primary key.
pub fn seal(ring: &KeyRing, key: &str, plaintext: &[u8]) -> Result<Bytes, CodecError> {
    let primary = ring.primary();
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = primary
        .cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: key.as_bytes(),
            },
        )
        .map_err(|_| CodecError::Encrypt { key: key.into() })?;
    let mut out =
        Vec::with_capacity(PREFIX.len() + primary.name.len() + 1 + NONCE_BYTES + sealed.len());
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(primary.name.as_bytes());
    out.push(b':');
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(Bytes::from(out))
}

/// True when `stored` is in the encrypted form.
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(PREFIX)
}

/// The name of the key `stored` was encrypted with, if it is encrypted.
pub fn key_name(stored: &[u8]) -> Option<&str> {
    let rest = stored.strip_prefix(PREFIX)?;
    let end = rest.iter().position(|b| *b == b':')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// Decrypts a value stored at `key`. A value that is not in the encrypted
/// form is returned as it is (nothing is ever written that way; it keeps
/// hand-restored plain objects readable).
pub fn open(ring: Option<&KeyRing>, key: &str, stored: Bytes) -> Result<Bytes, CodecError> {
    let Some(rest) = stored.strip_prefix(PREFIX) else {
        return Ok(stored);
    };
    let malformed = || CodecError::Malformed { key: key.into() };
    let end = rest.iter().position(|b| *b == b':').ok_or_else(malformed)?;
    let name = std::str::from_utf8(&rest[..end]).map_err(|_| malformed())?;
    let body = &rest[end + 1..];
    if body.len() < NONCE_BYTES {
        return Err(malformed());
    }
    let Some(named) = ring.and_then(|r| r.find(name)) else {
        return Err(CodecError::UnknownKey {
            key: key.into(),
            name: name.into(),
            known: ring.map_or_else(
                || "no key file is configured".to_string(),
                |r| r.names().join(", "),
            ),
        });
    };
    let (nonce, sealed) = body.split_at(NONCE_BYTES);
    named
        .cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: key.as_bytes(),
            },
        )
        .map(Bytes::from)
        .map_err(|_| CodecError::Decrypt {
            key: key.into(),
            name: name.into(),
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::encryption::keys::new_key_line;

    fn ring(text: &str) -> KeyRing {
        KeyRing::parse(text, Path::new("k")).expect("ring")
    }

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let keys = ring(&new_key_line("a"));
        let sealed = seal(&keys, "/sloth/secrets/default/db", b"hunter2").expect("seal");
        assert!(is_sealed(&sealed));
        assert_eq!(key_name(&sealed), Some("a"));
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        let opened = open(Some(&keys), "/sloth/secrets/default/db", sealed.clone());
        assert_eq!(opened.as_deref().ok(), Some(&b"hunter2"[..]));
        // Another store key: the associated data differs.
        assert!(matches!(
            open(Some(&keys), "/sloth/secrets/default/other", sealed),
            Err(CodecError::Decrypt { .. })
        ));
        // Plain values pass.
        let plain = Bytes::from_static(b"{}");
        assert_eq!(open(None, "k", plain.clone()), Ok(plain));
    }

    #[test]
    fn a_rotated_ring_reads_old_values_and_writes_with_the_new_key() {
        let old_line = new_key_line("old");
        let sealed = seal(&ring(&old_line), "k", b"v").expect("seal");
        let both = ring(&format!("{}\n{old_line}\n", new_key_line("new")));
        assert_eq!(
            open(Some(&both), "k", sealed.clone()).as_deref().ok(),
            Some(&b"v"[..])
        );
        assert_eq!(
            key_name(&seal(&both, "k", b"v").expect("seal")),
            Some("new")
        );
        let only_new = ring(&new_key_line("new"));
        assert!(matches!(
            open(Some(&only_new), "k", sealed.clone()),
            Err(CodecError::UnknownKey { ref name, .. }) if name == "old"
        ));
        assert!(matches!(
            open(None, "k", sealed),
            Err(CodecError::UnknownKey { .. })
        ));
    }
}
