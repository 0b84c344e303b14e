//! StateEntry: one key of the state store (`slothctl state`, Lua's `state`
//! module). One object per key, in the namespace it belongs to, so that
//! entries are stored, watched, paged and authorized like everything else.
//!
//! Keys may contain characters object names may not (`/`, `.`, capitals):
//! the object's name is derived from the key ([`crate::state::entry_name`]:
//! a readable slug and a hash), and the key itself is kept in `spec.key`.

use serde::{Deserialize, Serialize};

use crate::meta::Time;
use crate::resource::{Object, Spec};

/// A StateEntry object: one key of the state store.
pub type StateEntry = Object<StateEntrySpec>;

/// A key, its value and its expiry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateEntrySpec {
    /// The key as users write it (`deploy/version`, `app.replicas`).
    pub key: String,
    /// A string, number, boolean, array or object; never null.
    #[serde(default)]
    pub value: serde_json::Value,
    /// From this time on the entry reads as absent; the state controller
    /// then deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// Who wrote it last when that was a TaskRun (`TaskRun/NS/NAME`): an
    /// agent's writes are authorized through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

impl StateEntrySpec {
    /// Whether the entry still reads as present at `now`.
    pub fn is_live(&self, now: Time) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// StateEntries keep all their state in spec; the status is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StateEntryStatus {}

impl Spec for StateEntrySpec {
    type Status = StateEntryStatus;
    const KIND: &'static str = "StateEntry";
}
