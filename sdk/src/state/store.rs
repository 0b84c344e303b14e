//! Reads and writes of state entries in one namespace.
//!
//! Every write is a compare-and-swap on the resourceVersion just read (or a
//! create that fails if someone created the entry first); a lost race is
//! retried with a fresh read, a bounded number of times, with jittered
//! backoff. So concurrent increments never lose an update, and
//! compare-and-swap judges exactly the value it replaces.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use super::key::{entry_name, validate_key};
use super::value::validate_value;
use crate::backoff::Backoff;
use crate::client::{Api, Client, ListParams};
use crate::error::Error;
use crate::meta::Time;
use crate::objects::{StateEntry, StateEntrySpec};
use crate::resource::Spec;

/// How many times a write that lost a race is tried again.
pub const MAX_ATTEMPTS: u32 = 200;

/// The pauses between two attempts: drawn from `[0, 1ms * 2^attempt]`, the
/// bound growing to 64ms.
const CONFLICT_BACKOFF: Backoff =
    Backoff::fixed(Duration::from_millis(1), Duration::from_millis(64)).with_full_jitter();

/// What went wrong with a state operation.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Bad input, nothing written: `field` names the argument (`key`,
    /// `value`, `ttl`, `by`).
    #[error("{field}: {message}")]
    Invalid {
        /// The argument.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// An increment of a key whose value is no integer.
    #[error("the value of {key:?} is {value}, not an integer: it cannot be incremented")]
    NotAnInteger {
        /// The key.
        key: String,
        /// Its current value.
        value: Value,
    },
    /// An increment would overflow `i64`.
    #[error("incrementing {key:?} by {by} overflows a 64-bit integer")]
    Overflow {
        /// The key.
        key: String,
        /// The increment asked for.
        by: i64,
    },
    /// Other writers kept changing the key; nothing was written.
    #[error("{key:?} kept changing: {MAX_ATTEMPTS} writes in a row lost the race; try again")]
    Contended {
        /// The key.
        key: String,
    },
    /// Two keys hash to the same object name (a 64-bit hash: never seen).
    #[error("key {key:?} maps to entry {name:?}, which holds key {other:?}")]
    Collision {
        /// The key asked for.
        key: String,
        /// The entry (object) name it maps to.
        name: String,
        /// The key that entry holds.
        other: String,
    },
    /// The apiserver refused or failed a call.
    #[error(transparent)]
    Api(#[from] Error),
}

impl StateError {
    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    /// Bad input (slothctl exits 2).
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Invalid { .. })
    }
}

/// Checks a key, naming the field in the error.
pub fn check_key(key: &str) -> Result<(), StateError> {
    validate_key(key).map_err(|m| StateError::invalid("key", m))
}

/// Checks a value, naming the field in the error.
pub fn check_value(value: &Value) -> Result<(), StateError> {
    validate_value(value).map_err(|m| StateError::invalid("value", m))
}

/// When an entry written now with `ttl` expires; a TTL must be positive.
pub fn expiry(ttl: Option<Duration>, now: Time) -> Result<Option<Time>, StateError> {
    let Some(ttl) = ttl else { return Ok(None) };
    if ttl.is_zero() {
        return Err(StateError::invalid(
            "ttl",
            "must be positive (omit it for an entry that never expires)",
        ));
    }
    let ttl =
        chrono::Duration::from_std(ttl).map_err(|_| StateError::invalid("ttl", "is too large"))?;
    now.checked_add_signed(ttl)
        .map(Some)
        .ok_or_else(|| StateError::invalid("ttl", "is too large"))
}

/// What one attempt of a read-modify-write decided.
enum Step<T> {
    /// Nothing to write: the result.
    Done(T),
    /// Write this value and expiry; on success, the result.
    Write {
        value: Value,
        expires_at: Option<Time>,
        result: T,
    },
}

/// The state entries of one namespace.
#[derive(Clone, Debug)]
pub struct StateStore {
    api: Api<StateEntrySpec>,
    client: Client,
    namespace: String,
    /// Stamped into `spec.updatedBy` (a TaskRun writing through its agent).
    updated_by: Option<String>,
}

impl StateStore {
    /// The state of `namespace`, through `client`.
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client.clone(), namespace),
            client,
            namespace: namespace.to_string(),
            updated_by: None,
        }
    }

    /// Writes name `writer` (`TaskRun/NS/NAME`) as `spec.updatedBy`; the
    /// apiserver allows an agent's writes only for TaskRuns bound to it.
    pub fn written_by(mut self, writer: impl Into<String>) -> Self {
        self.updated_by = Some(writer.into());
        self
    }

    /// The entry of `key` as stored, expired or not.
    async fn read(&self, key: &str, name: &str) -> Result<Option<StateEntry>, StateError> {
        match self.api.get(name).await {
            Ok(entry) if entry.spec.key == key => Ok(Some(entry)),
            Ok(entry) => Err(StateError::Collision {
                key: key.to_string(),
                name: name.to_string(),
                other: entry.spec.key,
            }),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The live entry of `key`; None when absent or expired.
    pub async fn get(&self, key: &str) -> Result<Option<StateEntry>, StateError> {
        check_key(key)?;
        let entry = self.read(key, &entry_name(key)).await?;
        Ok(entry.filter(|e| e.spec.is_live(Utc::now())))
    }

    /// Sets `key` to `value`, expiring `ttl` from now (never without).
    pub async fn set(
        &self,
        key: &str,
        value: &Value,
        ttl: Option<Duration>,
    ) -> Result<(), StateError> {
        check_value(value)?;
        let expires_at = expiry(ttl, Utc::now())?;
        self.modify(key, |_| {
            Ok(Step::Write {
                value: value.clone(),
                expires_at,
                result: (),
            })
        })
        .await
    }

    /// Adds `by` to the integer at `key` (0 when absent or expired) and
    /// returns the new value; the entry keeps its expiry.
    pub async fn increment(&self, key: &str, by: i64) -> Result<i64, StateError> {
        self.modify(key, |current| {
            let (old, expires_at) = match current {
                None => (0, None),
                Some(entry) => match entry.spec.value.as_i64() {
                    Some(n) => (n, entry.spec.expires_at),
                    None => {
                        return Err(StateError::NotAnInteger {
                            key: key.to_string(),
                            value: entry.spec.value.clone(),
                        });
                    }
                },
            };
            let new = old.checked_add(by).ok_or_else(|| StateError::Overflow {
                key: key.to_string(),
                by,
            })?;
            Ok(Step::Write {
                value: Value::from(new),
                expires_at,
                result: new,
            })
        })
        .await
    }

    /// Sets `key` to `new` only if its live value is `expected` (None:
    /// only if absent). True when swapped; the entry keeps its expiry.
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&Value>,
        new: &Value,
    ) -> Result<bool, StateError> {
        check_value(new)?;
        self.modify(key, |current| {
            if current.map(|e| &e.spec.value) != expected {
                return Ok(Step::Done(false));
            }
            Ok(Step::Write {
                value: new.clone(),
                expires_at: current.and_then(|e| e.spec.expires_at),
                result: true,
            })
        })
        .await
    }

    /// The read-modify-write loop behind every write: `decide` sees the
    /// live entry (None when absent or expired) and says what to write.
    async fn modify<T>(
        &self,
        key: &str,
        mut decide: impl FnMut(Option<&StateEntry>) -> Result<Step<T>, StateError>,
    ) -> Result<T, StateError> {
        check_key(key)?;
        let name = entry_name(key);
        for attempt in 0..MAX_ATTEMPTS {
            let stored = self.read(key, &name).await?;
            let live = stored.as_ref().filter(|e| e.spec.is_live(Utc::now()));
            let (value, expires_at, result) = match decide(live)? {
                Step::Done(result) => return Ok(result),
                Step::Write {
                    value,
                    expires_at,
                    result,
                } => (value, expires_at, result),
            };
            let spec = StateEntrySpec {
                key: key.to_string(),
                value,
                expires_at,
                updated_by: self.updated_by.clone(),
            };
            let written = match stored {
                // The resourceVersion read makes this a compare-and-swap.
                Some(mut entry) => {
                    entry.spec = spec;
                    self.api.replace(&entry).await
                }
                None => self.api.create(&StateEntry::new(name.clone(), spec)).await,
            };
            match written {
                Ok(_) => return Ok(result),
                // Lost a race: changed, created or deleted since the read.
                Err(Error::Conflict(_) | Error::AlreadyExists(_) | Error::NotFound(_)) => {
                    backoff(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StateError::Contended {
            key: key.to_string(),
        })
    }

    /// Deletes `key`; true when it was there (and not expired).
    pub async fn delete(&self, key: &str) -> Result<bool, StateError> {
        check_key(key)?;
        let name = entry_name(key);
        for attempt in 0..MAX_ATTEMPTS {
            let Some(mut entry) = self.read(key, &name).await? else {
                return Ok(false);
            };
            let live = entry.spec.is_live(Utc::now());
            // A TaskRun deletes what it wrote last: stamp the entry first
            // (the apiserver judges an agent's delete by spec.updatedBy).
            if self.updated_by.is_some() && entry.spec.updated_by != self.updated_by {
                entry.spec.updated_by = self.updated_by.clone();
                match self.api.replace(&entry).await {
                    Ok(stamped) => entry = stamped,
                    Err(Error::Conflict(_) | Error::NotFound(_)) => {
                        backoff(attempt).await;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let rv = entry.metadata.resource_version.clone();
            match self
                .client
                .delete(StateEntrySpec::KIND, &self.namespace, &name, Some(&rv))
                .await
            {
                Ok(_) => return Ok(live),
                Err(Error::NotFound(_)) => return Ok(false),
                Err(Error::Conflict(_)) => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StateError::Contended {
            key: key.to_string(),
        })
    }

    /// The live entries whose key starts with `prefix`, sorted by key. All
    /// pages of the namespace are read (names are hashes, so a prefix
    /// cannot narrow the scan).
    pub async fn list(&self, prefix: &str) -> Result<Vec<StateEntry>, StateError> {
        let now = Utc::now();
        let mut entries: Vec<StateEntry> = self
            .api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.spec.key.starts_with(prefix) && e.spec.is_live(now))
            .collect();
        entries.sort_by(|a, b| a.spec.key.cmp(&b.spec.key));
        Ok(entries)
    }

    /// Deletes every key starting with `prefix` (all keys when empty);
    /// returns how many live keys were deleted.
    pub async fn clear(&self, prefix: &str) -> Result<usize, StateError> {
        let mut deleted = 0;
        for entry in self.list(prefix).await? {
            if self.delete(&entry.spec.key).await? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

/// Sleeps a random time up to an exponentially growing bound, so racing
/// writers spread out.
async fn backoff(attempt: u32) {
    tokio::time::sleep(CONFLICT_BACKOFF.delay(attempt)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ttl_must_be_positive() {
        let now = Utc::now();
        let e = expiry(Some(Duration::ZERO), now).expect_err("zero");
        assert!(e.to_string().starts_with("ttl: must be positive"), "{e}");
        assert!(e.is_invalid());
        assert_eq!(expiry(None, now).expect("none"), None);
        assert_eq!(
            expiry(Some(Duration::from_secs(5)), now).expect("5s"),
            Some(now + chrono::Duration::seconds(5))
        );
        assert!(expiry(Some(Duration::from_secs(u64::MAX)), now).is_err());
    }
}
