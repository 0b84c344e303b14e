//! Lock: a lease, for agent heartbeats, leader election and users' mutual exclusion.

use serde::{Deserialize, Serialize};

use crate::meta::Time;
use crate::resource::{Object, Spec};

/// A Lock object: a named lease (see [`crate::lease`]).
pub type Lock = Object<LockSpec>;

/// Who holds the lease and until when; every write is a compare-and-swap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LockSpec {
    /// The holder (`TaskRun/NS/NAME`, an agent or a controller); free when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    /// How long the lease lasts after `renewTime` (else `acquireTime`), in
    /// seconds; the Lock is free once it has run out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<u32>,
    /// When the current holder took the Lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_time: Option<Time>,
    /// When the holder last renewed the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<Time>,
    /// How many times the Lock changed hands (kept across releases).
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
