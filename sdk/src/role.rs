//! The roles a Sloth user has: what the apiserver authorizes by, what a
//! token file names and what a client certificate's subject O carries.

/// What a user may do (the rules are the apiserver's `auth::policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Role {
    Admin,
    Operator,
    Viewer,
    Agent,
}

impl Role {
    /// Every role, for messages.
    pub const NAMES: &'static str = "admin, operator, viewer, agent";

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "operator" => Some(Self::Operator),
            "viewer" => Some(Self::Viewer),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Viewer => "viewer",
            Self::Agent => "agent",
        }
    }
}
