//! A task's environment and the Secrets it uses.
//!
//! `env` is written either as a map (`{NAME: value}`, the original form) or
//! as a Kubernetes-style list (`[{name, value}]` or `[{name, valueFrom:
//! {secretKeyRef: {name, key}}}]`). It serializes as a map while it holds
//! no secret reference, so objects without Secrets are stored exactly as
//! before. A reference names a Secret; the value never enters the object.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Environment variables: plain values (the map this derefs to) and
/// values read from Secrets on the agent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Env {
    values: BTreeMap<String, String>,
    /// Variable name -> the Secret key it is read from.
    pub secret_refs: BTreeMap<String, SecretKeySelector>,
}

impl Env {
    /// No variables at all.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.secret_refs.is_empty()
    }
}

impl Deref for Env {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.values
    }
}

impl DerefMut for Env {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.values
    }
}

impl From<BTreeMap<String, String>> for Env {
    fn from(values: BTreeMap<String, String>) -> Self {
        Self {
            values,
            secret_refs: BTreeMap::new(),
        }
    }
}

impl<const N: usize> From<[(String, String); N]> for Env {
    fn from(pairs: [(String, String); N]) -> Self {
        Self::from(BTreeMap::from(pairs))
    }
}

/// One entry of the list form.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// The variable's name.
    pub name: String,
    /// Its plain value; exclusive with `valueFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where to read the value from on the agent; exclusive with `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// `valueFrom` of an env list entry: a Secret key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVarSource {
    /// The Secret key the value is read from.
    pub secret_key_ref: SecretKeySelector,
}

/// One key of one Secret (in the task's namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SecretKeySelector {
    /// The Secret's name.
    pub name: String,
    /// The key within the Secret's `data`.
    pub key: String,
}

/// `envFrom: [{secretRef: {name}}]`: every key of a Secret as a variable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvFromSource {
    /// The Secret whose keys become variables.
    pub secret_ref: SecretRef,
}

/// Names a Secret in the task's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
}

/// `secretFiles: [{secretName, path}]`: a Secret written into the run
/// directory (mode 0600) for the run and removed after it. `path` is a
/// directory (relative to the run directory) holding one file per key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretFile {
    /// The Secret's name.
    pub secret_name: String,
    /// The directory its keys are written into, relative to the run directory.
    pub path: String,
}

/// The Secrets a task uses, by every way it can name them.
#[derive(Clone, Copy, Debug)]
pub struct SecretUse<'a> {
    /// `env`, with its `valueFrom.secretKeyRef` entries.
    pub env: &'a Env,
    /// `envFrom`: whole Secrets as variables.
    pub env_from: &'a [EnvFromSource],
    /// `secretFiles`: Secrets written as files.
    pub secret_files: &'a [SecretFile],
    /// Secrets a Lua payload reads (`secret.get`, the `secrets` global).
    pub secrets: &'a [String],
}

impl SecretUse<'_> {
    /// The names of every Secret referenced, once each.
    pub fn names(&self) -> BTreeSet<&str> {
        let mut names: BTreeSet<&str> = self
            .env
            .secret_refs
            .values()
            .map(|r| r.name.as_str())
            .collect();
        names.extend(self.env_from.iter().map(|e| e.secret_ref.name.as_str()));
        names.extend(self.secret_files.iter().map(|f| f.secret_name.as_str()));
        names.extend(self.secrets.iter().map(String::as_str));
        names
    }
}

impl Serialize for Env {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.secret_refs.is_empty() {
            return self.values.serialize(serializer);
        }
        let mut seq = serializer.serialize_seq(Some(self.values.len() + self.secret_refs.len()))?;
        for (name, value) in &self.values {
            seq.serialize_element(&EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                value_from: None,
            })?;
        }
        for (name, secret_key_ref) in &self.secret_refs {
            seq.serialize_element(&EnvVar {
                name: name.clone(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: secret_key_ref.clone(),
                }),
            })?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Env {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EnvVisitor)
    }
}

struct EnvVisitor;

impl<'de> Visitor<'de> for EnvVisitor {
    type Value = Env;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of NAME: value, or a list of {name, value} / {name, valueFrom}")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Env, E> {
        Ok(Env::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Env, A::Error> {
        let mut values = BTreeMap::new();
        while let Some((name, value)) = map.next_entry::<String, String>()? {
            values.insert(name, value);
        }
        Ok(Env::from(values))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Env, A::Error> {
        let mut env = Env::default();
        while let Some(var) = seq.next_element::<EnvVar>()? {
            let duplicate =
                env.values.contains_key(&var.name) || env.secret_refs.contains_key(&var.name);
            if duplicate {
                return Err(de::Error::custom(format!(
                    "variable {:?} is given twice",
                    var.name
                )));
            }
            match (var.value, var.value_from) {
                (Some(_), Some(_)) => {
                    return Err(de::Error::custom(format!(
                        "variable {:?} has both value and valueFrom: give one",
                        var.name
                    )));
                }
                (_, Some(from)) => {
                    env.secret_refs.insert(var.name, from.secret_key_ref);
                }
                (value, None) => {
                    env.values.insert(var.name, value.unwrap_or_default());
                }
            }
        }
        Ok(env)
    }
}

/// As serde reads it: a map of plain values, or the Kubernetes-style list.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for Env {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Env".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let var = generator.subschema_for::<EnvVar>();
        schemars::json_schema!({
            "description": "Environment variables: a map of NAME: value, or a list of \
                {name, value} / {name, valueFrom: {secretKeyRef: {name, key}}}.",
            "oneOf": [
                {"type": "object", "additionalProperties": {"type": "string"}},
                {"type": "array", "items": var},
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_map_stays_a_map_and_a_list_with_references_stays_a_list() {
        let env: Env = serde_json::from_value(json!({"A": "1"})).expect("map");
        assert_eq!(env["A"], "1");
        assert_eq!(
            serde_json::to_value(&env).expect("encode"),
            json!({"A": "1"})
        );

        let list = json!([
            {"name": "A", "value": "1"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
        ]);
        let env: Env = serde_json::from_value(list.clone()).expect("list");
        assert_eq!(env["A"], "1");
        assert_eq!(env.secret_refs["PW"].name, "db");
        assert_eq!(serde_json::to_value(&env).expect("encode"), list);

        let plain: Env = serde_json::from_value(json!([{"name": "A", "value": "1"}])).expect("l");
        assert_eq!(
            serde_json::to_value(&plain).expect("encode"),
            json!({"A": "1"})
        );
    }

    #[test]
    fn bad_lists_are_refused() {
        for bad in [
            json!([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
            json!([{"name": "A", "value": "1",
                    "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}]),
            json!([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "db"}}}]),
            json!([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "db"}}}]),
        ] {
            assert!(serde_json::from_value::<Env>(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_every_secret_once() {
        let env: Env = serde_json::from_value(json!([
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
        ]))
        .expect("env");
        let env_from = [EnvFromSource {
            secret_ref: SecretRef { name: "api".into() },
        }];
        let files = [SecretFile {
            secret_name: "db".into(),
            path: "creds".into(),
        }];
        let use_ = SecretUse {
            env: &env,
            env_from: &env_from,
            secret_files: &files,
            secrets: &["tls".into()],
        };
        assert_eq!(
            use_.names().into_iter().collect::<Vec<_>>(),
            ["api", "db", "tls"]
        );
    }
}
