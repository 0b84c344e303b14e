//! The key file of `--encryption-key-file`: named AES-256 keys, one
//! `NAME:BASE64` a line (32 bytes each); the first encrypts, every one
//! decrypts, so a new key can be added (second, then first) and an old one
//! removed without downtime.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{KeyInit, OsRng, rand_core::RngCore};
use aes_gcm::{Aes256Gcm, Key};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The file the embedded store generates in its data dir when no key file
/// is given.
pub const GENERATED_KEY_FILE: &str = "encryption-keys";

/// What is wrong with a key file (never its key bytes).
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read encryption key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write encryption key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encryption key file {path}, line {line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("encryption key file {0} holds no key (one `NAME:BASE64` line of 32 bytes a key)")]
    Empty(PathBuf),
}

/// One named key.
pub struct NamedKey {
    pub name: String,
    pub cipher: Aes256Gcm,
}

impl std::fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedKey")
            .field("name", &self.name)
            .finish()
    }
}

/// The keys of a key file, in order.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<NamedKey>,
}

impl KeyRing {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// `path` if it exists, else a new file there with one random key
    /// (mode 0600). The bool says whether it was generated.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), KeyFileError> {
        if path.exists() {
            return Ok((Self::load(path)?, false));
        }
        let name = format!("key-{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
        let line = format!(
            "# Sloth's key for Secret values (AES-256-GCM); keep it secret and back it up.\n\
             {}\n",
            new_key_line(&name)
        );
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            file.write_all(line.as_bytes())?;
            file.sync_all()
        };
        write().map_err(|source| KeyFileError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        Ok((Self::load(path)?, true))
    }

    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self, KeyFileError> {
        let invalid = |line: usize, message: String| KeyFileError::Invalid {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut keys: Vec<NamedKey> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, encoded)) = line.split_once(':') else {
                return Err(invalid(i + 1, "expected NAME:BASE64".into()));
            };
            let name = name.trim();
            let valid_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid_name {
                return Err(invalid(
                    i + 1,
                    format!(
                        "key name {name:?} must be letters, digits, '-', '_' or '.', not empty"
                    ),
                ));
            }
            if keys.iter().any(|k| k.name == name) {
                return Err(invalid(i + 1, format!("key name {name:?} is given twice")));
            }
            let bytes = STANDARD
                .decode(encoded.trim())
                .map_err(|e| invalid(i + 1, format!("key {name:?} is not base64: {e}")))?;
            if bytes.len() != 32 {
                return Err(invalid(
                    i + 1,
                    format!(
                        "key {name:?} is {} bytes; AES-256 keys are 32 bytes \
                         (`head -c 32 /dev/urandom | base64`)",
                        bytes.len()
                    ),
                ));
            }
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes));
            keys.push(NamedKey {
                name: name.to_string(),
                cipher,
            });
        }
        if keys.is_empty() {
            return Err(KeyFileError::Empty(path.to_path_buf()));
        }
        Ok(Self { keys })
    }

    /// The key new values are encrypted with.
    pub fn primary(&self) -> &NamedKey {
        &self.keys[0]
    }

    pub fn find(&self, name: &str) -> Option<&NamedKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.name.as_str()).collect()
    }
}

/// `NAME:BASE64` of a fresh random 32-byte key.
pub fn new_key_line(name: &str) -> String {
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    format!("{name}:{}", STANDARD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_named_keys_in_order_and_refuses_bad_lines() {
        let path = Path::new("keys");
        let text = format!("# c\n\n{}\n{}\n", new_key_line("new"), new_key_line("old"));
        let ring = KeyRing::parse(&text, path).expect("valid");
        assert_eq!(ring.names(), ["new", "old"]);
        assert_eq!(ring.primary().name, "new");
        for (bad, why) in [
            ("nocolon".to_string(), "NAME:BASE64"),
            ("a:!!".to_string(), "not base64"),
            ("a:YWJj".to_string(), "3 bytes"),
            (":YWJj".to_string(), "must be letters"),
            (
                format!("{}\n{}", new_key_line("a"), new_key_line("a")),
                "twice",
            ),
        ] {
            let err = KeyRing::parse(&bad, path).expect_err(&bad).to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(matches!(
            KeyRing::parse("# only comments\n", path),
            Err(KeyFileError::Empty(_))
        ));
    }

    #[test]
    fn a_generated_file_is_private_and_loads_again() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(GENERATED_KEY_FILE);
        let (first, generated) = KeyRing::load_or_generate(&path).expect("generate");
        assert!(generated);
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, generated) = KeyRing::load_or_generate(&path).expect("load");
        assert!(!generated);
        assert_eq!(first.names(), again.names());
    }
}
