//! Admission of StateEntries: the key, the value, and the name the key
//! maps to (so one key is always one object, whoever writes it).

use super::metadata::validate_envelope;
use super::{FieldErrors, Validate};
use crate::objects::StateEntrySpec;
use crate::resource::Object;
use crate::state::{entry_name, validate_key, validate_value};

/// Longest `spec.updatedBy`.
const MAX_UPDATED_BY_LEN: usize = 512;

impl Validate for StateEntrySpec {
    fn validate(object: &Object<Self>) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        validate_envelope(object, &mut errs);
        let spec = &object.spec;
        match validate_key(&spec.key) {
            Err(message) => errs.push("spec.key", message),
            Ok(()) => {
                let name = entry_name(&spec.key);
                if object.metadata.name != name {
                    errs.push(
                        "metadata.name",
                        format!(
                            "must be {name:?}, the name of key {:?} (slothctl state set \
                             and Lua's state.set name entries for you)",
                            spec.key
                        ),
                    );
                }
            }
        }
        if let Err(message) = validate_value(&spec.value) {
            errs.push("spec.value", message);
        }
        if spec
            .updated_by
            .as_ref()
            .is_some_and(|u| u.len() > MAX_UPDATED_BY_LEN)
        {
            errs.push(
                "spec.updatedBy",
                format!("must be at most {MAX_UPDATED_BY_LEN} bytes"),
            );
        }
        errs.into_result()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(key: &str, value: serde_json::Value) -> Object<StateEntrySpec> {
        let mut o = Object::new(
            entry_name(key),
            StateEntrySpec {
                key: key.into(),
                value,
                ..StateEntrySpec::default()
            },
        );
        o.metadata.namespace = "default".into();
        o
    }

    fn fields(r: Result<(), FieldErrors>) -> Vec<String> {
        r.err()
            .map(|e| e.0.into_iter().map(|e| e.field).collect())
            .unwrap_or_default()
    }

    #[test]
    fn keys_values_and_names_are_checked() {
        assert!(fields(StateEntrySpec::validate(&entry("app/db.host", json!("h")))).is_empty());
        assert_eq!(
            fields(StateEntrySpec::validate(&entry("", json!(1)))),
            ["spec.key"]
        );
        assert_eq!(
            fields(StateEntrySpec::validate(&entry("k", json!(null)))),
            ["spec.value"]
        );
        let mut renamed = entry("k", json!(1));
        renamed.metadata.name = "other".into();
        assert_eq!(
            fields(StateEntrySpec::validate(&renamed)),
            ["metadata.name"]
        );
    }
}
