//! The token file: one `token,user,role` a line (blank lines and `#`
//! comments ignored), reloaded when it changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ring::digest;
use sloth_sdk::tls::Reloading;

use super::{Role, User};

/// A token file that cannot be used; names the file and line, never a
/// token.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read token file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("token file {path}, line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Users by the SHA-256 of their token: a lookup by digest does not leak,
/// by its timing, how much of a guessed token is right.
#[derive(Debug, Default)]
pub struct Tokens {
    users: HashMap<Vec<u8>, User>,
}

fn digest_of(token: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

impl Tokens {
    /// Parses a token file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TokenFileError> {
        let invalid = |line: usize, message: String| TokenFileError::Line {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [token, user, role] = fields[..] else {
                return Err(invalid(
                    number,
                    format!(
                        "expected token,user,role (3 fields), found {}",
                        fields.len()
                    ),
                ));
            };
            if token.len() < 16 {
                return Err(invalid(
                    number,
                    "the token is shorter than 16 characters".into(),
                ));
            }
            if user.is_empty() {
                return Err(invalid(number, "the user is empty".into()));
            }
            let role = Role::parse(role).ok_or_else(|| {
                invalid(
                    number,
                    format!("unknown role {role:?} (one of {})", Role::NAMES),
                )
            })?;
            if role == Role::Agent && !user.starts_with("agent:") {
                return Err(invalid(
                    number,
                    format!("a user of role agent is named agent:NAME, not {user:?}"),
                ));
            }
            let user = User {
                name: user.to_string(),
                role,
            };
            if users.insert(digest_of(token), user).is_some() {
                return Err(invalid(
                    number,
                    "this token is already on an earlier line".into(),
                ));
            }
        }
        Ok(Self { users })
    }

    /// Reads `path` now and again whenever it changes.
    pub fn load_reloading(path: PathBuf) -> Result<Reloading<Self>, TokenFileError> {
        let read_path = path.clone();
        Reloading::new("token file", vec![path], move || {
            let text =
                std::fs::read_to_string(&read_path).map_err(|source| TokenFileError::Read {
                    path: read_path.clone(),
                    source,
                })?;
            Self::parse(&text, &read_path)
        })
    }

    pub fn single(token: &str, name: &str, role: Role) -> Self {
        let mut users = HashMap::new();
        users.insert(
            digest_of(token),
            User {
                name: name.to_string(),
                role,
            },
        );
        Self { users }
    }

    pub fn user(&self, token: &str) -> Option<&User> {
        self.users.get(&digest_of(token))
    }

    /// The token digests of agent `agent` (user `agent:NAME`, role agent):
    /// the keys its logs port checks the apiserver's calls with.
    pub fn agent_digests(&self, agent: &str) -> Vec<Vec<u8>> {
        self.users
            .iter()
            .filter(|(_, user)| user.agent_name() == Some(agent))
            .map(|(digest, _)| digest.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_names_the_bad_line() {
        let path = Path::new("/etc/sloth/tokens.csv");
        let tokens = Tokens::parse(
            "# comment\n\n0123456789abcdef0,alice,admin\n fedcba98765432100 , agent:build-1 , agent \n",
            path,
        )
        .expect("valid file");
        assert_eq!(
            tokens.user("fedcba98765432100"),
            Some(&User {
                name: "agent:build-1".into(),
                role: Role::Agent
            })
        );
        assert_eq!(
            tokens.user("0123456789abcdef"),
            None,
            "a prefix is not the token"
        );

        for (text, needle) in [
            ("a,b\n", "line 1: expected token,user,role"),
            (
                "0123456789abcdef0,alice,root\n",
                "line 1: unknown role \"root\"",
            ),
            ("\nshort,alice,admin\n", "line 2: the token is shorter"),
            ("0123456789abcdef0,build-1,agent\n", "agent:NAME"),
            (
                "0123456789abcdef0,a,admin\n0123456789abcdef0,b,viewer\n",
                "line 2: this token is already",
            ),
        ] {
            let e = Tokens::parse(text, path).expect_err(text).to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(e.contains("/etc/sloth/tokens.csv"), "{e}");
            assert!(
                !e.contains("0123456789abcdef0"),
                "errors never echo a token: {e}"
            );
        }
    }
}
