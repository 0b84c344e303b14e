//! Converting between the wire envelope (`pb::Object`, `pb::WatchEvent`)
//! and dynamic or typed objects, and the text of a failed call's status.

use super::*;

/// A status's message followed by its causes, when it has any.
pub(super) fn with_causes(status: &tonic::Status) -> String {
    crate::error::with_causes(status.message(), std::error::Error::source(status))
}

/// A status made by the client's transport rather than sent by a server
/// (Sloth's servers never answer Cancelled).
pub(super) fn is_transport_failure(status: &tonic::Status) -> bool {
    match status.code() {
        tonic::Code::Unknown => std::error::Error::source(status).is_some(),
        tonic::Code::Cancelled => true,
        // Bytes that are not HTTP/2 (a TLS alert to a plaintext client).
        tonic::Code::Internal => status.message().starts_with("h2 protocol error"),
        _ => false,
    }
}

pub(super) fn envelope(object: &Value) -> Result<pb::Object, Error> {
    let text = |path: &[&str]| {
        let mut node = object;
        for part in path {
            node = match node.get(part) {
                Some(n) => n,
                None => return String::new(),
            };
        }
        node.as_str().unwrap_or_default().to_string()
    };
    let json = serde_json::to_vec(object).map_err(|e| Error::decode("object", e))?;
    Ok(pb::Object {
        kind: text(&["kind"]),
        namespace: text(&["metadata", "namespace"]),
        name: text(&["metadata", "name"]),
        resource_version: text(&["metadata", "resourceVersion"]),
        json,
    })
}

pub(super) fn decode_dynamic(object: &pb::Object) -> Result<DynamicObject, Error> {
    serde_json::from_slice(&object.json)
        .map_err(|e| Error::decode(format!("{} {:?}", object.kind, object.name), e))
}

pub(super) fn decode_event(event: pb::WatchEvent) -> Result<WatchEvent<DynamicObject>, Error> {
    use pb::watch_event::Type;
    let kind = Type::try_from(event.r#type)
        .map_err(|_| Error::decode("watch event", format!("unknown type {}", event.r#type)))?;
    if kind == Type::Bookmark {
        return Ok(WatchEvent::Bookmark(event.resource_version));
    }
    let object = event
        .object
        .as_ref()
        .ok_or_else(|| Error::decode("watch event", "no object"))
        .and_then(decode_dynamic)?;
    Ok(match kind {
        Type::Added => WatchEvent::Added(object),
        Type::Modified => WatchEvent::Modified(object),
        Type::Deleted => WatchEvent::Deleted(object),
        Type::Bookmark => WatchEvent::Bookmark(event.resource_version),
    })
}

/// Converts a dynamic object to a typed one. Only `spec` and `status` are
/// decoded, from the values they already are (moved, not copied): every
/// watch event of every typed watch goes through here, and a Workflow's
/// can be close to 1 MiB.
pub fn to_typed<S: Spec>(object: DynamicObject) -> Result<Object<S>, Error> {
    let DynamicObject {
        api_version,
        kind,
        metadata,
        spec,
        status,
    } = object;
    let what = || format!("{} {:?}", S::KIND, metadata.name);
    if spec.is_null() {
        return Err(Error::decode(what(), "missing field `spec`"));
    }
    let spec = serde_json::from_value(spec).map_err(|e| Error::decode(what(), e))?;
    let status = match status {
        serde_json::Value::Null => None,
        status => Some(serde_json::from_value(status).map_err(|e| Error::decode(what(), e))?),
    };
    Ok(Object {
        api_version,
        kind,
        metadata,
        spec,
        status,
    })
}

pub(super) fn to_value<S: Spec>(object: &Object<S>) -> Result<Value, Error> {
    serde_json::to_value(object).map_err(|e| Error::decode(S::KIND, e))
}
