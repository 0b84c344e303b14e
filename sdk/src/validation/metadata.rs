//! Rules every kind shares: `apiVersion`, `kind` and `metadata`.

use super::FieldErrors;
use super::common::{check, invalid, key_path, too_large, validate_labels};
use super::limits::MAX_ANNOTATIONS_BYTES;
use super::names::{self, shown};
use crate::meta::{API_VERSION, ObjectMeta};
use crate::resource::{Object, Spec};

/// The envelope of any object: `apiVersion`, `kind` and `metadata`.
pub(super) fn validate_envelope<S: Spec>(object: &Object<S>, errs: &mut FieldErrors) {
    if object.api_version != API_VERSION {
        let why = format!("must be {API_VERSION:?}");
        let message = if object.api_version.is_empty() {
            format!("is required ({why})")
        } else {
            format!("unsupported value {}: {why}", shown(&object.api_version))
        };
        errs.push("apiVersion", message);
    }
    if object.kind != S::KIND {
        let message = if object.kind.is_empty() {
            format!("is required (must be {:?})", S::KIND)
        } else {
            format!(
                "must be {:?} for this object, not {}",
                S::KIND,
                shown(&object.kind)
            )
        };
        errs.push("kind", message);
    }
    validate_object_meta(&object.metadata, errs);
}

fn validate_object_meta(meta: &ObjectMeta, errs: &mut FieldErrors) {
    if meta.name.is_empty() {
        if meta.generate_name.is_empty() {
            errs.push(
                "metadata.name",
                "is required (or set metadata.generateName)",
            );
        }
    } else {
        check(errs, "metadata.name", &meta.name, names::validate_name);
    }
    if !meta.generate_name.is_empty() {
        check(
            errs,
            "metadata.generateName",
            &meta.generate_name,
            names::validate_generate_name,
        );
    }
    if !meta.namespace.is_empty() {
        check(
            errs,
            "metadata.namespace",
            &meta.namespace,
            names::validate_dns1123_label,
        );
    }
    validate_labels(&meta.labels, "metadata.labels", errs);

    let mut annotation_bytes = 0;
    for (key, value) in &meta.annotations {
        if let Err(why) = names::validate_qualified_name(key) {
            errs.push(
                key_path("metadata.annotations", key),
                format!("invalid key {}: {why}", shown(key)),
            );
        }
        annotation_bytes += key.len() + value.len();
    }
    if annotation_bytes > MAX_ANNOTATIONS_BYTES {
        errs.push(
            "metadata.annotations",
            format!(
                "total size of keys and values {}",
                too_large(annotation_bytes, MAX_ANNOTATIONS_BYTES)
            ),
        );
    }

    for (i, finalizer) in meta.finalizers.iter().enumerate() {
        let at = format!("metadata.finalizers[{i}]");
        if let Err(why) = names::validate_qualified_name(finalizer) {
            errs.push(
                at,
                format!(
                    "{} (a finalizer is a qualified name such as 'sloth.dev/cleanup')",
                    invalid(finalizer, &why)
                ),
            );
        }
    }

    let mut controllers = 0;
    for (i, owner) in meta.owner_references.iter().enumerate() {
        let at = format!("metadata.ownerReferences[{i}]");
        for (field, value) in [
            ("apiVersion", &owner.api_version),
            ("kind", &owner.kind),
            ("name", &owner.name),
            ("uid", &owner.uid),
        ] {
            if value.is_empty() {
                errs.push(format!("{at}.{field}"), "is required");
            }
        }
        if owner.controller == Some(true) {
            controllers += 1;
        }
    }
    if controllers > 1 {
        // The garbage collector and controllers act on "the" controller.
        errs.push(
            "metadata.ownerReferences",
            format!("only one reference may have controller set to true (found {controllers})"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::OwnerReference;
    use crate::objects::LockSpec;

    fn errors(object: &Object<LockSpec>) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_envelope(object, &mut errs);
        errs
    }

    fn fields(errs: &FieldErrors) -> Vec<&str> {
        errs.0.iter().map(|e| e.field.as_str()).collect()
    }

    fn lock(name: &str) -> Object<LockSpec> {
        Object::new(name, LockSpec::default())
    }

    #[test]
    fn a_plain_object_is_fine() {
        let mut o = lock("l1");
        o.metadata.namespace = "sloth-system".into();
        o.metadata.labels = [("sloth.dev/role".into(), "".into())].into();
        o.metadata.annotations = [("note".into(), "anything at all: ✓".into())].into();
        o.metadata.finalizers = vec!["sloth.dev/cleanup".into(), "orphan".into()];
        assert!(errors(&o).is_empty(), "{}", errors(&o));
    }

    #[test]
    fn api_version_and_kind_must_match() {
        let mut o = lock("l1");
        o.api_version = "sloth.dev/v2".into();
        o.kind = "TaskRun".into();
        let errs = errors(&o);
        assert_eq!(fields(&errs), ["apiVersion", "kind"]);
        assert_eq!(
            errs.0[0].message,
            "unsupported value \"sloth.dev/v2\": must be \"sloth.dev/v1\""
        );
        assert_eq!(
            errs.0[1].message,
            "must be \"Lock\" for this object, not \"TaskRun\""
        );
        o.api_version.clear();
        o.kind.clear();
        assert_eq!(fields(&errors(&o)), ["apiVersion", "kind"]);
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["Bad_Name", "-x", &"a".repeat(254)] {
            let errs = errors(&lock(bad));
            assert_eq!(fields(&errs), ["metadata.name"], "{bad}");
        }
        let errs = errors(&lock("Bad_Name"));
        assert!(
            errs.0[0]
                .message
                .starts_with("invalid value \"Bad_Name\": a lowercase RFC 1123 subdomain"),
            "{errs}"
        );
        assert!(errors(&lock(&"a".repeat(253))).is_empty());
    }

    #[test]
    fn empty_name_needs_a_valid_generate_name() {
        let mut o = lock("");
        assert_eq!(fields(&errors(&o)), ["metadata.name"]);
        o.metadata.generate_name = "build-".into();
        assert!(errors(&o).is_empty(), "{}", errors(&o));
        o.metadata.generate_name = "Build-".into();
        assert_eq!(fields(&errors(&o)), ["metadata.generateName"]);
        o.metadata.generate_name = "a".repeat(249);
        assert_eq!(fields(&errors(&o)), ["metadata.generateName"]);
    }

    #[test]
    fn namespace_is_a_label() {
        let mut o = lock("l1");
        o.metadata.namespace = "a.b".into();
        assert_eq!(fields(&errors(&o)), ["metadata.namespace"]);
        o.metadata.namespace = "a".repeat(64);
        assert_eq!(fields(&errors(&o)), ["metadata.namespace"]);
    }

    #[test]
    fn label_keys_and_values_are_checked_by_key_path() {
        let mut o = lock("l1");
        o.metadata.labels = [
            ("app/x".to_string(), "ok".to_string()),
            ("Bad_Prefix/x".to_string(), "ok".to_string()),
            ("-key".to_string(), "ok".to_string()),
            ("k".to_string(), "-bad".to_string()),
            ("long".to_string(), "v".repeat(64)),
            ("sp ace".to_string(), "has space".to_string()),
        ]
        .into();
        let errs = errors(&o);
        assert_eq!(
            fields(&errs),
            [
                "metadata.labels[\"-key\"]",
                "metadata.labels[\"Bad_Prefix/x\"]",
                "metadata.labels[\"k\"]",
                "metadata.labels[\"long\"]",
                "metadata.labels[\"sp ace\"]",
                "metadata.labels[\"sp ace\"]",
            ],
            "{errs}"
        );
        assert!(
            errs.0[0].message.starts_with("invalid key \"-key\""),
            "{errs}"
        );
        assert!(
            errs.0[2].message.starts_with("invalid value \"-bad\""),
            "{errs}"
        );
        assert!(errs.0[3].message.contains("no more than 63"), "{errs}");
    }

    #[test]
    fn annotations_have_valid_keys_and_a_total_size() {
        let mut o = lock("l1");
        o.metadata.annotations = [
            ("a/b/c".to_string(), String::new()),
            ("big".to_string(), "x".repeat(MAX_ANNOTATIONS_BYTES)),
        ]
        .into();
        let errs = errors(&o);
        assert_eq!(
            fields(&errs),
            ["metadata.annotations[\"a/b/c\"]", "metadata.annotations"],
            "{errs}"
        );
        assert!(errs.0[1].message.contains("262144"), "{errs}");
    }

    #[test]
    fn finalizers_and_owner_references() {
        let mut o = lock("l1");
        o.metadata.finalizers = vec!["ok".into(), String::new(), "a/b/c".into()];
        let owner = |uid: &str, controller| OwnerReference {
            api_version: API_VERSION.into(),
            kind: "Workflow".into(),
            name: "w".into(),
            uid: uid.into(),
            controller,
        };
        o.metadata.owner_references = vec![
            owner("u1", Some(true)),
            owner("", Some(true)),
            OwnerReference::default(),
        ];
        let errs = errors(&o);
        assert_eq!(
            fields(&errs),
            [
                "metadata.finalizers[1]",
                "metadata.finalizers[2]",
                "metadata.ownerReferences[1].uid",
                "metadata.ownerReferences[2].apiVersion",
                "metadata.ownerReferences[2].kind",
                "metadata.ownerReferences[2].name",
                "metadata.ownerReferences[2].uid",
                "metadata.ownerReferences",
            ],
            "{errs}"
        );
    }
}
