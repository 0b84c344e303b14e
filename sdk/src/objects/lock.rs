//! Lock: a lease, for agent heartbeats, leader election and users' mutual exclusion.

use serde::{Deserialize, Serialize};

use crate::meta::Time;
use crate::resource::{Object, Spec};

pub type Lock = Object<LockSpec>;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LockSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<Time>,
    #[serde(default)]
    pub lease_transitions: u32,
}

/// Locks keep all their state in spec; the status is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LockStatus {}

impl Spec for LockSpec {
    type Status = LockStatus;
    const KIND: &'static str = "Lock";
}
