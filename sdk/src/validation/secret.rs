//! Admission of Secrets: `stringData` folded into `data`, keys and base64
//! values checked. Error messages name keys, never values.

use serde_json::Value;

use super::common::{check, key_path};
use super::metadata::validate_envelope;
use super::names;
use super::{FieldError, FieldErrors, Validate};
use crate::kinds::decode;
use crate::objects::SecretSpec;
use crate::resource::Object;

impl Validate for SecretSpec {
    fn validate(object: &Object<Self>) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        validate_envelope(object, &mut errs);
        let spec = &object.spec;
        for (key, value) in &spec.data {
            let at = key_path("spec.data", key);
            check(&mut errs, at.clone(), key, names::validate_secret_key);
            if crate::objects::secret::decode(value).is_err() {
                errs.push(at, "is not valid base64 (use stringData for plain text)");
            }
        }
        for key in spec.string_data.keys() {
            check(
                &mut errs,
                key_path("spec.stringData", key),
                key,
                names::validate_secret_key,
            );
        }
        errs.into_result()
    }
}

/// The admission of the Secret kind: decode, fold `stringData` into
/// `data`, validate, and return the canonical JSON (which never holds
/// `stringData`).
pub(crate) fn admit(value: Value) -> Result<Value, FieldErrors> {
    let mut object = decode::<SecretSpec>(value).map_err(without_values)?;
    // Keys are checked before folding, so an error names the field the
    // user wrote.
    SecretSpec::validate(&object)?;
    object.spec.fold_string_data();
    serde_json::to_value(&object)
        .map_err(|e| FieldErrors::from(FieldError::new("", format!("cannot encode: {e}"))))
}

/// Decoding errors inside `spec` quote what they could not decode (`invalid
/// type: string "hunter2", expected a map`): keep the field, drop the text,
/// so no value reaches a client, a log or the audit log.
fn without_values(errors: FieldErrors) -> FieldErrors {
    FieldErrors(
        errors
            .0
            .into_iter()
            .map(|e| {
                if e.field.starts_with("spec") {
                    FieldError::new(
                        e.field,
                        "has the wrong type (data and stringData map keys to strings, type \
                         is a string; the value is not shown)",
                    )
                } else {
                    e
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn secret(spec: Value) -> Value {
        json!({"apiVersion": "sloth.dev/v1", "kind": "Secret",
               "metadata": {"name": "db", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn decoding_errors_never_quote_a_value() {
        for spec in [
            json!({"stringData": "hunter2"}),
            json!({"data": {"pw": ["hunter2"]}}),
            json!({"stringData": {"pw": {"v": "hunter2"}}}),
        ] {
            let text = admit(secret(spec.clone()))
                .expect_err("invalid")
                .to_string();
            assert!(text.contains("spec."), "{text}");
            assert!(!text.contains("hunter2"), "{spec}: {text}");
        }
    }

    #[test]
    fn string_data_is_stored_as_base64_data() {
        let admitted = admit(secret(json!({"stringData": {"password": "hunter2"},
                                           "data": {"user": "YWRtaW4="}})))
        .expect("valid");
        assert_eq!(
            admitted["spec"],
            json!({"data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="}})
        );
    }

    #[test]
    fn bad_keys_and_values_are_named_without_the_value() {
        let errs = admit(secret(json!({"data": {"a b": "YQ==", "ok": "not base64!"},
                                       "stringData": {"../x": "hunter2"}})))
        .expect_err("invalid");
        let text = errs.to_string();
        assert!(text.contains("spec.data[\"a b\"]"), "{text}");
        assert!(
            text.contains("spec.data[\"ok\"]: is not valid base64"),
            "{text}"
        );
        assert!(text.contains("spec.stringData[\"../x\"]"), "{text}");
        assert!(
            !text.contains("hunter2") && !text.contains("not base64!"),
            "{text}"
        );
    }
}
