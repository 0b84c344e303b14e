//! The SDK's watcher and client failover against the real apiserver:
//! resume from the last resourceVersion after a restart, relist on Expired.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sloth_sdk::objects::{TaskRun, TaskRunSpec};
use sloth_sdk::watcher::{Event, ListSemantic, watch_objects, watcher_with};
use sloth_sdk::{Api, Client, Error, WatchParams};
use sloth_tests::{ApiServer, runtime};

const DEADLINE: Duration = Duration::from_secs(30);

fn taskrun(name: &str, labels: &[(&str, &str)]) -> TaskRun {
    let mut tr = TaskRun::new(name, TaskRunSpec::shell("true"));
    for (k, v) in labels {
        tr.metadata.labels.insert(k.to_string(), v.to_string());
    }
    tr
}

type Events = BoxStream<'static, Result<Event<TaskRun>, Error>>;

/// The next event that is not a (transient, retried) error.
async fn next_event(stream: &mut Events) -> Event<TaskRun> {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.next().await.expect("watcher stream ended") {
                Ok(event) => return event,
                Err(_) => continue,
            }
        }
    })
    .await
    .expect("no watcher event before the deadline")
}

fn names(items: &[TaskRun]) -> Vec<&str> {
    items.iter().map(|t| t.metadata.name.as_str()).collect()
}

/// Read-your-writes: `slothctl run`, `logs -f` and `wait` create an object
/// and follow it at once. A most-recent list must hold what was just
/// created, even while the watch cache (which serves "any recent" lists)
/// trails the store; the loop makes that lag likely to show.
#[test]
fn a_most_recent_list_sees_the_object_created_just_before() {
    const ROUNDS: usize = 100;
    let server = ApiServer::start();
    let rt = runtime();
    rt.block_on(async {
        let client = server.client();
        let api: Api<TaskRunSpec> = Api::namespaced(client.clone(), "default");
        // Start the kind's watch cache, so that lists could come from it.
        let mut warm = watch_objects(&api, "default", WatchParams::default());
        assert!(matches!(next_event(&mut warm).await, Event::Restarted(_)));
        // Other writers keep the cache's feed busy, so it trails the store.
        let busy: Vec<_> = (0..4)
            .map(|writer| {
                let api = api.clone();
                tokio::spawn(async move {
                    for i in 0..ROUNDS {
                        let name = format!("busy-{writer}-{i}");
                        api.create(&taskrun(&name, &[])).await.expect("create");
                    }
                })
            })
            .collect();
        for round in 0..ROUNDS {
            let name = format!("ryw-{round}");
            api.create(&taskrun(&name, &[])).await.expect("create");
            let params = WatchParams {
                field_selector: format!("metadata.name={name}"),
                ..WatchParams::default()
            };
            let mut events = watcher_with(
                client.clone(),
                "TaskRun",
                "default",
                params,
                ListSemantic::MostRecent,
            );
            let first = tokio::time::timeout(DEADLINE, events.next())
                .await
                .expect("no list before the deadline")
                .expect("watcher stream ended")
                .expect("list");
            match first {
                Event::Restarted(items) => assert!(
                    items.iter().any(|o| o.metadata.name == name),
                    "round {round}: the list misses {name}, created just before"
                ),
                other => panic!("expected the initial list, got {other:?}"),
            }
        }
        for writer in busy {
            writer.await.expect("writer");
        }
    });
}

#[test]
fn watcher_resumes_after_a_server_restart_without_relisting() {
    let mut server = ApiServer::start();
    let rt = runtime();
    let _enter = rt.enter();
    let api: Api<TaskRunSpec> = Api::namespaced(server.client(), "default");
    let mut events = rt.block_on(async {
        api.create(&taskrun("before", &[])).await.expect("create");
        let mut events = watch_objects(&api, "default", WatchParams::default());
        match next_event(&mut events).await {
            Event::Restarted(items) => assert_eq!(names(&items), ["before"]),
            other => panic!("expected the initial list, got {other:?}"),
        }
        events
    });
    server.restart_same_ports();
    rt.block_on(async {
        api.create(&taskrun("after", &[]))
            .await
            .expect("create after restart");
        match next_event(&mut events).await {
            Event::Applied(tr) => assert_eq!(tr.metadata.name, "after"),
            other => panic!("expected Applied(after) from a resumed watch, got {other:?}"),
        }
    });
}

#[test]
fn watcher_relists_when_its_revision_was_compacted() {
    let mut server = ApiServer::start_with(&["--history", "0s", "--compaction-interval", "100ms"]);
    let rt = runtime();
    let _enter = rt.enter();
    let api: Api<TaskRunSpec> = Api::namespaced(server.client(), "default");
    let mut events = rt.block_on(async {
        api.create(&taskrun("watched-1", &[("app", "w")]))
            .await
            .expect("create");
        let params = WatchParams {
            label_selector: "app=w".into(),
            ..WatchParams::default()
        };
        let mut events = watch_objects(&api, "default", params);
        let first = next_event(&mut events).await;
        let Event::Restarted(items) = first else {
            panic!("expected the initial list, got {first:?}")
        };
        assert_eq!(names(&items), ["watched-1"]);
        // Changes the watcher does not see move the store past its revision;
        // wait until compaction has passed it.
        let old = items[0].metadata.resource_version.clone();
        tokio::time::timeout(DEADLINE, async {
            for i in 0.. {
                api.create(&taskrun(&format!("other-{i}"), &[]))
                    .await
                    .expect("create");
                match api.watch(&WatchParams::default(), &old).await {
                    Err(Error::Expired(_)) => return,
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
        .await
        .expect("compaction never passed the watcher's revision");
        events
    });
    server.restart_same_ports();
    rt.block_on(async {
        match next_event(&mut events).await {
            Event::Restarted(items) => assert_eq!(names(&items), ["watched-1"]),
            other => panic!("expected a relist after Expired, got {other:?}"),
        }
        api.create(&taskrun("watched-2", &[("app", "w")]))
            .await
            .expect("create");
        match next_event(&mut events).await {
            Event::Applied(tr) => assert_eq!(tr.metadata.name, "watched-2"),
            other => panic!("expected Applied(watched-2), got {other:?}"),
        }
    });
}

#[test]
fn client_fails_over_to_the_next_server() {
    let server = ApiServer::start();
    // Nothing listens on the first address: a port the OS handed out and
    // took back.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let rt = runtime();
    let _enter = rt.enter();
    rt.block_on(async {
        let client = Client::new(&[dead.as_str(), server.grpc_url()]).expect("client");
        let api: Api<TaskRunSpec> = Api::namespaced(client, "default");
        let created = api
            .create(&taskrun("via-second", &[]))
            .await
            .expect("failover");
        assert_eq!(created.metadata.name, "via-second");

        let nowhere = Client::new(&[dead.as_str()]).expect("client");
        let e = Api::<TaskRunSpec>::namespaced(nowhere, "default")
            .get("x")
            .await
            .expect_err("no server");
        assert!(e.is_unavailable(), "{e}");
    });
}
