//! The real `sloth-apiserver` driven through the SDK client: API semantics,
//! durability across crashes and restarts, and the HTTP endpoints.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use sloth_sdk::objects::{TaskRun, TaskRunPhase, TaskRunSpec, TaskRunStatus};
use sloth_sdk::{Api, Error, ListParams, WatchEvent, WatchParams};
use sloth_tests::{ApiServer, http_get, runtime, wait_until};

const DEADLINE: Duration = Duration::from_secs(20);

fn taskrun(name: &str, script: &str) -> TaskRun {
    TaskRun::new(name, TaskRunSpec::shell(script))
}

/// Awaits a future with the test deadline.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .expect("deadline passed")
}

#[test]
fn acknowledged_writes_survive_kill_9_during_a_burst() {
    let mut server = ApiServer::start();
    let rt = runtime();
    let _enter = rt.enter();
    let client = server.client();
    // 8 writers create objects as fast as they can; the server is killed
    // while they run. Every create that was acknowledged must be there after
    // restart.
    let acked = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let mut writers = Vec::new();
        for w in 0..8 {
            let api: Api<TaskRunSpec> = Api::namespaced(client.clone(), "burst");
            let tx = tx.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..100_000 {
                    let name = format!("w{w}-{i}");
                    match api.create(&taskrun(&name, "true")).await {
                        Ok(created) => {
                            let _ = tx.send(created.metadata.uid);
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        drop(tx);
        // Kill once a good number of writes are acknowledged.
        let mut acked = Vec::new();
        while acked.len() < 300 {
            match within(rx.recv()).await {
                Some(uid) => acked.push(uid),
                None => panic!("writers stopped early"),
            }
        }
        server.kill9();
        for w in writers {
            let _ = within(w).await;
        }
        while let Ok(uid) = rx.try_recv() {
            acked.push(uid);
        }
        acked
    });
    server.start_again();
    let stored = rt.block_on(async {
        let api: Api<TaskRunSpec> = Api::namespaced(server.client(), "burst");
        within(api.list(&ListParams::default()))
            .await
            .expect("list after restart")
    });
    let uids: std::collections::HashSet<String> =
        stored.items.into_iter().map(|t| t.metadata.uid).collect();
    let missing: Vec<&String> = acked.iter().filter(|uid| !uids.contains(*uid)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost",
        missing.len(),
        acked.len()
    );
    assert!(server.log().contains("store open"), "{}", server.log());
}

#[test]
fn restart_keeps_objects_uids_and_revisions_move_forward() {
    let mut server = ApiServer::start();
    let rt = runtime();
    let _enter = rt.enter();
    let before = rt.block_on(async {
        let api: Api<TaskRunSpec> = Api::namespaced(server.client(), "default");
        within(api.create(&taskrun("keep-me", "echo hi")))
            .await
            .expect("create")
    });
    server.restart();
    rt.block_on(async {
        let api: Api<TaskRunSpec> = Api::namespaced(server.client(), "default");
        let after = within(api.get("keep-me")).await.expect("get after restart");
        assert_eq!(after.metadata.uid, before.metadata.uid);
        assert_eq!(
            after.metadata.resource_version,
            before.metadata.resource_version
        );
        let next = within(api.create(&taskrun("second", "true")))
            .await
            .expect("create");
        let (a, b): (i64, i64) = (
            before.metadata.resource_version.parse().expect("rv"),
            next.metadata.resource_version.parse().expect("rv"),
        );
        assert!(b > a, "revision went backwards after restart: {a} -> {b}");
    });
}

#[test]
fn status_subresource_generation_conflict_and_terminal_phase() {
    let server = ApiServer::start();
    let rt = runtime();
    let _enter = rt.enter();
    rt.block_on(async {
        let api: Api<TaskRunSpec> = Api::namespaced(server.client(), "default");
        let mut tr = taskrun("semantics", "true");
        tr.status = Some(TaskRunStatus {
            phase: TaskRunPhase::Succeeded,
            ..TaskRunStatus::default()
        });
        let created = within(api.create(&tr)).await.expect("create");
        assert_eq!(created.metadata.generation, 1);
        assert_eq!(created.status, None, "create ignores status");

        // The main endpoint ignores status; a spec change bumps generation.
        let mut changed = created.clone();
        changed.spec.run.shell = Some("false".into());
        changed.status = Some(TaskRunStatus {
            phase: TaskRunPhase::Failed,
            ..TaskRunStatus::default()
        });
        let updated = within(api.replace(&changed)).await.expect("replace");
        assert_eq!(updated.metadata.generation, 2);
        assert_eq!(updated.status, None);

        // A label-only change keeps the generation.
        let mut labelled = updated.clone();
        labelled
            .metadata
            .labels
            .insert("team".into(), "infra".into());
        let labelled = within(api.replace(&labelled)).await.expect("label");
        assert_eq!(labelled.metadata.generation, 2);

        // Stale resourceVersion: Conflict, nothing changed.
        let stale = within(api.replace(&changed))
            .await
            .expect_err("stale update");
        assert!(matches!(stale, Error::Conflict(_)), "{stale}");

        // UpdateStatus ignores spec.
        let mut status = labelled.clone();
        status.spec.run.shell = Some("rm -rf /".into());
        status.status = Some(TaskRunStatus {
            phase: TaskRunPhase::Running,
            ..TaskRunStatus::default()
        });
        let running = within(api.update_status(&status)).await.expect("status");
        assert_eq!(running.spec.run.shell.as_deref(), Some("false"));
        assert_eq!(running.status_or_default().phase, TaskRunPhase::Running);
        assert_eq!(running.metadata.generation, 2);

        let mut done = running.clone();
        done.status = Some(TaskRunStatus {
            phase: TaskRunPhase::Succeeded,
            exit_code: Some(0),
            ..TaskRunStatus::default()
        });
        let done = within(api.update_status(&done)).await.expect("succeed");

        // Terminal: no way back.
        let mut back = done.clone();
        back.status = Some(TaskRunStatus {
            phase: TaskRunPhase::Running,
            ..TaskRunStatus::default()
        });
        let refused = within(api.update_status(&back))
            .await
            .expect_err("leave terminal");
        assert!(
            matches!(&refused, Error::Invalid(m) if m.contains("status.phase")),
            "{refused}"
        );
        let stored = within(api.get("semantics")).await.expect("get");
        assert_eq!(stored, done, "refused update changed the object");
    });
}

#[test]
fn invalid_and_oversized_objects_are_refused_and_nothing_is_stored() {
    let server = ApiServer::start();
    let rt = runtime();
    let _enter = rt.enter();
    rt.block_on(async {
        let client = server.client();
        // Fields without a cap of their own, so only the object limit applies.
        let env: serde_json::Map<String, serde_json::Value> = (0..20)
            .map(|i| (format!("V{i}"), json!("x".repeat(64 * 1024))))
            .collect();
        let oversized = json!({"apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "big"}, "spec": {"run": {"shell": "true"}, "env": env}});
        let e = within(client.create(&oversized))
            .await
            .expect_err("oversized");
        assert!(e.to_string().contains("the limit is 1048576 bytes"), "{e}");

        let unknown_kind = json!({"apiVersion": "sloth.dev/v1", "kind": "Pod",
            "metadata": {"name": "p"}, "spec": {}});
        let e = within(client.create(&unknown_kind))
            .await
            .expect_err("unknown kind");
        assert!(e.to_string().contains("unknown kind \"Pod\""), "{e}");

        let typo = json!({"apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "typo"}, "spec": {"run": {"shell": "true"}, "agentNmae": "a1"}});
        let e = within(client.create(&typo))
            .await
            .expect_err("unknown field");
        assert!(
            matches!(&e, Error::Invalid(m) if m.contains("agentNmae")),
            "{e}"
        );

        let bad_name = json!({"apiVersion": "sloth.dev/v1", "kind": "TaskRun",
            "metadata": {"name": "Bad_Name"}, "spec": {"run": {"shell": "true"}}});
        let e = within(client.create(&bad_name))
            .await
            .expect_err("bad name");
        assert!(
            matches!(&e, Error::Invalid(m) if m.contains("metadata.name")),
            "{e}"
        );

        let listed = within(client.list("TaskRun", "", &ListParams::default()))
            .await
            .expect("list");
        assert!(
            listed.items.is_empty(),
            "something was stored: {:?}",
            listed.items
        );
    });
}

#[test]
fn list_pages_are_one_consistent_snapshot() {
    let server = ApiServer::start();
    let rt = runtime();
    let _enter = rt.enter();
    rt.block_on(async {
        let client = server.client();
        let api: Api<TaskRunSpec> = Api::namespaced(client.clone(), "paging");
        for i in 0..10 {
            within(api.create(&taskrun(&format!("t{i:02}"), "true")))
                .await
                .expect("create");
        }
        let params = ListParams {
            limit: 4,
            ..ListParams::default()
        };
        let first = within(client.list("TaskRun", "paging", &params))
            .await
            .expect("page 1");
        assert_eq!(first.items.len(), 4);
        assert!(!first.continue_token.is_empty());
        // A write between pages must not show up in later pages.
        within(api.create(&taskrun("t99", "true")))
            .await
            .expect("create");
        let mut names: Vec<String> = first
            .items
            .iter()
            .map(|o| o.metadata.name.clone())
            .collect();
        let mut token = first.continue_token;
        while !token.is_empty() {
            let page = within(client.list(
                "TaskRun",
                "paging",
                &ListParams {
                    limit: 4,
                    continue_token: token.clone(),
                    ..ListParams::default()
                },
            ))
            .await
            .expect("next page");
            assert_eq!(page.resource_version, first.resource_version);
            names.extend(page.items.iter().map(|o| o.metadata.name.clone()));
            token = page.continue_token;
        }
        let want: Vec<String> = (0..10).map(|i| format!("t{i:02}")).collect();
        assert_eq!(names, want);
    });
}

#[test]
fn watch_filters_by_agent_name_and_sends_bookmarks() {
    let server = ApiServer::start_with(&["--bookmark-interval", "200ms"]);
    let rt = runtime();
    let _enter = rt.enter();
    rt.block_on(async {
        let client = server.client();
        let api: Api<TaskRunSpec> = Api::namespaced(client.clone(), "default");
        let start = within(api.list(&ListParams::default()))
            .await
            .expect("list");
        let params = WatchParams {
            field_selector: "spec.agentName=a1".into(),
            allow_bookmarks: true,
            ..WatchParams::default()
        };
        let mut stream = within(api.watch(&params, &start.resource_version))
            .await
            .expect("watch");
        let mut other = taskrun("for-a2", "true");
        other.spec.agent_name = Some("a2".into());
        within(api.create(&other)).await.expect("create a2");
        let mut mine = taskrun("for-a1", "true");
        mine.spec.agent_name = Some("a1".into());
        within(api.create(&mine)).await.expect("create a1");

        let first = within(async {
            loop {
                match stream.next().await.expect("stream open").expect("event") {
                    WatchEvent::Bookmark(_) => continue,
                    event => return event,
                }
            }
        })
        .await;
        match first {
            WatchEvent::Added(tr) => assert_eq!(tr.metadata.name, "for-a1"),
            other => panic!("expected Added(for-a1), got {other:?}"),
        }
        // An idle watch gets bookmarks carrying the store's revision.
        let bookmark = within(async {
            loop {
                if let WatchEvent::Bookmark(rv) = stream.next().await.expect("open").expect("ok") {
                    return rv;
                }
            }
        })
        .await;
        assert!(bookmark.parse::<i64>().expect("numeric rv") >= 2);
    });
}

#[test]
fn watch_from_a_compacted_revision_is_expired() {
    let server = ApiServer::start_with(&["--history", "0s", "--compaction-interval", "100ms"]);
    let rt = runtime();
    let _enter = rt.enter();
    rt.block_on(async {
        let client = server.client();
        let api: Api<TaskRunSpec> = Api::namespaced(client.clone(), "default");
        let first = within(api.create(&taskrun("old", "true")))
            .await
            .expect("create");
        within(api.create(&taskrun("newer", "true")))
            .await
            .expect("create");
        let old_rv = first.metadata.resource_version.clone();
        // Once the compactor has passed the old revision, watching from it
        // must fail with Expired (HTTP 410 / OUT_OF_RANGE).
        let expired = within(async {
            loop {
                match api.watch(&WatchParams::default(), &old_rv).await {
                    Err(Error::Expired(message)) => return message,
                    Err(e) => panic!("unexpected error {e}"),
                    Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
        .await;
        assert!(expired.contains("compacted"), "{expired}");
        // Objects themselves are intact.
        assert_eq!(
            within(api.get("old")).await.expect("get").metadata.uid,
            first.metadata.uid
        );
    });
}

#[test]
fn http_health_readiness_and_metrics() {
    let mut server = ApiServer::start();
    let rt = runtime();
    let _enter = rt.enter();
    rt.block_on(async {
        let api: Api<TaskRunSpec> = Api::namespaced(server.client(), "default");
        within(api.create(&taskrun("counted", "true")))
            .await
            .expect("create");
        let _ = within(api.get("missing")).await.expect_err("not found");
    });
    assert_eq!(
        http_get(server.http_url(), "/healthz"),
        (200, "ok".to_string())
    );
    assert_eq!(http_get(server.http_url(), "/readyz").0, 200);
    let (status, metrics) = http_get(server.http_url(), "/metrics");
    assert_eq!(status, 200);
    for needle in [
        "sloth_apiserver_requests_total{verb=\"create\",kind=\"TaskRun\",code=\"Ok\"} 1",
        "sloth_apiserver_requests_total{verb=\"get\",kind=\"TaskRun\",code=\"NotFound\"} 1",
        "sloth_apiserver_request_duration_seconds_count{verb=\"create\",kind=\"TaskRun\"} 1",
        "sloth_apiserver_store_revision 1",
        "sloth_apiserver_watches 0",
    ] {
        assert!(
            metrics.contains(needle),
            "missing {needle:?} in:\n{metrics}"
        );
    }
    assert!(server.stop(), "graceful stop failed:\n{}", server.log());
}

#[test]
fn sigterm_ends_open_watches_and_exits_cleanly() {
    let mut server = ApiServer::start();
    let rt = runtime();
    let _enter = rt.enter();
    let mut stream = rt.block_on(async {
        let api: Api<TaskRunSpec> = Api::namespaced(server.client(), "default");
        within(api.watch(&WatchParams::default(), ""))
            .await
            .expect("watch")
    });
    let watching = wait_until(DEADLINE, || {
        let (_, m) = http_get(server.http_url(), "/metrics");
        m.contains("sloth_apiserver_watches 1").then_some(())
    });
    assert!(watching.is_some(), "watch not counted");
    assert!(
        server.stop(),
        "apiserver did not exit 0 on SIGTERM:\n{}",
        server.log()
    );
    rt.block_on(async {
        // The stream ends (or errors) instead of hanging.
        let _ = within(async { while let Some(Ok(_)) = stream.next().await {} }).await;
    });
}

#[test]
fn a_status_update_cannot_move_a_taskrun_onto_another_agent() {
    let server = ApiServer::start();
    let rt = runtime();
    let _enter = rt.enter();
    rt.block_on(async {
        let api: Api<TaskRunSpec> = Api::namespaced(server.client(), "default");
        let mut tr = taskrun("bound", "true");
        tr.spec.agent_name = Some("a1".into());
        let created = within(api.create(&tr)).await.expect("create");

        let mut stolen = created.clone();
        stolen.status = Some(TaskRunStatus {
            phase: TaskRunPhase::Running,
            agent: Some("a2".into()),
            ..TaskRunStatus::default()
        });
        let e = within(api.update_status(&stolen))
            .await
            .expect_err("another agent");
        assert!(
            matches!(&e, Error::Invalid(m) if m.contains("status.agent")),
            "{e}"
        );

        let mut rebound = created.clone();
        rebound.spec.agent_name = Some("a2".into());
        let e = within(api.replace(&rebound)).await.expect_err("rebind");
        assert!(
            matches!(&e, Error::Invalid(m) if m.contains("spec.agentName")),
            "{e}"
        );
        assert_eq!(within(api.get("bound")).await.expect("get"), created);
    });
}
