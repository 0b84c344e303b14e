//! The apiserver's watch cache on a real etcd: a thousand agents each
//! watching their own TaskRuns (`spec.agentName=agent-N`) cost one etcd
//! watch, and each sees exactly its own TaskRuns.
//!
//! `cargo test -p sloth-tests --test watch_cache -- --nocapture` prints the
//! figures; the ignored test runs the same load with the cache off, for
//! comparison.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sloth_sdk::objects::{TaskRun, TaskRunSpec};
use sloth_sdk::{Api, Client, WatchEvent, WatchParams};
use sloth_tests::{ApiServer, Etcd, http_get, wait_until};

const WATCHERS: usize = 1_000;
/// Every `SAMPLE_EVERY`-th agent gets one TaskRun.
const SAMPLE_EVERY: usize = 20;
/// Watches per client connection (HTTP/2 servers cap concurrent streams).
const WATCHES_PER_CHANNEL: usize = 100;
const DEADLINE: Duration = Duration::from_secs(20);
/// Watches being opened at once. Without the cache each open is two etcd
/// calls (the compaction check and the watch itself); 1,000 at the same
/// instant can outlast the etcd client's request timeout on a loaded
/// two-core machine, which is not what these tests are about. All of them
/// are still open together once opened.
const OPENING_AT_ONCE: usize = 100;

/// What one watcher has seen.
#[derive(Debug, Default)]
struct Seen {
    /// (event type, TaskRun name, when it arrived).
    events: Vec<(&'static str, String, Instant)>,
    /// The newest BOOKMARK: every change up to it has been considered.
    bookmark: i64,
    error: Option<String>,
}

fn taskrun(name: &str, agent: &str) -> TaskRun {
    TaskRun::new(
        name,
        TaskRunSpec {
            agent_name: Some(agent.to_string()),
            ..TaskRunSpec::shell("true")
        },
    )
}

/// A gauge's value in Prometheus text.
fn gauge(text: &str, name: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix("VmRSS:")?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

struct Figures {
    store_watches: i64,
    etcd_watchers: Option<i64>,
    rss_before_kib: Option<u64>,
    rss_after_kib: Option<u64>,
    /// From the start of a create to its event at the watcher.
    latencies: Vec<Duration>,
    /// How long the create call itself took.
    creates: Vec<Duration>,
    open_watches: Duration,
}

/// Runs the load against an apiserver on etcd with `extra` flags and checks
/// that each watcher saw exactly its own TaskRun.
fn thousand_agents(extra: &[&str]) -> Figures {
    let etcd = Etcd::start();
    let endpoints = etcd.endpoints();
    let mut args = vec![
        "--store",
        "etcd",
        "--etcd-endpoints",
        endpoints.as_str(),
        "--bookmark-interval",
        "200ms",
    ];
    args.extend_from_slice(extra);
    let server = ApiServer::start_with(&args);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let rss_before_kib = rss_kib(server.pid());
    let seen: Vec<Arc<Mutex<Seen>>> = (0..WATCHERS).map(|_| Arc::default()).collect();

    // Open every watch; each returns once the server has registered it.
    let started = Instant::now();
    rt.block_on(async {
        let clients: Vec<Client> = (0..WATCHERS.div_ceil(WATCHES_PER_CHANNEL))
            .map(|_| Client::new(&[server.grpc_url()]).expect("client"))
            .collect();
        let mut opening = Vec::new();
        let open_slots = Arc::new(tokio::sync::Semaphore::new(OPENING_AT_ONCE));
        for (i, seen) in seen.iter().enumerate() {
            let api: Api<TaskRunSpec> = Api::all(clients[i / WATCHES_PER_CHANNEL].clone());
            let seen = seen.clone();
            let open_slots = open_slots.clone();
            opening.push(tokio::spawn(async move {
                let params = WatchParams {
                    field_selector: format!("spec.agentName=agent-{i}"),
                    allow_bookmarks: true,
                    ..WatchParams::default()
                };
                let slot = open_slots.acquire_owned().await.expect("open slots");
                let mut stream = api.watch(&params, "").await.expect("watch");
                drop(slot);
                tokio::spawn(async move {
                    while let Some(item) = stream.next().await {
                        let mut seen = seen.lock().expect("lock");
                        match item {
                            Ok(WatchEvent::Bookmark(rv)) => {
                                seen.bookmark = rv.parse().expect("numeric resourceVersion");
                            }
                            Ok(event) => {
                                let (kind, name) = match &event {
                                    WatchEvent::Added(o) => ("ADDED", o.name().to_string()),
                                    WatchEvent::Modified(o) => ("MODIFIED", o.name().to_string()),
                                    WatchEvent::Deleted(o) => ("DELETED", o.name().to_string()),
                                    WatchEvent::Bookmark(_) => unreachable!("handled above"),
                                };
                                seen.events.push((kind, name, Instant::now()));
                            }
                            Err(e) => {
                                seen.error = Some(e.to_string());
                                return;
                            }
                        }
                    }
                });
            }));
        }
        for task in opening {
            tokio::time::timeout(DEADLINE, task)
                .await
                .expect("watches open in time")
                .expect("watch task");
        }
    });
    let open_watches = started.elapsed();

    // (a) Every watch is open, and they cost one store (etcd) watch: the
    // TaskRun kind's. This apiserver runs no controllers, so it watches
    // nothing else.
    let metrics = wait_until(DEADLINE, || {
        let (status, text) = http_get(server.http_url(), "/metrics");
        (status == 200 && gauge(&text, "sloth_apiserver_watches") == Some(WATCHERS as i64))
            .then_some(text)
    })
    .unwrap_or_else(|| panic!("the watches never all opened\n{}", server.log()));
    let store_watches = gauge(&metrics, "sloth_store_watches").expect("sloth_store_watches");
    // etcd's own count of watchers, when this etcd exposes it.
    let etcd_watchers = gauge(
        &http_get(&endpoints, "/metrics").1,
        "etcd_debugging_mvcc_watcher_total",
    );

    // Create one TaskRun for every SAMPLE_EVERY-th agent.
    let sampled: Vec<usize> = (0..WATCHERS).step_by(SAMPLE_EVERY).collect();
    let (created_at, last_revision) = rt.block_on(async {
        let api: Api<TaskRunSpec> = Api::namespaced(
            Client::new(&[server.grpc_url()]).expect("client"),
            "default",
        );
        let mut created_at = Vec::new();
        let mut last = 0i64;
        for &i in &sampled {
            let at = Instant::now();
            let created = api
                .create(&taskrun(&format!("tr-{i}"), &format!("agent-{i}")))
                .await
                .expect("create TaskRun");
            last = last.max(
                created
                    .metadata
                    .resource_version
                    .parse()
                    .expect("numeric resourceVersion"),
            );
            created_at.push((at, at.elapsed()));
        }
        (created_at, last)
    });

    // (b) Once every watcher has a BOOKMARK at or past the last create, it
    // has been shown everything it will ever be shown of those creates.
    let settled = wait_until(DEADLINE, || {
        seen.iter()
            .all(|s| {
                let s = s.lock().expect("lock");
                s.error.is_some() || s.bookmark >= last_revision
            })
            .then_some(())
    });
    assert!(
        settled.is_some(),
        "not every watcher reached revision {last_revision}\n{}",
        server.log()
    );
    let mut latencies = Vec::new();
    let mut creates = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        let s = s.lock().expect("lock");
        assert_eq!(s.error, None, "watcher {i} failed");
        let names: Vec<(&str, &str)> = s.events.iter().map(|(t, n, _)| (*t, n.as_str())).collect();
        if i % SAMPLE_EVERY == 0 {
            let own = format!("tr-{i}");
            assert_eq!(names, [("ADDED", own.as_str())], "watcher {i}");
            let (at, took) = created_at[i / SAMPLE_EVERY];
            latencies.push(s.events[0].2.saturating_duration_since(at));
            creates.push(took);
        } else {
            assert!(names.is_empty(), "watcher {i} saw {names:?}");
        }
    }
    let rss_after_kib = rss_kib(server.pid());
    rt.shutdown_timeout(Duration::from_secs(1));
    Figures {
        store_watches,
        etcd_watchers,
        rss_before_kib,
        rss_after_kib,
        latencies,
        creates,
        open_watches,
    }
}

fn report(label: &str, mut figures: Figures) -> Figures {
    figures.latencies.sort();
    figures.creates.sort();
    let n = figures.latencies.len();
    println!(
        "{label}: {WATCHERS} watches opened in {:?}; sloth_store_watches={} \
         etcd_debugging_mvcc_watcher_total={:?}; apiserver RSS {:?} KiB before, {:?} KiB with the watches; \
         create->event latency over {n} creates: p50 {:?}, p90 {:?}, max {:?} \
         (the create call alone: p50 {:?})",
        figures.open_watches,
        figures.store_watches,
        figures.etcd_watchers,
        figures.rss_before_kib,
        figures.rss_after_kib,
        figures.latencies[n / 2],
        figures.latencies[n * 9 / 10],
        figures.latencies[n - 1],
        figures.creates[n / 2],
    );
    figures
}

#[test]
fn a_thousand_agent_watches_cost_one_etcd_watch() {
    let figures = report("watch cache", thousand_agents(&[]));
    // One store watch: the TaskRun kind's (the apiserver runs no
    // controllers here, so nothing else is watched).
    assert_eq!(figures.store_watches, 1);
    if let Some(etcd) = figures.etcd_watchers {
        assert_eq!(etcd, 1, "etcd counts {etcd} watchers");
    }
}

#[test]
fn without_the_cache_every_watch_is_an_etcd_watch() {
    let figures = report(
        "no watch cache",
        thousand_agents(&["--watch-cache-events", "0"]),
    );
    assert_eq!(figures.store_watches, WATCHERS as i64);
}
