//! Who is calling (authentication: bearer tokens, client certificates) and
//! whether they may (authorization by role, [`policy`]).

pub mod policy;
pub mod restriction;
pub mod throttle;
mod tokens;

use std::path::PathBuf;
use std::sync::Arc;

use sloth_sdk::tls::{PeerInfo, Reloading};
use tonic::metadata::MetadataMap;

pub use sloth_sdk::role::Role;
pub use tokens::{TokenFileError, Tokens};

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
}

impl User {
    /// The agent this user speaks for: `NAME` of user `agent:NAME` with
    /// role agent.
    pub fn agent_name(&self) -> Option<&str> {
        match self.role {
            Role::Agent => self.name.strip_prefix("agent:").filter(|n| !n.is_empty()),
            _ => None,
        }
    }
}

/// Why a caller is not authenticated (gRPC Unauthenticated, HTTP 401).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unauthenticated(pub String);

/// The user of an apiserver without credentials configured.
fn anonymous() -> User {
    User {
        name: "system:anonymous".into(),
        role: Role::Admin,
    }
}

/// Authenticates calls.
#[derive(Debug)]
pub struct Authenticator {
    tokens: Option<Reloading<Tokens>>,
    /// Client certificates carry identities (mutual TLS is on).
    certificates: bool,
    /// The token of the controllers running in this process.
    internal: Option<Tokens>,
}

impl Authenticator {
    /// `token_file`: tokens accepted (reloaded when the file changes);
    /// `certificates`: client certificates were verified at the handshake
    /// and their subject is an identity. With neither, every caller is an
    /// anonymous admin.
    pub fn new(token_file: Option<PathBuf>, certificates: bool) -> Result<Self, TokenFileError> {
        let tokens = match token_file {
            Some(path) => Some(Tokens::load_reloading(path)?),
            None => None,
        };
        Ok(Self {
            tokens,
            certificates,
            internal: None,
        })
    }

    /// Every caller is an anonymous admin.
    pub fn open() -> Self {
        Self {
            tokens: None,
            certificates: false,
            internal: None,
        }
    }

    /// True when callers must prove who they are.
    pub fn enabled(&self) -> bool {
        self.tokens.is_some() || self.certificates
    }

    /// Accepts `token` as user `name` with role admin: the credential of
    /// in-process controllers, which never leaves the process.
    pub fn with_internal_token(mut self, token: &str, name: &str) -> Self {
        self.internal = Some(Tokens::single(token, name, Role::Admin));
        self
    }

    /// The caller of a request: its bearer token when it sends one (a
    /// wrong token is refused even with a good certificate), else its
    /// client certificate.
    pub fn authenticate(
        &self,
        metadata: &MetadataMap,
        peer: Option<&PeerInfo>,
    ) -> Result<User, Unauthenticated> {
        if !self.enabled() {
            return Ok(anonymous());
        }
        if let Some(header) = metadata.get("authorization") {
            let token = header
                .to_str()
                .ok()
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| {
                    Unauthenticated("the authorization header is not `Bearer <token>`".into())
                })?;
            return self.user_of_token(token);
        }
        if self.certificates
            && let Some(identity) = peer.and_then(|p| p.certificate.as_ref())
        {
            let role = Role::parse(&identity.role).ok_or_else(|| {
                Unauthenticated(format!(
                    "client certificate of {:?} has organization {:?}, not a role ({})",
                    identity.user,
                    identity.role,
                    Role::NAMES
                ))
            })?;
            return Ok(User {
                name: identity.user.clone(),
                role,
            });
        }
        Err(Unauthenticated(
            "no credentials: pass a bearer token (--token-file or --token) or a client certificate (--cert-file)"
                .into(),
        ))
    }

    /// True when the call carries the in-process controllers' token (they
    /// are never throttled with the address they share with other local
    /// callers).
    pub fn is_internal(&self, metadata: &MetadataMap) -> bool {
        let Some(internal) = &self.internal else {
            return false;
        };
        metadata
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|token| internal.user(token.trim()).is_some())
    }

    /// The keys agent `agent`'s logs port accepts the apiserver's calls
    /// with: the digests of the agent's tokens (see `sloth_sdk::logs_auth`).
    pub fn agent_logs_keys(&self, agent: &str) -> Vec<Vec<u8>> {
        self.tokens
            .as_ref()
            .map(|t| t.current().agent_digests(agent))
            .unwrap_or_default()
    }

    fn user_of_token(&self, token: &str) -> Result<User, Unauthenticated> {
        if let Some(user) = self.internal.as_ref().and_then(|t| t.user(token)) {
            return Ok(user.clone());
        }
        let tokens: Option<Arc<Tokens>> = self.tokens.as_ref().map(Reloading::current);
        tokens
            .as_ref()
            .and_then(|t| t.user(token).cloned())
            .ok_or_else(|| Unauthenticated("invalid bearer token".into()))
    }
}
