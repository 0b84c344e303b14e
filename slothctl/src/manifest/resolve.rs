//! Resolving documents: settling each one's kind and namespace and running
//! the checks, with messages that name the document and the field.

use super::*;

/// A document whose kind is known and whose namespace is settled.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub doc: Document,
    pub kind: &'static KindInfo,
    /// Empty when the server is to generate it (`generateName`).
    pub name: String,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    /// The object to send: canonical JSON when admitted.
    pub value: Value,
}

/// What checks [`resolve()`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Decode and validate the whole object, as the server would (apply).
    Admit,
    /// Only kind, name and namespace (delete).
    Identity,
}

/// Settles a document's kind and namespace (`namespace_flag` when given,
/// else `default`, for namespaced kinds; none for cluster-scoped ones) and
/// runs `check`. The error message names the document and the field.
pub(crate) fn resolve(
    doc: Document,
    namespace_flag: Option<&str>,
    check: Check,
) -> Result<Resolved, String> {
    let fail = |doc: &Document, message: String| format!("error: {}: {message}", doc.label());
    let Value::Object(_) = &doc.value else {
        let found = match &doc.value {
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            _ => "nothing",
        };
        return Err(fail(
            &doc,
            format!("expected an object with apiVersion, kind, metadata and spec, found {found}"),
        ));
    };
    let kind_name = match doc.value.get("kind") {
        None | Some(Value::Null) => return Err(fail(&doc, "kind: is required".into())),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(fail(&doc, "kind: must be a non-empty string".into())),
    };
    let kind = lookup(&kind_name).ok_or_else(|| {
        fail(
            &doc,
            format!(
                "kind: unknown kind {kind_name:?} (known: {})",
                known_kinds()
            ),
        )
    })?;
    let mut value = doc.value.clone();
    if !value.get("metadata").is_some_and(Value::is_object) {
        if value.get("metadata").is_some_and(|m| !m.is_null()) {
            return Err(fail(&doc, "metadata: must be an object".into()));
        }
        value["metadata"] = Value::Object(Default::default());
    }
    let meta_text = |value: &Value, field: &str| -> Result<String, String> {
        match value["metadata"].get(field) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(fail(&doc, format!("metadata.{field}: must be a string"))),
        }
    };
    let name = meta_text(&value, "name")?;
    let generate_name = meta_text(&value, "generateName")?;
    if name.is_empty() && (generate_name.is_empty() || check == Check::Identity) {
        return Err(fail(&doc, "metadata.name: is required".into()));
    }
    let written = meta_text(&value, "namespace")?;
    let namespace = if kind.namespaced {
        match namespace_flag {
            Some(flag) if !written.is_empty() && written != flag => {
                return Err(fail(
                    &doc,
                    format!(
                        "metadata.namespace: the object's namespace {written:?} does not match \
                         the namespace {flag:?} given with --namespace"
                    ),
                ));
            }
            _ if !written.is_empty() => written,
            Some(flag) => flag.to_string(),
            None => DEFAULT_NAMESPACE.to_string(),
        }
    } else {
        String::new()
    };
    if let Some(meta) = value["metadata"].as_object_mut() {
        if namespace.is_empty() {
            meta.remove("namespace");
        } else {
            meta.insert("namespace".into(), Value::String(namespace.clone()));
        }
    }
    if check == Check::Admit {
        value = (kind.admit)(value).map_err(|errors| fail(&doc, errors.to_string()))?;
    }
    Ok(Resolved {
        doc,
        kind,
        name,
        namespace,
        value,
    })
}

/// Resolves every document; on any failure returns one message per bad one.
pub(crate) fn resolve_all(
    docs: Vec<Document>,
    namespace_flag: Option<&str>,
    check: Check,
) -> Result<Vec<Resolved>, Vec<String>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for doc in docs {
        match resolve(doc, namespace_flag, check) {
            Ok(r) => ok.push(r),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors)
    }
}
