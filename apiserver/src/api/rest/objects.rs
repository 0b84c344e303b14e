//! get, list, create, update (main and status), merge-patch and delete:
//! each one call of the shared gRPC handlers.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sloth_proto::v1 as pb;
use sloth_proto::v1::resources_server::Resources as _;
use sloth_sdk::kinds::KindInfo;

use super::Rest;
use super::body;
use super::call::Caller;
use super::paths::ObjectPath;
use super::query::{Params, list_request};
use super::status::Failure;
use crate::api::version::API_VERSION;

/// Attempts of a merge patch that races other writers (each reads the
/// object again), as kube-apiserver retries its patches.
const PATCH_ATTEMPTS: usize = 5;

/// Which endpoint a write goes to.
#[derive(Clone, Copy, Debug)]
pub(super) enum Subresource {
    Main,
    Status,
}

/// A JSON answer from bytes already encoded.
pub(super) fn json_bytes(status: StatusCode, json: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], json).into_response()
}

pub(super) async fn get(
    rest: &Rest,
    caller: &Caller,
    path: &ObjectPath,
) -> Result<Response, Failure> {
    let object = fetch(rest, caller, path).await?;
    Ok(json_bytes(StatusCode::OK, object.json))
}

async fn fetch(rest: &Rest, caller: &Caller, path: &ObjectPath) -> Result<pb::Object, Failure> {
    let request = caller.request(pb::GetRequest {
        kind: path.kind.kind.to_string(),
        namespace: path.namespace.clone(),
        name: path.name.clone(),
    });
    Ok(rest.service.get(request).await?.into_inner())
}

pub(super) async fn list(
    rest: &Rest,
    caller: &Caller,
    kind: &'static KindInfo,
    namespace: &str,
    params: &Params,
) -> Result<Response, Failure> {
    let request = caller.request(list_request(kind, namespace, params));
    let listed = rest.service.list(request).await?.into_inner();
    Ok(json_bytes(StatusCode::OK, list_json(kind, listed)))
}

/// `{"apiVersion", "kind": "<Kind>List", "metadata", "items": [..]}` with the
/// items' JSON copied as the handlers encoded it.
fn list_json(kind: &KindInfo, listed: pb::ListResponse) -> Vec<u8> {
    let mut metadata = json!({"resourceVersion": listed.resource_version});
    if !listed.continue_token.is_empty() {
        metadata["continue"] = Value::String(listed.continue_token);
    }
    let head = json!({
        "apiVersion": API_VERSION,
        "kind": format!("{}List", kind.kind),
        "metadata": metadata,
    })
    .to_string();
    let size = listed.items.iter().map(|i| i.json.len() + 1).sum::<usize>();
    let mut out = Vec::with_capacity(head.len() + size + 16);
    // `{...}` without its closing brace, then the items.
    out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in listed.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item.json);
    }
    out.extend_from_slice(b"]}");
    out
}

pub(super) async fn create(
    rest: &Rest,
    caller: &Caller,
    kind: &'static KindInfo,
    namespace: &str,
    params: &Params,
    body: &[u8],
) -> Result<Response, Failure> {
    let mut value = body::decode(caller.headers(), body)?;
    body::fit_to_path(&mut value, kind.kind, namespace, None)?;
    let request = caller.request(pb::CreateRequest {
        object: Some(envelope(kind, body::encode(&value)?)),
        dry_run: params.dry_run()?,
    });
    let created = rest.service.create(request).await?.into_inner();
    Ok(json_bytes(StatusCode::CREATED, created.json))
}

/// The names are read from the JSON (as the gRPC handlers do when the
/// envelope leaves them empty).
fn envelope(kind: &KindInfo, json: Vec<u8>) -> pb::Object {
    pb::Object {
        kind: kind.kind.to_string(),
        json,
        ..Default::default()
    }
}

pub(super) async fn update(
    rest: &Rest,
    caller: &Caller,
    path: &ObjectPath,
    to: Subresource,
    params: &Params,
    body: &[u8],
) -> Result<Response, Failure> {
    let json = body::object_body(caller.headers(), body, path)?;
    let updated = write(rest, caller, path.kind, to, json, params.dry_run()?).await?;
    Ok(json_bytes(StatusCode::OK, updated.json))
}

async fn write(
    rest: &Rest,
    caller: &Caller,
    kind: &KindInfo,
    to: Subresource,
    json: Vec<u8>,
    dry_run: bool,
) -> Result<pb::Object, tonic::Status> {
    let request = caller.request(pb::UpdateRequest {
        object: Some(envelope(kind, json)),
        dry_run,
    });
    let response = match to {
        Subresource::Main => rest.service.update(request).await?,
        Subresource::Status => rest.service.update_status(request).await?,
    };
    Ok(response.into_inner())
}

/// A JSON merge patch: read, merge, write with the read resourceVersion as
/// precondition; a race with another writer reads again (unless the patch
/// itself names a resourceVersion, which then must hold).
pub(super) async fn patch(
    rest: &Rest,
    caller: &Caller,
    path: &ObjectPath,
    to: Subresource,
    params: &Params,
    body: &[u8],
) -> Result<Response, Failure> {
    if !body::is_merge_patch(caller.headers()) {
        return Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "PATCH takes Content-Type: application/merge-patch+json (JSON merge patch, RFC 7386)",
        ));
    }
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| Failure::bad_request(format!("the patch is not valid JSON: {e}")))?;
    if !patch.is_object() {
        return Err(Failure::bad_request("the patch must be an object"));
    }
    let pinned = patch.pointer("/metadata/resourceVersion").is_some();
    let dry_run = params.dry_run()?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = fetch(rest, caller, path).await?;
        let mut value: Value = serde_json::from_slice(&current.json)
            .map_err(|e| Failure::from(tonic::Status::internal(format!("stored object: {e}"))))?;
        body::merge_patch(&mut value, &patch);
        body::fit_to_path(
            &mut value,
            path.kind.kind,
            &path.namespace,
            Some(&path.name),
        )?;
        match write(rest, caller, path.kind, to, body::encode(&value)?, dry_run).await {
            Ok(patched) => return Ok(json_bytes(StatusCode::OK, patched.json)),
            Err(status)
                if status.code() == tonic::Code::Aborted && !pinned && attempt < PATCH_ATTEMPTS => {
            }
            Err(status) => return Err(status.into()),
        }
    }
}

/// DELETE, with Kubernetes' optional `DeleteOptions` body: its
/// `preconditions.resourceVersion` is the gRPC DeleteRequest's (409
/// Conflict when the object has changed since).
pub(super) async fn delete(
    rest: &Rest,
    caller: &Caller,
    path: &ObjectPath,
    body: &[u8],
) -> Result<Response, Failure> {
    let request = caller.request(pb::DeleteRequest {
        kind: path.kind.kind.to_string(),
        namespace: path.namespace.clone(),
        name: path.name.clone(),
        resource_version: body::delete_precondition(caller.headers(), body)?,
    });
    let deleted = rest.service.delete(request).await?.into_inner();
    Ok(json_bytes(StatusCode::OK, deleted.json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_the_items_json_inside_a_kind_list() {
        let kind = sloth_sdk::kinds::lookup("TaskRun").expect("kind");
        let listed = pb::ListResponse {
            items: vec![
                pb::Object {
                    json: br#"{"a":1}"#.to_vec(),
                    ..Default::default()
                },
                pb::Object {
                    json: br#"{"b":2}"#.to_vec(),
                    ..Default::default()
                },
            ],
            resource_version: "7".into(),
            continue_token: "next".into(),
        };
        let value: Value = serde_json::from_slice(&list_json(kind, listed)).expect("json");
        assert_eq!(
            value,
            json!({"apiVersion": API_VERSION, "kind": "TaskRunList",
                "metadata": {"resourceVersion": "7", "continue": "next"},
                "items": [{"a": 1}, {"b": 2}]})
        );
    }
}
