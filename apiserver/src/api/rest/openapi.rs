//! `GET /openapi/v3` (and `/openapi/v3/apis/sloth.dev/v1`, the only group):
//! an OpenAPI 3.1 document of the REST API. The schemas are generated from
//! the sdk's serde types ([`sloth_sdk::schema`]) and the paths from the
//! kind registry, so a new kind or field is described without anyone
//! writing it down. Built once, on first request.

use std::sync::OnceLock;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sloth_sdk::kinds::{KINDS, KindInfo};
use sloth_sdk::schema::{OPENAPI_DEFINITIONS, kind_schemas};

use super::Rest;
use super::call::Caller;
use super::objects::json_bytes;
use super::paths::PREFIX;
use crate::api::http::HttpPeer;
use crate::api::version::{API_VERSION, VERSION};

/// Where the document is served.
pub(super) const OPENAPI_PATHS: [&str; 2] = ["/openapi/v3", "/openapi/v3/apis/sloth.dev/v1"];

/// Any authenticated caller may read it (as Kubernetes' discovery role).
pub(super) async fn serve(
    State(rest): State<Rest>,
    ConnectInfo(peer): ConnectInfo<HttpPeer>,
    headers: HeaderMap,
) -> Response {
    let caller = Caller::new(headers, peer.info().clone());
    match caller.authenticate(&rest.guard) {
        Ok(_) => json_bytes(StatusCode::OK, document().to_vec()),
        Err(failure) => failure.into_response(),
    }
}

fn document() -> &'static [u8] {
    static DOCUMENT: OnceLock<Vec<u8>> = OnceLock::new();
    DOCUMENT.get_or_init(|| build().to_string().into_bytes())
}

fn build() -> Value {
    let mut schemas = kind_schemas(OPENAPI_DEFINITIONS);
    schemas.insert("Status".into(), status_schema());
    schemas.insert("DeleteOptions".into(), delete_options_schema());
    let mut paths = Map::new();
    for kind in KINDS {
        schemas.insert(format!("{}List", kind.kind), list_schema(kind));
        kind_paths(kind, &mut paths);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Sloth",
            "version": VERSION,
            "description": format!("The REST API of the Sloth apiserver ({API_VERSION}), \
                generated from its object types (docs/api.md)."),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": parameters(),
            "securitySchemes": {"BearerToken": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"BearerToken": []}],
    })
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#{OPENAPI_DEFINITIONS}/{name}")})
}

fn parameter(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

/// The paths of one kind: its collections, objects and subresources.
fn kind_paths(kind: &KindInfo, paths: &mut Map<String, Value>) {
    let plural = kind.plural;
    let (collection, scope) = if kind.namespaced {
        (
            format!("{PREFIX}/namespaces/{{namespace}}/{plural}"),
            "Namespaced",
        )
    } else {
        (format!("{PREFIX}/{plural}"), "")
    };
    let item = format!("{collection}/{{name}}");
    let mut names = vec![parameter("name")];
    if kind.namespaced {
        names.push(parameter("namespace"));
        paths.insert(
            format!("{PREFIX}/{plural}"),
            json!({"get": list(kind, &format!("list{}ForAllNamespaces", kind.kind), Vec::new())}),
        );
    }
    let collection_names: Vec<Value> = names.iter().skip(1).cloned().collect();
    let op = |verb: &str, suffix: &str| format!("{verb}{scope}{}{suffix}", kind.kind);
    paths.insert(
        collection.clone(),
        json!({
            "get": list(kind, &op("list", ""), collection_names.clone()),
            "post": write(kind, &op("create", ""), collection_names, "201", "application/json"),
        }),
    );
    paths.insert(
        item.clone(),
        json!({
            "get": read(kind, &op("read", ""), names.clone()),
            "put": write(kind, &op("replace", ""), names.clone(), "200", "application/json"),
            "patch": write(kind, &op("patch", ""), names.clone(), "200",
                "application/merge-patch+json"),
            "delete": delete(kind, &op("delete", ""), names.clone()),
        }),
    );
    paths.insert(
        format!("{item}/status"),
        json!({
            "get": read(kind, &op("read", "Status"), names.clone()),
            "put": write(kind, &op("replace", "Status"), names.clone(), "200", "application/json"),
            "patch": write(kind, &op("patch", "Status"), names.clone(), "200",
                "application/merge-patch+json"),
        }),
    );
    if kind.kind == "TaskRun" {
        let mut log_params = names;
        log_params.extend(["follow", "timestamps", "sinceSeconds", "tailLines"].map(parameter));
        paths.insert(
            format!("{item}/log"),
            json!({"get": {
                "operationId": op("read", "Log"),
                "summary": "The output of the TaskRun, followed with follow=true",
                "parameters": log_params,
                "responses": {
                    "200": {"description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "default": failure(),
                },
            }}),
        );
    }
}

fn ok(status: &str, schema: Value) -> Value {
    json!({status: {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "default": failure()})
}

fn failure() -> Value {
    json!({"description": "A failure, as a Status object",
        "content": {"application/json": {"schema": reference("Status")}}})
}

fn list(kind: &KindInfo, id: &str, mut params: Vec<Value>) -> Value {
    params.extend(
        [
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
            "resourceVersion",
            "watch",
            "allowWatchBookmarks",
            "timeoutSeconds",
        ]
        .map(parameter),
    );
    let mut responses = ok("200", reference(&format!("{}List", kind.kind)));
    responses["200"]["content"]["application/x-ndjson"] = json!({"schema": {
        "description": "With watch=true: one event a line",
        "type": "object",
        "required": ["type", "object"],
        "properties": {
            "type": {"enum": ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]},
            "object": {"oneOf": [reference(kind.kind), reference("Status")]},
        },
    }});
    json!({"operationId": id, "parameters": params, "responses": responses})
}

fn read(kind: &KindInfo, id: &str, params: Vec<Value>) -> Value {
    json!({"operationId": id, "parameters": params, "responses": ok("200", reference(kind.kind))})
}

fn write(kind: &KindInfo, id: &str, mut params: Vec<Value>, status: &str, media: &str) -> Value {
    params.push(parameter("dryRun"));
    let body = if media == "application/json" {
        json!({"application/json": {"schema": reference(kind.kind)},
            "application/yaml": {"schema": reference(kind.kind)}})
    } else {
        json!({media: {"schema": {"type": "object"}}})
    };
    json!({
        "operationId": id,
        "parameters": params,
        "requestBody": {"required": true, "content": body},
        "responses": ok(status, reference(kind.kind)),
    })
}

fn delete(kind: &KindInfo, id: &str, params: Vec<Value>) -> Value {
    json!({
        "operationId": id,
        "parameters": params,
        "requestBody": {"required": false,
            "content": {"application/json": {"schema": reference("DeleteOptions")}}},
        "responses": ok("200", reference(kind.kind)),
    })
}

fn list_schema(kind: &KindInfo) -> Value {
    json!({
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "items"],
        "properties": {
            "apiVersion": {"type": "string", "const": API_VERSION},
            "kind": {"type": "string", "const": format!("{}List", kind.kind)},
            "metadata": {"type": "object", "properties": {
                "resourceVersion": {"type": "string"},
                "continue": {"type": "string"},
            }},
            "items": {"type": "array", "items": reference(kind.kind)},
        },
    })
}

/// What [`super::status::Failure`] answers.
fn status_schema() -> Value {
    json!({
        "type": "object",
        "required": ["kind", "apiVersion", "status", "message", "reason", "code"],
        "properties": {
            "kind": {"const": "Status"},
            "apiVersion": {"const": "v1"},
            "metadata": {"type": "object"},
            "status": {"const": "Failure"},
            "message": {"type": "string"},
            "reason": {"type": "string"},
            "code": {"type": "integer"},
            "details": {"type": "object", "properties": {"causes": {"type": "array",
                "items": {"type": "object", "properties": {
                    "field": {"type": "string"}, "message": {"type": "string"}}}}}},
        },
    })
}

/// What [`super::objects::delete`] reads.
fn delete_options_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "kind": {"const": "DeleteOptions"},
            "apiVersion": {"type": "string"},
            "preconditions": {"type": "object", "additionalProperties": false, "properties": {
                "resourceVersion": {"type": "string",
                    "description": "Delete only while the object has this resourceVersion; \
                        409 Conflict otherwise"},
            }},
        },
    })
}

/// The query parameters, as [`super::query::Params`] reads them.
fn parameters() -> Value {
    let query = |name: &str, kind: &str, text: &str| {
        json!({"name": name, "in": "query", "required": false,
            "schema": {"type": kind}, "description": text})
    };
    let in_path = |name: &str| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}});
    json!({
        "name": in_path("name"),
        "namespace": in_path("namespace"),
        "labelSelector": query("labelSelector", "string", "Only objects with these labels"),
        "fieldSelector": query("fieldSelector", "string", "Only objects with these fields"),
        "limit": query("limit", "integer", "At most this many items; the rest by continue"),
        "continue": query("continue", "string", "The continue token of the previous page"),
        "resourceVersion": query("resourceVersion", "string",
            "List: at least this recent; watch: the events after it"),
        "watch": query("watch", "boolean", "Stream changes as newline-delimited JSON"),
        "allowWatchBookmarks": query("allowWatchBookmarks", "boolean",
            "Send BOOKMARK events with the latest resourceVersion"),
        "timeoutSeconds": query("timeoutSeconds", "integer", "End a watch after this long"),
        "dryRun": query("dryRun", "string", "All: admit and answer, store nothing"),
        "follow": query("follow", "boolean", "Keep streaming until the TaskRun ends"),
        "timestamps": query("timestamps", "boolean", "Prefix each line with its time"),
        "sinceSeconds": query("sinceSeconds", "integer", "Only lines newer than this"),
        "tailLines": query("tailLines", "integer", "Only the last lines of the output so far"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_schema_list_and_paths() {
        let doc: Value = serde_json::from_slice(document()).expect("json");
        assert_eq!(doc["openapi"], "3.1.0");
        for kind in KINDS {
            let schemas = &doc["components"]["schemas"];
            assert!(schemas[kind.kind].is_object(), "{}", kind.kind);
            assert!(schemas[format!("{}List", kind.kind)].is_object());
            let item = if kind.namespaced {
                format!("{PREFIX}/namespaces/{{namespace}}/{}/{{name}}", kind.plural)
            } else {
                format!("{PREFIX}/{}/{{name}}", kind.plural)
            };
            assert!(doc["paths"][&item]["delete"].is_object(), "{item}");
            assert!(doc["paths"][format!("{item}/status")]["put"].is_object());
        }
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"#/components/").skip(1) {
            let target = reference.split('"').next().expect("a reference");
            assert!(
                doc["components"].pointer(&format!("/{target}")).is_some(),
                "dangling reference {target}"
            );
        }
    }
}
