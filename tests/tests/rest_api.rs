//! The REST API end to end, with real processes: every verb and status
//! code, paging, a watch that resumes after a disconnect, a viewer's write
//! refused and audited, an oversized body, a followed log, the rules
//! review, CORS, and OpenAPI schemas that the served objects satisfy.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sloth_tests::json_schema::Schemas;
use sloth_tests::{Agent, ApiServer, runtime, wait_until};

/// Every network wait in these tests; generous for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);

const ADMIN: &str = "admin-token-0123456789abcdef";
const VIEWER: &str = "viewer-token-0123456789abcdef";

const PREFIX: &str = "/apis/sloth.dev/v1";

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A server with tokens (an admin and a viewer) and an audit log.
fn secured(dir: &Path, extra: &[&str]) -> (ApiServer, PathBuf) {
    let tokens = dir.join("tokens.csv");
    std::fs::write(
        &tokens,
        format!("{ADMIN},alice,admin\n{VIEWER},vera,viewer\n"),
    )
    .expect("tokens");
    let audit = dir.join("audit.log");
    let mut args = vec!["--token-file", path(&tokens), "--audit-log", path(&audit)];
    args.extend_from_slice(extra);
    (ApiServer::start_with(&args), audit)
}

/// A small REST client over reqwest. It keeps every object it was
/// answered (and every watch event's object) for [`Rest::check_seen`].
struct Rest {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
    seen: Seen,
}

/// Objects the server returned, by kind (`TaskRun`, `TaskRunList`, `Status`).
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Value>>>);

impl Seen {
    fn record(&self, value: &Value) {
        if value.get("kind").and_then(Value::as_str).is_some() {
            self.0.lock().expect("seen").push(value.clone());
        }
    }
}

/// Kinds the server answers that are not objects of the API.
const UNSCHEMED: [&str; 1] = ["SelfSubjectRulesReview"];

/// An answer: status, headers and body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts a Kubernetes `Status` with this code and reason.
    fn status_object(&self, code: u16, reason: &str) -> Value {
        let body = self.json();
        assert_eq!(self.status, code, "{body}");
        assert_eq!(body["kind"], "Status", "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["reason"], reason, "{body}");
        body
    }
}

impl Rest {
    fn new(server: &ApiServer, token: Option<&str>) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(DEADLINE)
                .build()
                .expect("client"),
            base: server.http_url().to_string(),
            token: token.map(str::to_string),
            seen: Seen::default(),
        }
    }

    /// The schemas of the server's `/openapi/v3`.
    async fn schemas(&self) -> Schemas {
        let answer = self.get("/openapi/v3").await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let document = answer.json();
        assert!(
            document["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3."))
        );
        Schemas::from_openapi(&document).expect("components.schemas")
    }

    /// Checks every object this client was answered against the schema of
    /// its kind; the kinds checked.
    fn check_seen(&self, schemas: &Schemas) -> BTreeSet<String> {
        let seen = self.seen.0.lock().expect("seen");
        let mut kinds = BTreeSet::new();
        for object in seen.iter() {
            let kind = object["kind"].as_str().expect("kind");
            if UNSCHEMED.contains(&kind) {
                continue;
            }
            assert!(
                schemas.has(kind),
                "/openapi/v3 has no schema for {kind}: {object}"
            );
            if let Err(e) = schemas.check(kind, object) {
                panic!("a {kind} the server returned does not match its schema: {e}\n{object}");
            }
            kinds.insert(kind.to_string());
        }
        kinds
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Answer {
        let response = builder.send().await.expect("send");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("body").to_vec();
        if let Ok(value) = serde_json::from_slice::<Value>(&body) {
            self.seen.record(&value);
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    async fn with_body(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let builder = self
            .request(method, path)
            .header("content-type", content_type)
            .body(body);
        self.send(builder).await
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.with_body(
            reqwest::Method::POST,
            path,
            "application/json",
            body.to_string(),
        )
        .await
    }

    async fn put(&self, path: &str, body: &Value) -> Answer {
        self.with_body(
            reqwest::Method::PUT,
            path,
            "application/json",
            body.to_string(),
        )
        .await
    }
}

fn taskrun(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "sloth.dev/v1",
        "kind": "TaskRun",
        "metadata": {"name": name, "labels": labels},
        "spec": {"run": {"shell": "true"}},
    })
}

fn rv(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no resourceVersion in {object}"))
        .to_string()
}

#[test]
fn every_verb_answers_with_the_kubernetes_status_codes() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (server, audit) = secured(temp.path(), &[]);
    let admin = Rest::new(&server, Some(ADMIN));
    let viewer = Rest::new(&server, Some(VIEWER));
    let anonymous = Rest::new(&server, None);
    let collection = format!("{PREFIX}/namespaces/default/taskruns");
    let one = format!("{collection}/t1");
    runtime().block_on(async {
        // Read first: the address is throttled at the end.
        let schemas = admin.schemas().await;
        anonymous
            .get("/openapi/v3")
            .await
            .status_object(401, "Unauthorized");
        // POST: 201 with the stored object.
        let created = admin
            .post(&collection, &taskrun("t1", json!({"app": "a"})))
            .await;
        assert_eq!(created.status, 201, "{}", created.json());
        let created = created.json();
        assert_eq!(created["metadata"]["namespace"], "default");
        let first_rv = rv(&created);

        // YAML bodies, and the path fills in what the body leaves out.
        let yaml = "metadata:\n  name: t2\nspec:\n  run:\n    shell: \"true\"\n";
        let answer = admin
            .with_body(reqwest::Method::POST, &collection, "application/yaml", yaml)
            .await;
        assert_eq!(answer.status, 201, "{}", answer.json());
        assert_eq!(answer.json()["kind"], "TaskRun");

        // 409 AlreadyExists.
        admin
            .post(&collection, &taskrun("t1", json!({})))
            .await
            .status_object(409, "AlreadyExists");

        // GET: the object as stored.
        let got = admin.get(&one).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.headers["content-type"], "application/json");
        assert_eq!(got.json(), created);

        // 404 NotFound.
        admin
            .get(&format!("{collection}/missing"))
            .await
            .status_object(404, "NotFound");
        admin
            .get(&format!("{PREFIX}/namespaces/default/ponies"))
            .await
            .status_object(404, "NotFound");

        // PUT: 200 with the current resourceVersion ...
        let mut changed = created.clone();
        changed["metadata"]["labels"]["app"] = json!("b");
        let updated = admin.put(&one, &changed).await;
        assert_eq!(updated.status, 200, "{}", updated.json());
        let updated = updated.json();
        assert_eq!(updated["metadata"]["labels"]["app"], "b");
        assert_ne!(rv(&updated), first_rv);
        // ... 409 Conflict with a stale one, and the stored object intact.
        changed["metadata"]["labels"]["app"] = json!("stale");
        admin
            .put(&one, &changed)
            .await
            .status_object(409, "Conflict");
        assert_eq!(
            admin.get(&one).await.json()["metadata"]["labels"]["app"],
            "b"
        );

        // PATCH: a JSON merge patch; another media type is 415.
        let patched = admin
            .with_body(
                reqwest::Method::PATCH,
                &one,
                "application/merge-patch+json",
                json!({"metadata": {"labels": {"app": null, "team": "ops"}}}).to_string(),
            )
            .await;
        assert_eq!(patched.status, 200, "{}", patched.json());
        assert_eq!(patched.json()["metadata"]["labels"], json!({"team": "ops"}));
        admin
            .with_body(reqwest::Method::PATCH, &one, "application/json", "{}")
            .await
            .status_object(415, "UnsupportedMediaType");

        // PUT .../status writes the status subresource.
        let mut with_status = admin.get(&one).await.json();
        with_status["status"] = json!({"phase": "Pending", "message": "from REST"});
        let answer = admin.put(&format!("{one}/status"), &with_status).await;
        assert_eq!(answer.status, 200, "{}", answer.json());
        assert_eq!(answer.json()["status"]["message"], "from REST");
        let status = admin.get(&format!("{one}/status")).await.json();
        assert_eq!(status["status"]["message"], "from REST");

        // 422 Invalid, with the field path in details.causes.
        let invalid = taskrun("bad", json!({"bad key!": "x"}));
        let body = admin
            .post(&collection, &invalid)
            .await
            .status_object(422, "Invalid");
        let causes = body["details"]["causes"]
            .as_array()
            .expect("causes")
            .clone();
        assert!(
            causes.iter().any(|c| c["field"]
                .as_str()
                .is_some_and(|f| f.starts_with("metadata.labels"))),
            "{body}"
        );
        assert_eq!(admin.get(&format!("{collection}/bad")).await.status, 404);

        // 400 for a body that is not JSON; 413 for one over 4 MiB.
        admin
            .with_body(
                reqwest::Method::POST,
                &collection,
                "application/json",
                "{not json",
            )
            .await
            .status_object(400, "BadRequest");
        let mut huge = taskrun("huge", json!({}));
        huge["metadata"]["annotations"] = json!({"blob": "x".repeat(4 * 1024 * 1024 + 1)});
        admin
            .post(&collection, &huge)
            .await
            .status_object(413, "RequestEntityTooLarge");
        assert_eq!(admin.get(&format!("{collection}/huge")).await.status, 404);

        // 401 without or with a wrong token.
        let answer = anonymous.get(&one).await;
        answer.status_object(401, "Unauthorized");
        assert_eq!(answer.headers["www-authenticate"], "Bearer");
        Rest::new(&server, Some("wrong-token"))
            .get(&one)
            .await
            .status_object(401, "Unauthorized");

        // A viewer reads, and its write is 403 and audited.
        assert_eq!(viewer.get(&one).await.status, 200);
        let refused = viewer
            .post(&collection, &taskrun("by-viewer", json!({})))
            .await
            .status_object(403, "Forbidden");
        assert!(
            refused["message"]
                .as_str()
                .is_some_and(|m| m.contains("vera")),
            "{refused}"
        );
        viewer
            .send(viewer.request(reqwest::Method::DELETE, &one))
            .await
            .status_object(403, "Forbidden");
        let audited = wait_until(DEADLINE, || {
            let log = std::fs::read_to_string(&audit).ok()?;
            log.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|r| {
                    r.to_string().contains("vera")
                        && r.to_string().contains("by-viewer")
                        && r.to_string().contains("forbidden")
                })
        });
        assert!(
            audited.is_some(),
            "no audit record of the viewer's create: {:?}",
            std::fs::read_to_string(&audit)
        );

        // DELETE with a stale resourceVersion precondition (Kubernetes'
        // DeleteOptions body): 409 Conflict, and the object is intact.
        let current = admin.get(&one).await.json();
        let precondition = |rv: &str| {
            json!({"kind": "DeleteOptions", "apiVersion": "v1",
                "preconditions": {"resourceVersion": rv}})
            .to_string()
        };
        let delete_if = |rv: String| {
            admin.with_body(
                reqwest::Method::DELETE,
                &one,
                "application/json",
                precondition(&rv),
            )
        };
        delete_if(first_rv.clone())
            .await
            .status_object(409, "Conflict");
        assert_eq!(admin.get(&one).await.json(), current);
        admin
            .with_body(
                reqwest::Method::DELETE,
                &one,
                "application/json",
                r#"{"preconditions": {"uid": "x"}}"#,
            )
            .await
            .status_object(400, "BadRequest");
        assert_eq!(admin.get(&one).await.status, 200);

        // DELETE with the current resourceVersion: 200 with the object,
        // then 404.
        let deleted = delete_if(rv(&current)).await;
        assert_eq!(deleted.status, 200, "{}", deleted.json());
        assert_eq!(deleted.json()["metadata"]["name"], "t1");
        admin.get(&one).await.status_object(404, "NotFound");
        admin
            .send(admin.request(reqwest::Method::DELETE, &one))
            .await
            .status_object(404, "NotFound");

        // 429 once an address failed to authenticate too often.
        let wrong = Rest::new(&server, Some("wrong-token"));
        let mut throttled = None;
        for _ in 0..200 {
            let answer = wrong.get(&one).await;
            if answer.status == 429 {
                throttled = Some(answer);
                break;
            }
            assert_eq!(answer.status, 401);
        }
        throttled
            .expect("never throttled")
            .status_object(429, "TooManyRequests");

        for client in [&admin, &viewer, &anonymous, &wrong] {
            client.check_seen(&schemas);
        }
        let kinds = admin.check_seen(&schemas);
        assert!(
            kinds.contains("TaskRun") && kinds.contains("Status"),
            "{kinds:?}"
        );
    });
}

#[test]
fn lists_page_with_limit_and_continue_and_filter_by_selectors() {
    let server = ApiServer::start();
    let rest = Rest::new(&server, None);
    runtime().block_on(async {
        for (namespace, name, app) in [
            ("default", "a", "web"),
            ("default", "b", "web"),
            ("default", "c", "db"),
            ("default", "d", "web"),
            ("ci", "e", "web"),
        ] {
            let answer = rest
                .post(
                    &format!("{PREFIX}/namespaces/{namespace}/taskruns"),
                    &taskrun(name, json!({"app": app})),
                )
                .await;
            assert_eq!(answer.status, 201, "{}", answer.json());
        }
        // Pages of two, across every namespace.
        let mut names = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages < 10, "paging does not end");
            let list = rest
                .get(&format!("{PREFIX}/taskruns?limit=2&continue={token}"))
                .await
                .json();
            assert_eq!(list["kind"], "TaskRunList");
            assert_eq!(list["apiVersion"], "sloth.dev/v1");
            assert!(list["metadata"]["resourceVersion"].is_string(), "{list}");
            let items = list["items"].as_array().expect("items");
            assert!(items.len() <= 2, "{list}");
            names.extend(
                items
                    .iter()
                    .map(|i| i["metadata"]["name"].as_str().expect("name").to_string()),
            );
            match list["metadata"]["continue"].as_str() {
                Some(next) if !next.is_empty() => token = next.to_string(),
                _ => break,
            }
        }
        names.sort();
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
        assert_eq!(pages, 3);

        let named = |list: Value| -> Vec<String> {
            list["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|i| i["metadata"]["name"].as_str().expect("name").to_string())
                .collect()
        };
        let web = rest
            .get(&format!(
                "{PREFIX}/namespaces/default/taskruns?labelSelector=app%3Dweb"
            ))
            .await
            .json();
        assert_eq!(named(web), ["a", "b", "d"]);
        let one = rest
            .get(&format!(
                "{PREFIX}/taskruns?fieldSelector=metadata.name%3De"
            ))
            .await
            .json();
        assert_eq!(named(one), ["e"]);
        rest.get(&format!("{PREFIX}/taskruns?labelSelector=%3D%3D%3D"))
            .await
            .status_object(400, "BadRequest");
        let kinds = rest.check_seen(&rest.schemas().await);
        assert!(kinds.contains("TaskRunList"), "{kinds:?}");
    });
}

/// Reads NDJSON lines from a streaming response.
struct Lines {
    response: reqwest::Response,
    buffer: Vec<u8>,
    seen: Seen,
}

impl Lines {
    async fn open(rest: &Rest, path: &str) -> Self {
        let response = rest
            .client
            .get(format!("{}{path}", rest.base))
            .send()
            .await
            .expect("watch");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["content-type"], "application/x-ndjson");
        Self {
            response,
            buffer: Vec::new(),
            seen: rest.seen.clone(),
        }
    }

    /// The next line as JSON, within the deadline; None at the end.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line).expect("a JSON line");
                if event["type"] != "BOOKMARK" {
                    self.seen.record(&event["object"]);
                }
                return Some(event);
            }
            let chunk = tokio::time::timeout(DEADLINE, self.response.chunk())
                .await
                .expect("an event within the deadline")
                .expect("read");
            self.buffer.extend_from_slice(&chunk?);
        }
    }

    /// The next event that is not a bookmark.
    async fn next_change(&mut self) -> Value {
        loop {
            let event = self.next().await.expect("the stream ended");
            if event["type"] != "BOOKMARK" {
                return event;
            }
        }
    }
}

#[test]
fn a_watch_streams_ndjson_and_resumes_after_a_disconnect_without_gap_or_duplicate() {
    let server = ApiServer::start_with(&["--bookmark-interval", "200ms"]);
    let rest = Rest::new(&server, None);
    let collection = format!("{PREFIX}/namespaces/default/taskruns");
    runtime().block_on(async {
        let list = rest.get(&collection).await.json();
        let start = rv(&list);
        let mut watch = Lines::open(
            &rest,
            &format!("{collection}?watch=true&resourceVersion={start}"),
        )
        .await;
        assert_eq!(
            rest.post(&collection, &taskrun("w1", json!({})))
                .await
                .status,
            201
        );
        let added = watch.next_change().await;
        assert_eq!(added["type"], "ADDED", "{added}");
        assert_eq!(added["object"]["metadata"]["name"], "w1");
        let last_seen = rv(&added["object"]);
        // Disconnect; two writes happen while no one watches.
        drop(watch);
        assert_eq!(
            rest.post(&collection, &taskrun("w2", json!({})))
                .await
                .status,
            201
        );
        let one = format!("{collection}/w1");
        let patched = rest
            .with_body(
                reqwest::Method::PATCH,
                &one,
                "application/merge-patch+json",
                json!({"metadata": {"labels": {"seen": "no"}}}).to_string(),
            )
            .await;
        assert_eq!(patched.status, 200);
        let deleted = rest.send(rest.request(reqwest::Method::DELETE, &one)).await;
        assert_eq!(deleted.status, 200);
        // Resuming from the last seen resourceVersion gives exactly what was
        // missed, in order, and nothing seen before.
        let mut resumed = Lines::open(
            &rest,
            &format!("{collection}?watch=1&resourceVersion={last_seen}&allowWatchBookmarks=true"),
        )
        .await;
        let mut missed = Vec::new();
        for _ in 0..3 {
            let event = resumed.next_change().await;
            missed.push(format!(
                "{} {}",
                event["type"].as_str().expect("type"),
                event["object"]["metadata"]["name"].as_str().expect("name")
            ));
        }
        assert_eq!(missed, ["ADDED w2", "MODIFIED w1", "DELETED w1"]);
        // Bookmarks carry a resourceVersion and nothing else happened.
        let bookmark = resumed.next().await.expect("open");
        assert_eq!(
            bookmark["type"], "BOOKMARK",
            "an event no write made: {bookmark}"
        );
        assert!(
            bookmark["object"]["metadata"]["resourceVersion"].is_string(),
            "{bookmark}"
        );
        drop(resumed);
        let kinds = rest.check_seen(&rest.schemas().await);
        assert!(kinds.contains("TaskRun"), "{kinds:?}");
    });
}

#[test]
fn a_watch_from_a_compacted_revision_is_410_gone() {
    let server = ApiServer::start_with(&["--history", "0s", "--compaction-interval", "100ms"]);
    let rest = Rest::new(&server, None);
    let collection = format!("{PREFIX}/namespaces/default/taskruns");
    runtime().block_on(async {
        let old = rest
            .post(&collection, &taskrun("old", json!({})))
            .await
            .json();
        assert_eq!(
            rest.post(&collection, &taskrun("new", json!({})))
                .await
                .status,
            201
        );
        let old_rv = rv(&old);
        // A watch that is not expired ends after timeoutSeconds.
        let watch = format!("{collection}?watch=true&resourceVersion={old_rv}&timeoutSeconds=1");
        // Once the compactor passed the old revision: 410 as the response,
        // or as the ERROR line of a started stream.
        let gone = tokio::time::timeout(DEADLINE, async {
            loop {
                let answer = rest.get(&watch).await;
                if answer.status == 410 {
                    return answer.status_object(410, "Expired");
                }
                assert_eq!(answer.status, 200);
                let text = String::from_utf8_lossy(&answer.body).to_string();
                if let Some(line) = text.lines().find(|l| l.contains("\"ERROR\"")) {
                    let line: Value = serde_json::from_str(line).expect("json");
                    assert_eq!(line["object"]["code"], 410, "{line}");
                    return line["object"].clone();
                }
            }
        })
        .await
        .expect("the watch never expired");
        assert_eq!(gone["reason"], "Expired", "{gone}");
        rest.check_seen(&rest.schemas().await);
        let schemas = rest.schemas().await;
        assert_eq!(schemas.check("Status", &gone), Ok(()));
    });
}

/// Reads a streamed text answer until it contains `want`; false when it
/// ended first.
async fn read_until(response: &mut reqwest::Response, want: &str, text: &mut String) -> bool {
    while !text.contains(want) {
        let chunk = tokio::time::timeout(DEADLINE, response.chunk())
            .await
            .expect("output within the deadline")
            .expect("read");
        match chunk {
            Some(chunk) => text.push_str(&String::from_utf8_lossy(&chunk)),
            None => return false,
        }
    }
    true
}

#[test]
fn a_taskruns_log_is_followed_while_it_runs() {
    let temp = tempfile::tempdir().expect("temp dir");
    let release = temp.path().join("release");
    let server = ApiServer::start();
    let agent = Agent::start(&server, "a1", &[]);
    let rest = Rest::new(&server, None);
    let collection = format!("{PREFIX}/namespaces/default/taskruns");
    let script = format!(
        "echo zero; echo first; while [ ! -e {} ]; do sleep 0.1; done; echo second",
        path(&release)
    );
    let mut run = taskrun("follow", json!({}));
    run["spec"] = json!({"run": {"shell": script}, "agentName": agent.name()});
    runtime().block_on(async {
        assert_eq!(rest.post(&collection, &run).await.status, 201);
        let one = format!("{collection}/follow");
        let running = tokio::time::timeout(DEADLINE, async {
            loop {
                let object = rest.get(&one).await.json();
                if object["status"]["phase"] == "Running" {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(running.is_ok(), "the TaskRun never ran");
        let mut response = rest
            .request(reqwest::Method::GET, &format!("{one}/log?follow=true"))
            .send()
            .await
            .expect("log");
        assert_eq!(response.status().as_u16(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .is_ok_and(|t| t.starts_with("text/plain")),
            "{:?}",
            response.headers()
        );
        let mut text = String::new();
        assert!(
            read_until(&mut response, "first", &mut text).await,
            "{text}"
        );
        // Still running: the follow waits for more.
        assert!(!text.contains("second"), "{text}");
        assert_eq!(rest.get(&one).await.json()["status"]["phase"], "Running");
        // tailLines (kubectl logs --tail) with follow: the last line so far,
        // then what comes after it, nothing twice.
        let mut tailed = rest
            .request(
                reqwest::Method::GET,
                &format!("{one}/log?follow=true&tailLines=1"),
            )
            .send()
            .await
            .expect("log");
        assert_eq!(tailed.status().as_u16(), 200);
        let mut tail_text = String::new();
        assert!(read_until(&mut tailed, "first", &mut tail_text).await);
        assert_eq!(tail_text, "first\n");
        std::fs::write(&release, "").expect("release the task");
        assert!(
            read_until(&mut response, "second", &mut text).await,
            "{text}"
        );
        // The TaskRun ends: so do the followed logs.
        assert!(
            !read_until(&mut response, "never printed", &mut text).await,
            "{text}"
        );
        assert!(!read_until(&mut tailed, "never printed", &mut tail_text).await);
        assert_eq!(tail_text, "first\nsecond\n");
        let last_two = rest.get(&format!("{one}/log?tailLines=2")).await;
        assert_eq!(String::from_utf8_lossy(&last_two.body), "first\nsecond\n");
        rest.get(&format!("{one}/log?tailLines=0"))
            .await
            .status_object(400, "BadRequest");
        let missing = rest.get(&format!("{collection}/nope/log")).await;
        missing.status_object(404, "NotFound");

        // The agent's own objects (its Agent and heartbeat Lock) match
        // their schemas too.
        let agents = rest.get(&format!("{PREFIX}/agents")).await.json();
        assert_eq!(
            agents["items"][0]["metadata"]["name"],
            agent.name(),
            "{agents}"
        );
        let locks = rest.get(&format!("{PREFIX}/locks")).await.json();
        assert!(
            !locks["items"].as_array().expect("items").is_empty(),
            "{locks}"
        );
        let kinds = rest.check_seen(&rest.schemas().await);
        for kind in ["TaskRun", "AgentList", "LockList", "Status"] {
            assert!(kinds.contains(kind), "{kind} not checked: {kinds:?}");
        }
    });
    drop(agent);
}

#[test]
fn the_rules_review_lists_what_the_role_may_do_and_cors_is_opt_in() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (server, _audit) = secured(
        temp.path(),
        &[
            "--cors-allowed-origins",
            "https://ui.example,https://other.example",
        ],
    );
    let closed = ApiServer::start();
    runtime().block_on(async {
        let review_path = format!("{PREFIX}/selfsubjectrulesreview?namespace=default");
        let verbs_of = |review: &Value, resource: &str| -> Vec<String> {
            review["status"]["resourceRules"]
                .as_array()
                .expect("rules")
                .iter()
                .filter(|r| {
                    r["resources"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == resource))
                })
                .flat_map(|r| r["verbs"].as_array().cloned().unwrap_or_default())
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        let viewer = Rest::new(&server, Some(VIEWER))
            .get(&review_path)
            .await
            .json();
        assert_eq!(viewer["kind"], "SelfSubjectRulesReview");
        assert_eq!(viewer["status"]["user"], "vera");
        assert_eq!(verbs_of(&viewer, "workflows"), ["get", "list", "watch"]);
        assert!(verbs_of(&viewer, "workflows/status").is_empty());
        let admin = Rest::new(&server, Some(ADMIN))
            .get(&review_path)
            .await
            .json();
        for verb in ["create", "update", "patch", "delete"] {
            assert!(
                verbs_of(&admin, "workflows").iter().any(|v| v == verb),
                "{admin}"
            );
        }
        Rest::new(&server, None)
            .get(&review_path)
            .await
            .status_object(401, "Unauthorized");

        // A preflight from an allowed origin is answered; another origin
        // and a server without the flag get no CORS headers.
        let preflight = |base: &str, origin: &str| {
            reqwest::Client::new()
                .request(reqwest::Method::OPTIONS, format!("{base}{PREFIX}/taskruns"))
                .header("origin", origin)
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "authorization")
                .send()
        };
        let allowed = preflight(server.http_url(), "https://ui.example")
            .await
            .expect("preflight");
        assert_eq!(
            allowed.headers()["access-control-allow-origin"],
            "https://ui.example"
        );
        let other = preflight(server.http_url(), "https://evil.example")
            .await
            .expect("preflight");
        assert!(other.headers().get("access-control-allow-origin").is_none());
        let off = preflight(closed.http_url(), "https://ui.example")
            .await
            .expect("preflight");
        assert!(off.headers().get("access-control-allow-origin").is_none());
    });
}

/// Creates `body` in `collection` (201), then writes `status` when given;
/// the object as the server last answered it.
async fn create_with_status(
    rest: &Rest,
    collection: &str,
    body: Value,
    status: Option<Value>,
) -> Value {
    let created = rest.post(collection, &body).await;
    assert_eq!(created.status, 201, "{}", created.json());
    let mut object = created.json();
    let Some(status) = status else {
        return object;
    };
    object["status"] = status;
    let name = object["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let written = rest
        .put(&format!("{collection}/{name}/status"), &object)
        .await;
    assert_eq!(written.status, 200, "{}", written.json());
    written.json()
}

#[test]
fn the_openapi_document_describes_every_kind_and_every_served_object_matches_it() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (server, _audit) = secured(temp.path(), &[]);
    let admin = Rest::new(&server, Some(ADMIN));
    let viewer = Rest::new(&server, Some(VIEWER));
    let ns = format!("{PREFIX}/namespaces/default");
    let at = "2026-12-07T07:00:00Z";
    runtime().block_on(async {
        let schemas = admin.schemas().await;
        // The group's own path serves the same document.
        let group = admin.get("/openapi/v3/apis/sloth.dev/v1").await;
        assert_eq!(group.json(), admin.get("/openapi/v3").await.json());

        let secret = json!({"metadata": {"name": "db"},
            "spec": {"type": "Opaque", "stringData": {"password": "hunter2"}}});
        create_with_status(&admin, &format!("{ns}/secrets"), secret, None).await;
        // A viewer sees the keys with the values emptied: still a Secret.
        let redacted = viewer.get(&format!("{ns}/secrets/db")).await.json();
        assert_eq!(redacted["spec"]["data"]["password"], "", "{redacted}");

        let task = json!({"name": "build", "run": {"shell": "make"}, "timeout": "5m",
            "retries": {"limit": 2, "backoff": {"duration": "10s", "factor": 2.0}},
            "env": [{"name": "A", "value": "1"},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
            "placement": {"policy": "Spread"},
            "agentSelector": {"matchLabels": {"gpu": "true"},
                "matchExpressions": [{"key": "zone", "operator": "In", "values": ["eu"]}]}});
        let workflow = json!({"metadata": {"name": "wf"}, "spec": {"params": {"env": "prod"},
            "tasks": [task, {"name": "test", "run": {"command": ["cargo", "test"]},
                "dependsOn": ["build"], "env": {"B": "2"}}], "timeout": "1h"}});
        let workflow = create_with_status(
            &admin,
            &format!("{ns}/workflows"),
            workflow,
            Some(json!({"phase": "Running", "startTime": at,
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": at}],
                "tasks": {"build": {"phase": "Running", "taskRun": "wf-build-1", "attempt": 1}}})),
        )
        .await;
        create_with_status(
            &admin,
            &format!("{ns}/taskruns"),
            json!({"metadata": {"name": "done"}, "spec": {"run": {"lua": {"script": "return {}"}},
                "timeout": "30s", "env": {"X": "1"}}}),
            Some(json!({"phase": "Succeeded", "exitCode": 0, "startTime": at,
                "completionTime": at, "results": {"v": "1"}, "metrics": {"s": 1.5}})),
        )
        .await;
        create_with_status(
            &admin,
            &format!("{ns}/locks"),
            json!({"metadata": {"name": "deploy"}, "spec": {"holderIdentity": "me",
                "leaseDurationSeconds": 30, "acquireTime": at, "renewTime": at}}),
            None,
        )
        .await;
        create_with_status(
            &admin,
            &format!("{ns}/events"),
            json!({"metadata": {"name": "wf.0123456789abcdef"}, "spec": {
                "involvedObject": {"kind": "Workflow", "name": "wf", "namespace": "default"},
                "reason": "Started", "message": "started", "type": "Normal",
                "firstTimestamp": at, "lastTimestamp": at, "source": "test"}}),
            None,
        )
        .await;
        let key = "deploy/version";
        create_with_status(
            &admin,
            &format!("{ns}/stateentries"),
            json!({"metadata": {"name": sloth_sdk::state::entry_name(key)},
                "spec": {"key": key, "value": {"v": [1, 2]}}}),
            None,
        )
        .await;
        create_with_status(
            &admin,
            &format!("{ns}/cronworkflows"),
            json!({"metadata": {"name": "nightly"}, "spec": {"schedule": "@hourly",
                "startingDeadline": "30s", "concurrencyPolicy": "Forbid",
                "workflowSpec": {"tasks": [{"name": "t", "run": {"shell": "true"}}]}}}),
            Some(json!({"lastScheduleTime": at, "active": ["nightly-1"]})),
        )
        .await;
        create_with_status(
            &admin,
            &format!("{ns}/stacks"),
            json!({"metadata": {"name": "prod"}, "spec": {"historyLimit": 5}}),
            Some(json!({"runs": 1, "outputs": {"url": "x"}, "history": [
                {"workflow": "wf", "phase": "Succeeded", "startTime": at}]})),
        )
        .await;
        create_with_status(
            &admin,
            &format!("{PREFIX}/agents"),
            json!({"metadata": {"name": "ag1", "labels": {"gpu": "true"}},
                "spec": {"address": "127.0.0.1:1", "capacity": 4}}),
            Some(json!({"phase": "Ready", "running": 1, "allocatable": 3,
                "resources": {"cpu": 8, "load1": 0.5, "memoryBytes": 1024},
                "lastHeartbeatTime": at, "version": "0.1.0"})),
        )
        .await;
        for kind in sloth_sdk::kinds::KINDS {
            let collection = if kind.namespaced {
                format!("{ns}/{}", kind.plural)
            } else {
                format!("{PREFIX}/{}", kind.plural)
            };
            assert_eq!(admin.get(&collection).await.status, 200);
        }

        let mut checked = admin.check_seen(&schemas);
        checked.extend(viewer.check_seen(&schemas));
        for kind in sloth_sdk::kinds::KINDS {
            assert!(
                checked.contains(kind.kind),
                "no {} was checked: {checked:?}",
                kind.kind
            );
            assert!(
                checked.contains(&format!("{}List", kind.kind)),
                "{checked:?}"
            );
        }

        // The check can fail: objects that serde would refuse do not match.
        assert_eq!(schemas.check("Workflow", &workflow), Ok(()));
        for (pointer, wrong) in [
            ("/spec/tasks/0/timeout", json!(30)),
            ("/spec/tasks/0/env", json!("A=1")),
            ("/status/phase", json!("Exploded")),
            ("/status/tasks/build/attempt", json!(-1)),
            ("/metadata/name", json!(1)),
            ("/kind", json!("TaskRun")),
        ] {
            let mut bad = workflow.clone();
            *bad.pointer_mut(pointer)
                .unwrap_or_else(|| panic!("{pointer}")) = wrong;
            assert!(
                schemas.check("Workflow", &bad).is_err(),
                "{pointer} accepted"
            );
        }
        let mut extra = workflow.clone();
        extra["spec"]["bogus"] = json!(true);
        let e = schemas
            .check("Workflow", &extra)
            .expect_err("an unknown field");
        assert_eq!(e.path, "$.spec.bogus", "{e}");
        let mut missing = workflow.clone();
        missing["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("tasks");
        assert!(schemas.check("Workflow", &missing).is_err());
    });
}
