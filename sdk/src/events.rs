//! Recording Events: what happened to an object, for `slothctl describe`.
//!
//! Recording is best-effort: a failure is logged, never returned, so that a
//! controller's work never depends on its events. Repeats aggregate as in
//! Kubernetes: the same (object, reason, message) maps to one Event name,
//! whose `count` and `lastTimestamp` are bumped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::client::Api;
use crate::client::Client;
use crate::error::Error;
use crate::meta::DEFAULT_NAMESPACE;
use crate::objects::{Event, EventSpec, EventType};
use crate::resource::Object;

pub use crate::objects::ObjectReference;

/// How long an Event is kept after it last happened.
pub const EVENT_TTL: Duration = Duration::from_secs(60 * 60);

/// Tries at updating an existing Event before giving up.
const ATTEMPTS: usize = 3;
/// Longest Event message the server accepts; longer ones are cut.
const MAX_MESSAGE_BYTES: usize = 4 * 1024;
/// Longest object name: the suffix (`.` and 16 hex digits) must fit after it.
const MAX_PREFIX_LEN: usize = 253 - 17;

/// Events [`Recorder::record_in_background`] writes at once; more wait.
const BACKGROUND_WRITES: usize = 32;

/// Records Events on behalf of one component (`source`).
#[derive(Clone, Debug)]
pub struct Recorder {
    client: Client,
    source: String,
    background: Arc<Semaphore>,
}

impl Recorder {
    /// A recorder writing Events with `source` as their `spec.source`
    /// (`workflow-controller`).
    pub fn new(client: Client, source: impl Into<String>) -> Self {
        Self {
            client,
            source: source.into(),
            background: Arc::new(Semaphore::new(BACKGROUND_WRITES)),
        }
    }

    /// [`record`](Self::record) without waiting for the write, so that a
    /// controller's next step (e.g. starting the next layer of a workflow)
    /// is not held up by its Events; waits only while
    /// `BACKGROUND_WRITES` Events are already being written. The Event is
    /// stamped now, so Events keep the order they were recorded in. Like
    /// Kubernetes' recorder, Events still being written when the process
    /// stops are lost.
    pub async fn record_in_background(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        let at = chrono::Utc::now();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.record_at(object, type_, reason, message, at).await;
        };
        let Ok(slot) = self.background.clone().acquire_owned().await else {
            return;
        };
        let (recorder, object) = (self.clone(), object.clone());
        let (reason, message) = (reason.to_string(), message.to_string());
        runtime.spawn(async move {
            recorder
                .record_at(&object, type_, &reason, &message, at)
                .await;
            drop(slot);
        });
    }

    /// Records that `reason` happened to `object`; a repeat of the same
    /// reason and message bumps the existing Event's count. Never fails:
    /// problems are logged as warnings.
    pub async fn record(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        self.record_at(object, type_, reason, message, chrono::Utc::now())
            .await;
    }

    async fn record_at(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        if let Err(e) = self.try_record(object, type_, reason, message, at).await {
            tracing::warn!(
                kind = %object.kind,
                namespace = %object.namespace,
                name = %object.name,
                reason,
                error = %e,
                "cannot record event"
            );
        }
    }

    async fn try_record(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Error> {
        let message = truncate(message, MAX_MESSAGE_BYTES);
        let namespace = event_namespace(object);
        let name = event_name(object, reason, message);
        let api: Api<EventSpec> = Api::namespaced(self.client.clone(), namespace);
        let mut event: Event = Object::new(
            name.clone(),
            EventSpec {
                involved_object: object.clone(),
                reason: reason.to_string(),
                message: message.to_string(),
                type_,
                count: 1,
                first_timestamp: Some(now),
                last_timestamp: Some(now),
                source: self.source.clone(),
            },
        );
        event.metadata.namespace = namespace.to_string();
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match api.create(&event).await {
                Ok(_) => return Ok(()),
                Err(Error::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
            let mut existing = match api.get(&name).await {
                Ok(existing) => existing,
                // Deleted (TTL) between our create and get: create again.
                Err(e @ Error::NotFound(_)) => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            existing.spec.count = existing.spec.count.saturating_add(1);
            existing.spec.last_timestamp = Some(
                existing
                    .spec
                    .last_timestamp
                    .map_or(now, |last| last.max(now)),
            );
            if existing.spec.first_timestamp.is_none() {
                existing.spec.first_timestamp = existing.metadata.creation_timestamp;
            }
            match api.replace(&existing).await {
                Ok(_) => return Ok(()),
                Err(e @ (Error::Conflict(_) | Error::NotFound(_))) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Conflict(format!("event {name}"))))
    }
}

/// Where the Event of `object` lives: the object's namespace, or `default`
/// for cluster-scoped objects.
pub fn event_namespace(object: &ObjectReference) -> &str {
    if object.namespace.is_empty() {
        DEFAULT_NAMESPACE
    } else {
        &object.namespace
    }
}

/// The deterministic name of the Event for (object, reason, message):
/// `<object name>.<16 hex digits of FNV-1a 64>`, the name cut so the whole
/// fits in 253 characters.
pub fn event_name(object: &ObjectReference, reason: &str, message: &str) -> String {
    let mut hash = Fnv1a::new();
    for part in [
        object.kind.as_str(),
        object.namespace.as_str(),
        object.name.as_str(),
        object.uid.as_str(),
        reason,
        message,
    ] {
        hash.write(part.as_bytes());
        // A separator that cannot occur in UTF-8, so ("ab", "c") and
        // ("a", "bc") differ.
        hash.write(&[0xff]);
    }
    let prefix = truncate(&object.name, MAX_PREFIX_LEN).trim_end_matches(['-', '.']);
    let prefix = if prefix.is_empty() { "event" } else { prefix };
    format!("{prefix}.{:016x}", hash.finish())
}

/// FNV-1a, 64 bits: stable across Rust versions and platforms, unlike
/// `std`'s `DefaultHasher`.
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Self(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::names::validate_name;

    fn workflow(name: &str) -> ObjectReference {
        ObjectReference {
            kind: "Workflow".into(),
            namespace: "default".into(),
            name: name.into(),
            uid: "u-1".into(),
        }
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        let hash = |s: &str| {
            let mut h = Fnv1a::new();
            h.write(s.as_bytes());
            h.finish()
        };
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn names_are_stable_and_differ_by_reason_and_message() {
        let wf = workflow("build");
        let name = event_name(&wf, "Started", "workflow started");
        assert_eq!(name, event_name(&wf, "Started", "workflow started"));
        // Pinned: a change here would split the counts of running clusters.
        assert_eq!(name, "build.18435a3535ceeef7");
        assert!(name.starts_with("build."), "{name}");
        assert_eq!(name.len(), "build.".len() + 16);
        assert_ne!(name, event_name(&wf, "Succeeded", "workflow started"));
        assert_ne!(name, event_name(&wf, "Started", "workflow started again"));
        let mut other_uid = wf.clone();
        other_uid.uid = "u-2".into();
        assert_ne!(name, event_name(&other_uid, "Started", "workflow started"));
        let mut other_kind = wf.clone();
        other_kind.kind = "TaskRun".into();
        assert_ne!(name, event_name(&other_kind, "Started", "workflow started"));
        // Field boundaries count.
        assert_ne!(event_name(&wf, "Ab", "c"), event_name(&wf, "A", "bc"));
        assert_eq!(validate_name(&name), Ok(()));
    }

    #[test]
    fn long_names_are_cut_to_a_valid_name() {
        let long = format!("{}-{}", "a".repeat(235), "b".repeat(17));
        let name = event_name(&workflow(&long), "Started", "m");
        assert!(name.len() <= 253, "{}", name.len());
        assert_eq!(validate_name(&name), Ok(()));
        assert!(name.starts_with(&"a".repeat(235)));
    }

    #[test]
    fn cluster_scoped_objects_record_in_default() {
        let agent = ObjectReference {
            kind: "Agent".into(),
            name: "a1".into(),
            ..ObjectReference::default()
        };
        assert_eq!(event_namespace(&agent), "default");
        assert_eq!(event_namespace(&workflow("w")), "default");
        let mut ci = workflow("w");
        ci.namespace = "ci".into();
        assert_eq!(event_namespace(&ci), "ci");
    }

    #[test]
    fn messages_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
