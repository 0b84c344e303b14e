//! Secret: named values (passwords, tokens, keys) that the apiserver keeps
//! encrypted at rest and hands only to admins, operators and the agents
//! running a TaskRun that references them.
//!
//! Kubernetes-shaped, inside `spec`: `data` holds base64 values;
//! `stringData` is write-only plain text folded into `data` on admission
//! (it is never stored or returned); `type` is free-form.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::resource::{Object, Spec};

/// A Secret object: named values kept encrypted at rest.
pub type Secret = Object<SecretSpec>;

/// The kind's name, for code that handles Secrets specially (the
/// apiserver's encryption and redaction).
pub const SECRET_KIND: &str = "Secret";

/// The Secret's values and type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSpec {
    /// Free-form (`Opaque` when absent), for humans and tools.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// Key -> base64 of the value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Key -> plain value; folded into `data` on admission (wins over a
    /// `data` entry of the same key).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, String>,
}

/// Secrets keep everything in spec; the status is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SecretStatus {}

impl Spec for SecretSpec {
    type Status = SecretStatus;
    const KIND: &'static str = SECRET_KIND;
}

impl SecretSpec {
    /// Moves `stringData` into `data` (base64), as admission stores it.
    pub fn fold_string_data(&mut self) {
        for (key, value) in std::mem::take(&mut self.string_data) {
            self.data.insert(key, encode(value.as_bytes()));
        }
    }

    /// The decoded value of `key`; None when absent, an error when `data`
    /// holds invalid base64 (admission refuses that, so only for objects
    /// that did not come from the server).
    pub fn value(&self, key: &str) -> Option<Result<Vec<u8>, base64::DecodeError>> {
        self.data.get(key).map(|v| decode(v))
    }

    /// Every key with its decoded value.
    pub fn values(&self) -> Result<BTreeMap<String, Vec<u8>>, String> {
        self.data
            .iter()
            .map(|(k, v)| {
                decode(v)
                    .map(|bytes| (k.clone(), bytes))
                    .map_err(|e| format!("spec.data[{k:?}] is not valid base64: {e}"))
            })
            .collect()
    }
}

/// Standard base64 (with padding), as `data` holds values.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The inverse of [`encode`].
pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD.decode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_folds_into_data_and_wins() {
        let mut spec = SecretSpec {
            data: [
                ("a".to_string(), encode(b"old")),
                ("b".into(), encode(b"x")),
            ]
            .into(),
            string_data: [("a".to_string(), "new".to_string())].into(),
            ..SecretSpec::default()
        };
        spec.fold_string_data();
        assert!(spec.string_data.is_empty());
        assert_eq!(spec.data["a"], "bmV3");
        assert_eq!(spec.value("b").and_then(Result::ok), Some(b"x".to_vec()));
        assert!(spec.value("c").is_none());
    }
}
