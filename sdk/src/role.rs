//! The roles a Sloth user has: what the apiserver authorizes by, what a
//! token file names and what a client certificate's subject O carries.

/// What a user may do (the rules are the apiserver's `auth::policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Role {
    /// Everything.
    Admin,
    /// Everything except writing the Locks of `sloth-system` (the controllers'
    /// leader election and the agents' heartbeats).
    Operator,
    /// Get, list, watch and logs; changes nothing.
    Viewer,
    /// An agent (user `agent:NAME`): its own Agent and heartbeat Lock, and the
    /// TaskRuns bound to it and what they use.
    Agent,
}

impl Role {
    /// Every role, for messages.
    pub const NAMES: &'static str = "admin, operator, viewer, agent";

    /// The role named `text` (`admin`, ...); None for any other text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "operator" => Some(Self::Operator),
            "viewer" => Some(Self::Viewer),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }

    /// The lowercase name, as token files and certificates write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Viewer => "viewer",
            Self::Agent => "agent",
        }
    }
}
