//! Applies [`restriction`] to an agent's writes:
//! reads the object the write would change, judges the change, and looks
//! up the TaskRuns named as Lock holders and state writers.

use serde_json::Value;
use sloth_sdk::objects::Lock;
use sloth_sdk::well_known::SYSTEM_NAMESPACE;

use crate::access::auth::policy::Verb;
use crate::access::auth::restriction::{self, HolderTaskRun};
use crate::error::ApiError;
use crate::registry::resources::{Resources, Stored};
use crate::registry::state_writes;

/// Why an agent's write may not go ahead.
#[derive(Debug)]
pub enum Refusal {
    /// Forbidden, for this reason (the caller words the denial).
    Forbidden(String),
    /// Judging failed (a read of the store).
    Api(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

/// The object being written, as the call names it.
#[derive(Clone, Copy, Debug)]
pub struct Write<'a> {
    pub verb: Verb,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    /// The object sent (create and update).
    pub requested: Option<&'a Value>,
}

/// Judges agent `agent`'s write. On success, the revision of the stored
/// object judged, if any: the write must apply to exactly that revision,
/// so nothing can change in between.
pub async fn judge(
    resources: &Resources,
    agent: &str,
    write: Write<'_>,
) -> Result<Option<i64>, Refusal> {
    match (write.kind, write.verb) {
        ("Agent", Verb::Create | Verb::Update) => {
            let stored = stored(resources, write).await?;
            if let Some(requested) = write.requested {
                restriction::check_labels(agent, stored.as_ref().map(|s| &s.value), requested)
                    .map_err(Refusal::Forbidden)?;
            }
            Ok(stored.map(|s| s.revision))
        }
        ("Lock", Verb::Create | Verb::Update | Verb::Delete)
            if write.namespace != SYSTEM_NAMESPACE =>
        {
            let stored = stored(resources, write).await?;
            let current = stored.as_ref().map(|s| lock_of(&s.value)).transpose()?;
            let requested = write.requested.map(lock_of).transpose()?;
            let holders = restriction::check_lock(
                agent,
                write.verb,
                current.as_ref(),
                requested.as_ref(),
                chrono::Utc::now(),
            )
            .map_err(Refusal::Forbidden)?;
            for taskrun in &holders {
                check_bound(resources, agent, taskrun, "lock holder").await?;
            }
            Ok(stored.map(|s| s.revision))
        }
        ("StateEntry", Verb::Create | Verb::Update | Verb::Delete) => {
            let stored = stored(resources, write).await?;
            let judged = match (write.verb, write.requested) {
                (Verb::Delete, _) => stored.as_ref().map(|s| &s.value),
                (_, requested) => requested,
            };
            if let Some(entry) = judged {
                let writer =
                    state_writes::writer(write.namespace, entry).map_err(Refusal::Forbidden)?;
                check_bound(resources, agent, &writer, "state writer").await?;
            }
            Ok(stored.map(|s| s.revision))
        }
        _ => Ok(None),
    }
}

/// The stored object the write changes; None when there is none (the
/// write itself then fails, or creates it).
async fn stored(resources: &Resources, write: Write<'_>) -> Result<Option<Stored>, ApiError> {
    match resources.get(write.kind, write.namespace, write.name).await {
        Ok(stored) => Ok(Some(stored)),
        Err(ApiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn lock_of(value: &Value) -> Result<Lock, Refusal> {
    serde_json::from_value(value.clone())
        .map_err(|e| Refusal::Api(ApiError::BadRequest(format!("not a valid Lock: {e}"))))
}

async fn check_bound(
    resources: &Resources,
    agent: &str,
    taskrun: &HolderTaskRun,
    role: &str,
) -> Result<(), Refusal> {
    let HolderTaskRun { namespace, name } = taskrun;
    let bound = match resources.get("TaskRun", namespace, name).await {
        Ok(stored) => stored
            .value
            .pointer("/spec/agentName")
            .and_then(Value::as_str)
            .map(str::to_string),
        Err(ApiError::NotFound { .. }) => {
            return Err(Refusal::Forbidden(format!(
                "the {role} TaskRun/{namespace}/{name} does not exist"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if bound.as_deref() == Some(agent) {
        return Ok(());
    }
    Err(Refusal::Forbidden(format!(
        "the {role} TaskRun/{namespace}/{name} is bound to {}, not to agent {agent:?}",
        bound.map_or_else(|| "no agent".to_string(), |a| format!("agent {a:?}"))
    )))
}
