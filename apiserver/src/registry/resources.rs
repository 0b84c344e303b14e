//! The generic resource service: create, get, list, update, update-status,
//! delete and watch for every kind, over any `Store`. Transport-neutral: the
//! gRPC layer (and later REST) call into this.

use std::sync::Arc;

use serde_json::Value;
use sloth_sdk::kinds::{self, KindInfo, StatusAdmission};
use sloth_sdk::selector::{Fields, Labels};

use crate::error::ApiError;
use crate::registry::keys::{kind_prefix, object_key};
use crate::registry::objects::{self, meta_str};
use crate::registry::paging::{MAX_PAGE_BYTES, PageBuilder, parse_continue};
use crate::store::{ListOptions, Store, StoreError};

/// How often a create with `generateName` may collide before giving up.
const GENERATE_NAME_ATTEMPTS: usize = 8;

/// How often an update without a resourceVersion precondition retries a
/// lost compare-and-swap race before reporting a conflict.
const UNCONDITIONAL_UPDATE_ATTEMPTS: usize = 8;

/// An object as returned to clients.
#[derive(Clone, Debug)]
pub struct Stored {
    pub kind: &'static KindInfo,
    pub value: Value,
    pub revision: i64,
}

impl Stored {
    pub fn name(&self) -> &str {
        meta_str(&self.value, "name")
    }

    pub fn namespace(&self) -> &str {
        meta_str(&self.value, "namespace")
    }
}

/// A page of a list.
#[derive(Debug)]
pub struct Listed {
    pub items: Vec<Stored>,
    pub revision: i64,
    pub continue_token: String,
}

/// Label and field selectors, parsed once per request.
#[derive(Clone, Debug, Default)]
pub struct Selectors {
    pub labels: Labels,
    pub fields: Fields,
}

impl Selectors {
    pub fn parse(labels: &str, fields: &str) -> Result<Self, ApiError> {
        Ok(Self {
            labels: Labels::parse(labels).map_err(|e| ApiError::BadRequest(e.to_string()))?,
            fields: Fields::parse(fields).map_err(|e| ApiError::BadRequest(e.to_string()))?,
        })
    }

    pub fn matches(&self, value: &Value) -> bool {
        if !self.labels.is_empty() {
            let labels = value
                .get("metadata")
                .and_then(|m| m.get("labels"))
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            if !self.labels.matches(&labels) {
                return false;
            }
        }
        self.fields.matches(value)
    }
}

/// Finds a kind by any of its names.
pub fn resolve_kind(name: &str) -> Result<&'static KindInfo, ApiError> {
    kinds::lookup(name).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown kind {name:?} (known: {})",
            kinds::known_kinds()
        ))
    })
}

/// The resource service over one store.
#[derive(Debug, Clone)]
pub struct Resources {
    store: Arc<dyn Store>,
}

impl Resources {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn invalid(
        kind: &KindInfo,
        name: &str,
        errors: sloth_sdk::validation::FieldErrors,
    ) -> ApiError {
        ApiError::Invalid {
            kind: kind.kind.to_string(),
            name: name.to_string(),
            errors,
        }
    }

    /// The kind named in the body (or, failing that, in the envelope).
    fn kind_of(value: &Value, envelope_kind: &str) -> Result<&'static KindInfo, ApiError> {
        let body_kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match (body_kind.is_empty(), envelope_kind.is_empty()) {
            (true, true) => Err(ApiError::BadRequest("object has no kind".into())),
            (false, _) => {
                let kind = resolve_kind(body_kind)?;
                if !envelope_kind.is_empty() && resolve_kind(envelope_kind)?.kind != kind.kind {
                    return Err(ApiError::BadRequest(format!(
                        "object kind {body_kind:?} does not match request kind {envelope_kind:?}"
                    )));
                }
                Ok(kind)
            }
            (true, false) => resolve_kind(envelope_kind),
        }
    }

    pub async fn create(&self, envelope_kind: &str, json: &[u8]) -> Result<Stored, ApiError> {
        self.create_as(envelope_kind, json, Commit::Store).await
    }

    /// [`Resources::create`]; with [`Commit::DryRun`], every check of it
    /// (admission, validation, size, an existing name) and no write.
    pub async fn create_as(
        &self,
        envelope_kind: &str,
        json: &[u8],
        commit: Commit,
    ) -> Result<Stored, ApiError> {
        let requested = objects::parse_request(json)?;
        let kind = Self::kind_of(&requested, envelope_kind)?;
        let namespace = objects::effective_namespace(kind, meta_str(&requested, "namespace"));
        let fixed_name = meta_str(&requested, "name").to_string();
        let prefix = meta_str(&requested, "generateName").to_string();
        let attempts = if fixed_name.is_empty() && !prefix.is_empty() {
            GENERATE_NAME_ATTEMPTS
        } else {
            1
        };
        for _ in 0..attempts {
            let name = if fixed_name.is_empty() && !prefix.is_empty() {
                objects::generate_name(&prefix)
            } else {
                fixed_name.clone()
            };
            let mut value = requested.clone();
            objects::prepare_create(&mut value, kind, &name, &namespace);
            let mut value = (kind.admit)(value).map_err(|e| Self::invalid(kind, &name, e))?;
            let bytes = objects::to_store(&mut value)?;
            objects::check_size(bytes.len())?;
            let key = object_key(kind, &namespace, &name);
            let written = match commit {
                Commit::Store => self.store.create(&key, bytes).await,
                Commit::DryRun => match self.store.get(&key).await? {
                    Some(_) => Err(StoreError::AlreadyExists(key)),
                    None => Ok(DRY_RUN_REVISION),
                },
            };
            match written {
                Ok(revision) => return Ok(finish(kind, value, revision)),
                Err(StoreError::AlreadyExists(_)) if attempts > 1 => continue,
                Err(StoreError::AlreadyExists(_)) => {
                    return Err(ApiError::AlreadyExists {
                        plural: kind.plural.to_string(),
                        name,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::AlreadyExists {
            plural: kind.plural.to_string(),
            name: format!("{prefix}*"),
        })
    }

    pub async fn get(&self, kind: &str, namespace: &str, name: &str) -> Result<Stored, ApiError> {
        let kind = resolve_kind(kind)?;
        let namespace = objects::effective_namespace(kind, namespace);
        self.get_in(kind, &namespace, name).await
    }

    async fn get_in(
        &self,
        kind: &'static KindInfo,
        namespace: &str,
        name: &str,
    ) -> Result<Stored, ApiError> {
        let kv = self
            .store
            .get(&object_key(kind, namespace, name))
            .await?
            .ok_or_else(|| ApiError::NotFound {
                plural: kind.plural.to_string(),
                name: name.to_string(),
            })?;
        Ok(Stored {
            kind,
            value: objects::from_store(&kv)?,
            revision: kv.mod_revision,
        })
    }

    /// Lists one page of matching objects; `namespace` empty means all
    /// namespaces. The page holds at most `limit` objects (0: no count
    /// bound) and at most about `MAX_PAGE_BYTES`; the continue token
    /// resumes it at the same revision.
    pub async fn list(
        &self,
        kind: &str,
        namespace: &str,
        selectors: &Selectors,
        limit: usize,
        continue_token: &str,
    ) -> Result<Listed, ApiError> {
        self.list_bounded(
            kind,
            namespace,
            selectors,
            limit,
            MAX_PAGE_BYTES,
            continue_token,
        )
        .await
    }

    /// Every matching object, page after page at one revision: for the
    /// server's own use (a watch's initial state), never one message.
    pub async fn list_all(
        &self,
        kind: &str,
        namespace: &str,
        selectors: &Selectors,
    ) -> Result<Listed, ApiError> {
        let mut all = self.list(kind, namespace, selectors, 0, "").await?;
        while !all.continue_token.is_empty() {
            let page = self
                .list(kind, namespace, selectors, 0, &all.continue_token)
                .await?;
            all.items.extend(page.items);
            all.continue_token = page.continue_token;
        }
        Ok(all)
    }

    /// [`Resources::list`] with the byte bound given (tests use small ones).
    pub async fn list_bounded(
        &self,
        kind: &str,
        namespace: &str,
        selectors: &Selectors,
        limit: usize,
        max_bytes: usize,
        continue_token: &str,
    ) -> Result<Listed, ApiError> {
        let kind = resolve_kind(kind)?;
        let prefix = kind_prefix(kind, namespace);
        let (mut revision, after) = parse_continue(continue_token)?;
        let mut page = PageBuilder::new(limit, max_bytes, after);
        let more = loop {
            let read = self
                .store
                .list(
                    &prefix,
                    ListOptions {
                        limit: page.next_read(),
                        start_after: page.last_key().map(str::to_string),
                        revision,
                    },
                )
                .await?;
            revision = Some(read.revision);
            let mut stopped = false;
            for kv in &read.items {
                let value = objects::from_store(kv)?;
                let item = selectors.matches(&value).then_some(Stored {
                    kind,
                    value,
                    revision: kv.mod_revision,
                });
                if !page.offer(&kv.key, kv.value.len(), item) {
                    stopped = true;
                    break;
                }
            }
            let more = stopped || read.next_key.is_some();
            if !more || page.is_full() {
                break more;
            }
        };
        let revision = revision.unwrap_or_default();
        let (items, continue_token) = page.finish(revision, more);
        Ok(Listed {
            items,
            revision,
            continue_token,
        })
    }

    /// Main-endpoint update: spec and mutable metadata; status is ignored.
    pub async fn update(
        &self,
        envelope_kind: &str,
        json: &[u8],
        envelope_rv: &str,
    ) -> Result<Stored, ApiError> {
        self.update_as(envelope_kind, json, envelope_rv, Commit::Store)
            .await
    }

    /// [`Resources::update`]; with [`Commit::DryRun`], every check of it
    /// (precondition, admission, immutable fields, size) and no write.
    pub async fn update_as(
        &self,
        envelope_kind: &str,
        json: &[u8],
        envelope_rv: &str,
        commit: Commit,
    ) -> Result<Stored, ApiError> {
        self.update_with(envelope_kind, json, envelope_rv, Endpoint::Main, commit)
            .await
    }

    /// Status subresource: status only; spec and metadata are ignored.
    pub async fn update_status(
        &self,
        envelope_kind: &str,
        json: &[u8],
        envelope_rv: &str,
    ) -> Result<Stored, ApiError> {
        self.update_with(
            envelope_kind,
            json,
            envelope_rv,
            Endpoint::Status,
            Commit::Store,
        )
        .await
    }

    async fn update_with(
        &self,
        envelope_kind: &str,
        json: &[u8],
        envelope_rv: &str,
        endpoint: Endpoint,
        commit: Commit,
    ) -> Result<Stored, ApiError> {
        let requested = objects::parse_request(json)?;
        let kind = Self::kind_of(&requested, envelope_kind)?;
        let namespace = objects::effective_namespace(kind, meta_str(&requested, "namespace"));
        let name = meta_str(&requested, "name").to_string();
        if name.is_empty() {
            return Err(Self::invalid(
                kind,
                &name,
                sloth_sdk::validation::FieldError::new("metadata.name", "is required").into(),
            ));
        }
        let precondition = match meta_str(&requested, "resourceVersion") {
            "" => envelope_rv.to_string(),
            rv => rv.to_string(),
        };
        let key = object_key(kind, &namespace, &name);
        for _ in 0..UNCONDITIONAL_UPDATE_ATTEMPTS {
            let current = self.get_in(kind, &namespace, &name).await?;
            if !precondition.is_empty() && precondition != current.revision.to_string() {
                return Err(conflict(kind, &name, &precondition, current.revision));
            }
            let admitted = match endpoint {
                Endpoint::Main => {
                    let merged = objects::merge_update(&current.value, &requested);
                    (kind.admit)(merged).map(StatusAdmission::Whole)
                }
                Endpoint::Status => {
                    let merged = objects::merge_status(&current.value, &requested);
                    kinds::admit_status(kind, &current.value, merged)
                }
            };
            let (mut value, check_update) =
                match admitted.map_err(|e| Self::invalid(kind, &name, e))? {
                    StatusAdmission::Whole(value) => (value, true),
                    // Only the status changed, and it was checked whole.
                    StatusAdmission::StatusOnly(value) => (value, false),
                };
            if objects::same_but_resource_version(&value, &current.value) {
                return Ok(current);
            }
            if check_update {
                (kind.check_update)(&current.value, &value)
                    .map_err(|e| Self::invalid(kind, &name, e))?;
            }
            let outcome = if commit == Commit::DryRun {
                let bytes = objects::to_store(&mut value)?;
                objects::check_size(bytes.len())?;
                Ok(current.revision)
            } else if objects::ready_to_delete(&value) {
                self.store
                    .delete(&key, Some(current.revision))
                    .await
                    .map(|(_, revision)| revision)
            } else {
                let bytes = objects::to_store(&mut value)?;
                objects::check_size(bytes.len())?;
                self.store.update(&key, bytes, current.revision).await
            };
            match outcome {
                Ok(revision) => return Ok(finish(kind, value, revision)),
                Err(StoreError::Conflict { actual, .. }) if !precondition.is_empty() => {
                    return Err(conflict(kind, &name, &precondition, actual));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound(_)) => {
                    return Err(ApiError::NotFound {
                        plural: kind.plural.to_string(),
                        name,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Internal(format!(
            "{} {name:?} kept changing; gave up after {UNCONDITIONAL_UPDATE_ATTEMPTS} attempts",
            kind.plural
        )))
    }

    /// Deletes an object, or marks it deleting while finalizers remain.
    /// Without a precondition, a write that lands between the read and the
    /// delete (a Lock's renewal) is not the caller's conflict: read again.
    pub async fn delete(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        precondition: &str,
    ) -> Result<Stored, ApiError> {
        let kind = resolve_kind(kind)?;
        let namespace = objects::effective_namespace(kind, namespace);
        let mut attempts = 1;
        loop {
            match self.delete_once(kind, &namespace, name, precondition).await {
                Err(ApiError::Conflict { .. })
                    if precondition.is_empty() && attempts < UNCONDITIONAL_UPDATE_ATTEMPTS =>
                {
                    attempts += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn delete_once(
        &self,
        kind: &'static KindInfo,
        namespace: &str,
        name: &str,
        precondition: &str,
    ) -> Result<Stored, ApiError> {
        let current = self.get_in(kind, namespace, name).await?;
        if !precondition.is_empty() && precondition != current.revision.to_string() {
            return Err(conflict(kind, name, precondition, current.revision));
        }
        let key = object_key(kind, namespace, name);
        let has_finalizers = current
            .value
            .get("metadata")
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let outcome = if has_finalizers {
            let mut value = current.value.clone();
            objects::mark_deleting(&mut value);
            let bytes = objects::to_store(&mut value)?;
            self.store
                .update(&key, bytes, current.revision)
                .await
                .map(|revision| finish(kind, value, revision))
        } else {
            self.store
                .delete(&key, Some(current.revision))
                .await
                .map(|_| current.clone())
        };
        match outcome {
            Ok(stored) => Ok(stored),
            Err(StoreError::Conflict { actual, .. }) => {
                Err(conflict(kind, name, &current.revision.to_string(), actual))
            }
            Err(StoreError::NotFound(_)) => Err(ApiError::NotFound {
                plural: kind.plural.to_string(),
                name: name.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }
}

/// Which endpoint an update came through: the main one (spec and mutable
/// metadata) or the status subresource (status only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Main,
    Status,
}

/// Whether a checked create or update is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    Store,
    /// Checked exactly as a write, then dropped (`dryRun`).
    DryRun,
}

impl Commit {
    pub fn dry_run(dry_run: bool) -> Self {
        if dry_run { Self::DryRun } else { Self::Store }
    }
}

/// The resourceVersion a dry-run create answers with: nothing was stored.
const DRY_RUN_REVISION: i64 = 0;

fn finish(kind: &'static KindInfo, mut value: Value, revision: i64) -> Stored {
    objects::set_resource_version(&mut value, revision);
    Stored {
        kind,
        value,
        revision,
    }
}

fn conflict(kind: &KindInfo, name: &str, given: &str, current: i64) -> ApiError {
    ApiError::Conflict {
        plural: kind.plural.to_string(),
        name: name.to_string(),
        given: given.to_string(),
        current,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Commit, Resources};
    use crate::error::ApiError;
    use crate::store::embedded::{EmbeddedOptions, EmbeddedStore};

    fn taskrun(agent: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "t", "namespace": "default"},
            "spec": {"agentName": agent, "run": {"shell": "true"}},
        }))
        .expect("json")
    }

    #[tokio::test]
    async fn a_dry_run_checks_every_write_and_stores_nothing() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let store = EmbeddedStore::open(&dir.path().join("sloth.redb"), EmbeddedOptions::default())
            .await
            .expect("open the store");
        let resources = Resources::new(store);
        let dry = resources
            .create_as("TaskRun", &taskrun("a1"), Commit::DryRun)
            .await
            .expect("admitted");
        assert_eq!(dry.value["spec"]["agentName"], "a1");
        assert!(matches!(
            resources.get("TaskRun", "default", "t").await,
            Err(ApiError::NotFound { .. })
        ));
        let stored = resources
            .create("TaskRun", &taskrun("a1"))
            .await
            .expect("created");
        assert!(matches!(
            resources
                .create_as("TaskRun", &taskrun("a1"), Commit::DryRun)
                .await,
            Err(ApiError::AlreadyExists { .. })
        ));
        // Moving a bound TaskRun is refused by a dry run as by a write.
        assert!(matches!(
            resources
                .update_as("TaskRun", &taskrun("a2"), "", Commit::DryRun)
                .await,
            Err(ApiError::Invalid { .. })
        ));
        let mut changed: serde_json::Value = serde_json::from_slice(&taskrun("a1")).expect("json");
        changed["spec"]["run"]["shell"] = "false".into();
        let changed = serde_json::to_vec(&changed).expect("json");
        let dry = resources
            .update_as("TaskRun", &changed, "", Commit::DryRun)
            .await
            .expect("admitted");
        assert_eq!(dry.value["spec"]["run"]["shell"], "false");
        let now = resources.get("TaskRun", "default", "t").await.expect("get");
        assert_eq!(now.revision, stored.revision);
        assert_eq!(now.value["spec"]["run"]["shell"], "true");
    }
}
