//! `?watch=true`: the shared watch handler's events as newline-delimited
//! JSON, `{"type": "ADDED|MODIFIED|DELETED|BOOKMARK", "object": {..}}` a
//! line. The object's JSON is copied as the handler encoded it. An error
//! after the stream started (410 Expired when the resourceVersion was
//! compacted away) is a last `{"type": "ERROR", "object": <Status>}` line,
//! as Kubernetes sends it.

use std::time::Duration;

use axum::body::Bytes;
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::json;
use sloth_proto::v1 as pb;
use sloth_proto::v1::resources_server::Resources as _;
use sloth_sdk::kinds::KindInfo;

use super::Rest;
use super::call::Caller;
use super::query::{Params, watch_request};
use super::status::Failure;
use super::stream;
use crate::api::version::API_VERSION;

pub(super) async fn watch(
    rest: &Rest,
    caller: &Caller,
    kind: &'static KindInfo,
    namespace: &str,
    params: &Params,
) -> Result<Response, Failure> {
    let request = caller.request(watch_request(kind, namespace, params)?);
    let events = rest.service.watch(request).await?.into_inner();
    // Ends at shutdown (so the server stops gracefully), after
    // timeoutSeconds, or after its first error's line.
    let lines = stream::until_first_error(
        events,
        move |event| Bytes::from(event_line(kind, event)),
        |status| Bytes::from(error_line(status)),
    )
    .take_until(rest.shutdown.clone().cancelled_owned());
    let lines = match params.timeout_seconds {
        Some(seconds) => lines
            .take_until(tokio::time::sleep(Duration::from_secs(seconds)))
            .boxed(),
        None => lines.boxed(),
    };
    Ok(stream::streamed("application/x-ndjson", lines))
}

fn type_name(event: &pb::WatchEvent) -> &'static str {
    use pb::watch_event::Type;
    match Type::try_from(event.r#type) {
        Ok(Type::Added) => "ADDED",
        Ok(Type::Modified) => "MODIFIED",
        Ok(Type::Deleted) => "DELETED",
        Ok(Type::Bookmark) | Err(_) => "BOOKMARK",
    }
}

/// One event's line. A bookmark's object carries only its resourceVersion.
fn event_line(kind: &KindInfo, event: pb::WatchEvent) -> Vec<u8> {
    let head = format!("{{\"type\":\"{}\",\"object\":", type_name(&event));
    let mut line = head.into_bytes();
    match event.object {
        Some(object) => line.extend_from_slice(&object.json),
        None => line.extend_from_slice(
            json!({
                "kind": kind.kind,
                "apiVersion": API_VERSION,
                "metadata": {"resourceVersion": event.resource_version},
            })
            .to_string()
            .as_bytes(),
        ),
    }
    line.extend_from_slice(b"}\n");
    line
}

fn error_line(status: tonic::Status) -> Vec<u8> {
    let object = Failure::from(status).to_json();
    format!("{{\"type\":\"ERROR\",\"object\":{object}}}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn kind() -> &'static KindInfo {
        sloth_sdk::kinds::lookup("TaskRun").expect("kind")
    }

    #[test]
    fn an_event_is_one_line_with_the_objects_json() {
        let event = pb::WatchEvent {
            r#type: pb::watch_event::Type::Modified as i32,
            object: Some(pb::Object {
                json: br#"{"metadata":{"name":"t","resourceVersion":"5"}}"#.to_vec(),
                ..Default::default()
            }),
            resource_version: "5".into(),
        };
        let line = event_line(kind(), event);
        assert_eq!(line.last(), Some(&b'\n'));
        let value: Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(value["type"], "MODIFIED");
        assert_eq!(value["object"]["metadata"]["name"], "t");
    }

    #[test]
    fn a_bookmark_carries_its_resource_version_and_expiry_is_410() {
        let event = pb::WatchEvent {
            r#type: pb::watch_event::Type::Bookmark as i32,
            object: None,
            resource_version: "9".into(),
        };
        let value: Value = serde_json::from_slice(&event_line(kind(), event)).expect("json");
        assert_eq!(value["type"], "BOOKMARK");
        assert_eq!(value["object"]["metadata"]["resourceVersion"], "9");
        let line = error_line(tonic::Status::out_of_range("too old resource version"));
        let value: Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(value["type"], "ERROR");
        assert_eq!(value["object"]["code"], 410);
        assert!(line.starts_with(b"{\"type\":\"ERROR\""));
    }
}
