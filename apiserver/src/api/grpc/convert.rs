//! Conversions between stored objects and their protobuf messages, and the
//! parsing of request fields shared by several calls.

use sloth_proto::v1 as pb;
use sloth_sdk::kinds::KindInfo;
use tonic::Status;

use crate::access::secret_access;
use crate::cache::Entry;
use crate::error::ApiError;
use crate::registry::resources::Stored;
use crate::registry::watch::{EventType, ObjectEvent};

pub(super) fn to_proto(stored: &Stored) -> Result<pb::Object, ApiError> {
    let json = serde_json::to_vec(&stored.value)
        .map_err(|e| ApiError::Internal(format!("cannot encode object: {e}")))?;
    Ok(pb::Object {
        kind: stored.kind.kind.to_string(),
        namespace: stored.namespace().to_string(),
        name: stored.name().to_string(),
        resource_version: stored.revision.to_string(),
        json,
    })
}

/// An object of a list page served by the watch cache: its JSON as the
/// cache encoded it, or a redacted copy (`redacts`: a Secret for a caller
/// without read access to its data).
pub(super) fn cached_to_proto(
    kind: &'static KindInfo,
    entry: &Entry,
    redacts: bool,
) -> Result<pb::Object, ApiError> {
    if redacts {
        let mut value = entry.object.decode()?;
        secret_access::redact(&mut value);
        return to_proto(&Stored {
            kind,
            value,
            revision: entry.revision,
        });
    }
    let object = &entry.object;
    Ok(pb::Object {
        kind: kind.kind.to_string(),
        namespace: object.namespace().to_string(),
        name: object.name().to_string(),
        resource_version: entry.revision.to_string(),
        json: object.json().to_vec(),
    })
}

/// Public for the micro-benchmarks of watch fan-out (`sloth-bench`).
pub fn event_to_proto(event: ObjectEvent) -> Result<pb::WatchEvent, ApiError> {
    use pb::watch_event::Type;
    let event_type = match event.event_type {
        EventType::Added => Type::Added,
        EventType::Modified => Type::Modified,
        EventType::Deleted => Type::Deleted,
        EventType::Bookmark => Type::Bookmark,
    };
    let object = match &event.object {
        Some(object) => Some(pb::Object {
            kind: event.kind.kind.to_string(),
            namespace: object.namespace().to_string(),
            name: object.name().to_string(),
            resource_version: event.revision.to_string(),
            json: object.json()?,
        }),
        None => None,
    };
    Ok(pb::WatchEvent {
        r#type: event_type as i32,
        object,
        resource_version: event.revision.to_string(),
    })
}

pub(super) fn object_of(request: Option<pb::Object>) -> Result<pb::Object, ApiError> {
    request.ok_or_else(|| ApiError::BadRequest("request has no object".into()))
}

pub(super) fn parse_revision(rv: &str) -> Result<Option<i64>, ApiError> {
    match rv {
        "" | "0" => Ok(None),
        rv => rv
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {rv:?}"))),
    }
}

/// Where a list is read from.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ListSource {
    /// The store, at its latest revision or a continue token's.
    Store,
    /// Any recent data: the watch cache when there is one.
    AnyRecent,
}

/// The list's resourceVersion: "" (latest) or "0" (any recent); a
/// continue token reads the store at its own revision.
pub(super) fn list_source(request: &pb::ListRequest) -> Result<ListSource, ApiError> {
    match request.resource_version.as_str() {
        _ if !request.continue_token.is_empty() => Ok(ListSource::Store),
        "" => Ok(ListSource::Store),
        "0" => Ok(ListSource::AnyRecent),
        rv => Err(ApiError::BadRequest(format!(
            "list resourceVersion {rv:?} is not supported: give \"\" for the latest \
             data or \"0\" for any recent data"
        ))),
    }
}

pub(super) fn code_of<T>(result: &Result<T, Status>) -> tonic::Code {
    result
        .as_ref()
        .map_or_else(Status::code, |_| tonic::Code::Ok)
}
