//! State keys and the object names they map to.
//!
//! Keys are free text (`deploy/prod.version`), object names are DNS
//! subdomains. The name is a readable slug of the key followed by a hash of
//! the whole key, so it is deterministic (every client finds the same
//! object for a key without a lookup) and distinct keys that slug alike
//! (`a/b`, `a.b`) still get distinct names. The key itself is kept in
//! `spec.key`, and the name is checked against it on every write.

use std::fmt::Write as _;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// Longest readable part of an entry's name.
const MAX_SLUG_LEN: usize = 40;

/// Hex digits of the key's SHA-256 kept in the name (64 bits).
const HASH_HEX_LEN: usize = 16;

/// Checks a key: 1 to [`MAX_KEY_BYTES`] bytes, no control characters.
pub fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("must not be empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "must be at most {MAX_KEY_BYTES} bytes (is {})",
            key.len()
        ));
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Err(format!(
            "must not contain control characters (found {c:?} in {key:?})"
        ));
    }
    Ok(())
}

/// The name of the StateEntry that holds `key` (which must be valid):
/// `<slug>-<16 hex digits of sha256(key)>`, e.g. `deploy-prod-version-…`.
pub fn entry_name(key: &str) -> String {
    let mut slug = String::with_capacity(MAX_SLUG_LEN);
    for c in key.chars() {
        if slug.len() >= MAX_SLUG_LEN {
            break;
        }
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "key" } else { slug };
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut name = format!("{slug}-");
    for byte in &digest.as_ref()[..HASH_HEX_LEN / 2] {
        // Writing to a String cannot fail.
        let _ = write!(name, "{byte:02x}");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::names::validate_name;

    #[test]
    fn names_are_valid_deterministic_and_distinct() {
        let keys = [
            "deploy/prod.version",
            "deploy.prod/version",
            "Deploy/Prod.Version",
            "a",
            "///",
            "ünïcødé",
            &"x".repeat(MAX_KEY_BYTES),
            "-leading-and-trailing-",
        ];
        let mut names = std::collections::BTreeSet::new();
        for key in keys {
            let name = entry_name(key);
            assert_eq!(validate_name(&name), Ok(()), "{key:?} -> {name:?}");
            assert_eq!(name, entry_name(key));
            assert!(names.insert(name), "{key:?} collides");
        }
        assert!(entry_name("deploy/prod.version").starts_with("deploy-prod-version-"));
        assert!(entry_name("///").starts_with("key-"));
        // Pinned: names are an on-disk format; a change orphans entries.
        assert_eq!(entry_name("a"), "a-ca978112ca1bbdca");
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(validate_key("").is_err());
        assert!(validate_key(&"x".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(
            validate_key("a\nb")
                .expect_err("newline")
                .contains("control")
        );
        assert_eq!(validate_key("app/db.host-1 x"), Ok(()));
    }
}
