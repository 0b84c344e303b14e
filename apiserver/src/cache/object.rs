//! How the watch cache holds an object: its JSON as clients receive it
//! (with its resourceVersion), encoded once, plus the few fields that
//! selectors, the watcher index and list pages read. A decoded
//! `serde_json::Value` tree costs several times its JSON in memory (a node,
//! a map entry and a heap string per field); 100,000 cached TaskRuns made
//! most of a restarted apiserver's memory that way. Watch events and list
//! pages are written from the bytes, without decoding or re-encoding.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;
use sloth_sdk::selector::field_text;

use crate::error::ApiError;
use crate::registry::resources::Selectors;

/// The field paths kept decoded: the ones Sloth's own watchers and lists
/// select on. A selector on any other path decodes the JSON to read it.
const KEPT_FIELDS: [&str; 4] = [
    "metadata.name",
    "metadata.namespace",
    "spec.agentName",
    "status.phase",
];
const NAME: usize = 0;
const NAMESPACE: usize = 1;

/// One object of the watch cache, shared (in an `Arc`) by the cache's
/// state, its window of recent events and every watcher sent it.
#[derive(Debug, PartialEq, Eq)]
pub struct CachedObject {
    json: Box<[u8]>,
    /// `field_text` of each of `KEPT_FIELDS`.
    fields: [Box<str>; KEPT_FIELDS.len()],
    /// `metadata.labels`, read as a label selector reads them.
    labels: BTreeMap<String, String>,
}

impl CachedObject {
    /// The cached form of `value` (an object with its resourceVersion set).
    pub fn new(value: &Value) -> Result<Self, ApiError> {
        let json = serde_json::to_vec(value)
            .map_err(|e| ApiError::Internal(format!("cannot encode object: {e}")))?;
        Ok(Self {
            json: json.into_boxed_slice(),
            fields: KEPT_FIELDS.map(|path| field_text(value, path).into_boxed_str()),
            labels: labels_of(value),
        })
    }

    /// The object's JSON, as sent to clients.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// The object decoded, for a caller that must change it (redaction).
    pub fn decode(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.json)
            .map_err(|e| ApiError::Internal(format!("cached object is not JSON: {e}")))
    }

    pub fn name(&self) -> &str {
        &self.fields[NAME]
    }

    pub fn namespace(&self) -> &str {
        &self.fields[NAMESPACE]
    }

    /// The text of a field path, as `field_text` reads it from the decoded
    /// object: kept fields without decoding, others by decoding the JSON.
    pub fn field(&self, path: &str) -> Cow<'_, str> {
        match KEPT_FIELDS.iter().position(|kept| *kept == path) {
            Some(i) => Cow::Borrowed(&self.fields[i]),
            None => Cow::Owned(
                self.decode()
                    .map(|value| field_text(&value, path))
                    .unwrap_or_default(),
            ),
        }
    }

    /// Whether the object matches `selectors`, as `Selectors::matches`
    /// would judge the decoded object.
    pub fn matches(&self, selectors: &Selectors) -> bool {
        (selectors.labels.is_empty() || selectors.labels.matches(&self.labels))
            && selectors.fields.matches_by(|path| self.field(path))
    }
}

/// The labels as `Selectors::matches` reads them: none unless every one is
/// a string.
fn labels_of(value: &Value) -> BTreeMap<String, String> {
    value
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object() -> Value {
        json!({
            "kind": "TaskRun",
            "metadata": {"name": "t1", "namespace": "default", "resourceVersion": "7",
                         "labels": {"team": "red", "tier": "1"}},
            "spec": {"agentName": "a1", "timeoutSeconds": 30},
            "status": {"phase": "Running"},
        })
    }

    #[test]
    fn the_json_is_the_objects_encoding_and_decodes_back() {
        let value = object();
        let cached = CachedObject::new(&value).expect("cache");
        assert_eq!(cached.json(), serde_json::to_vec(&value).expect("json"));
        assert_eq!(cached.decode().expect("decode"), value);
        assert_eq!((cached.name(), cached.namespace()), ("t1", "default"));
    }

    #[test]
    fn selectors_match_as_on_the_decoded_object() {
        let value = object();
        let cached = CachedObject::new(&value).expect("cache");
        for (labels, fields) in [
            ("", ""),
            ("team=red", ""),
            ("team=blue", ""),
            ("team in (red,blue),!gone", "spec.agentName=a1"),
            ("", "spec.agentName=a2"),
            ("", "status.phase!=Succeeded,status.phase!=Failed"),
            ("", "status.phase=Running,metadata.name=t1"),
            ("", "metadata.namespace=other"),
            // Not kept: read from the JSON.
            ("", "spec.timeoutSeconds=30"),
            ("", "spec.timeoutSeconds=31"),
            ("", "spec.missing="),
        ] {
            let selectors = Selectors::parse(labels, fields).expect("selectors");
            assert_eq!(
                cached.matches(&selectors),
                selectors.matches(&value),
                "{labels:?} {fields:?}"
            );
        }
    }

    #[test]
    fn labels_that_are_not_all_strings_read_as_none() {
        let mut value = object();
        value["metadata"]["labels"]["tier"] = json!(1);
        let cached = CachedObject::new(&value).expect("cache");
        for labels in ["team=red", "!team", "team!=red"] {
            let selectors = Selectors::parse(labels, "").expect("selectors");
            assert_eq!(
                cached.matches(&selectors),
                selectors.matches(&value),
                "{labels}"
            );
        }
    }
}
