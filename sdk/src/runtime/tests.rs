//! Controller tests on paused time, fed through channels instead of a server.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};
use tokio_stream::wrappers::{UnboundedReceiverStream, WatchStream};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::resource::{Object, Spec};
use crate::watcher::Event;

const SEC: Duration = Duration::from_secs(1);
/// Paused time still rounds timers to whole milliseconds.
const SLACK: Duration = Duration::from_millis(2);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Widget {
    version: u32,
}

impl Spec for Widget {
    type Status = ();
    const KIND: &'static str = "Widget";
}

/// A secondary kind pointing at a widget by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Gadget {
    widget: String,
}

impl Spec for Gadget {
    type Status = ();
    const KIND: &'static str = "Gadget";
}

fn widget(name: &str, version: u32) -> Object<Widget> {
    let mut o = Object::new(name, Widget { version });
    o.metadata.namespace = "ns".into();
    o
}

fn gadget(name: &str, widget: &str) -> Object<Gadget> {
    let mut o = Object::new(
        name,
        Gadget {
            widget: widget.into(),
        },
    );
    o.metadata.namespace = "ns".into();
    o
}

type Item<S> = Result<Event<Object<S>>, String>;
type Events<S> = mpsc::UnboundedSender<Item<S>>;

fn channel<S: Spec>() -> (Events<S>, UnboundedReceiverStream<Item<S>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, UnboundedReceiverStream::new(rx))
}

fn send<S: Spec>(tx: &Events<S>, event: Event<Object<S>>) {
    tx.send(Ok(event)).expect("controller gone");
}

#[derive(Clone, Debug)]
struct Run {
    name: String,
    version: u32,
    at: Duration,
}

/// What the reconcilers did, shared through the context.
struct Recorder {
    start: Instant,
    runs: Mutex<Vec<Run>>,
    per_object: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    max_per_object: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    finished: AtomicUsize,
    policy_calls: AtomicUsize,
}

impl Recorder {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            runs: Mutex::default(),
            per_object: Mutex::default(),
            max_per_object: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            policy_calls: AtomicUsize::new(0),
        })
    }

    /// Runs `work` as the reconcile of `object`, counting overlaps.
    async fn track<T>(&self, object: &Object<Widget>, work: impl Future<Output = T>) -> T {
        let mine = self
            .per_object
            .lock()
            .expect("lock")
            .entry(object.name().to_string())
            .or_default()
            .clone();
        let overlapping = mine.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_per_object.fetch_max(overlapping, Ordering::SeqCst);
        let all = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(all, Ordering::SeqCst);
        self.runs.lock().expect("lock").push(Run {
            name: object.name().to_string(),
            version: object.spec.version,
            at: self.start.elapsed(),
        });
        let out = work.await;
        mine.fetch_sub(1, Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.finished.fetch_add(1, Ordering::SeqCst);
        out
    }

    fn runs(&self) -> Vec<Run> {
        self.runs.lock().expect("lock").clone()
    }

    fn runs_of(&self, name: &str) -> Vec<Run> {
        self.runs().into_iter().filter(|r| r.name == name).collect()
    }

    fn times_of(&self, name: &str) -> Vec<Duration> {
        self.runs_of(name).iter().map(|r| r.at).collect()
    }

    fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }
}

type Reconciled = Result<Action, String>;

/// Starts `controller` with a reconciler that takes `busy` and then returns
/// `action`, and an error policy answering [`Action::backoff`].
fn start_simple(
    controller: Controller<Widget>,
    rec: &Arc<Recorder>,
    busy: Duration,
    action: Action,
) -> JoinHandle<()> {
    start(controller, rec, move |_, _| async move {
        sleep(busy).await;
        Ok(action)
    })
}

/// Starts `controller` with `work` as the tracked body of each reconcile.
fn start<W, Fut>(controller: Controller<Widget>, rec: &Arc<Recorder>, work: W) -> JoinHandle<()>
where
    W: Fn(Arc<Object<Widget>>, Arc<Recorder>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reconciled> + Send + 'static,
{
    let work = Arc::new(work);
    tokio::spawn(controller.run(
        move |object: Arc<Object<Widget>>, rec: Arc<Recorder>| {
            let work = work.clone();
            async move {
                let body = work(object.clone(), rec.clone());
                rec.track(&object, body).await
            }
        },
        |_, _, rec: Arc<Recorder>| {
            rec.policy_calls.fetch_add(1, Ordering::SeqCst);
            Action::backoff()
        },
        rec.clone(),
    ))
}

async fn stop(token: &CancellationToken, handle: JoinHandle<()>) {
    token.cancel();
    assert!(handle.await.is_ok(), "controller panicked");
}

/// A controller that answers every reconcile with a requeue after `every`,
/// already fed widget `a` (version 1).
fn requeuing_a(
    every: Duration,
) -> (
    CancellationToken,
    Events<Widget>,
    Arc<Recorder>,
    JoinHandle<()>,
) {
    let (token, tx, c, rec) = setup();
    let handle = start_simple(c, &rec, Duration::ZERO, Action::requeue(every));
    send(&tx, Event::Applied(widget("a", 1)));
    (token, tx, rec, handle)
}

/// One reconcile at a time, each taking `busy_for`, and widget `busy` in
/// the middle of its reconcile (a second in).
async fn busy_with_one(
    busy_for: Duration,
) -> (
    CancellationToken,
    Events<Widget>,
    Arc<Recorder>,
    JoinHandle<()>,
) {
    let (token, tx, c, rec) = setup();
    let handle = start_simple(c.concurrency(1), &rec, busy_for, Action::await_change());
    send(&tx, Event::Applied(widget("busy", 1)));
    sleep(SEC).await;
    (token, tx, rec, handle)
}

/// Starts `c` (reconciles that await a change) and lists widgets a, b and
/// c to it; each has been reconciled once when this returns.
async fn started_with_abc(
    c: Controller<Widget>,
    tx: &Events<Widget>,
) -> (Arc<Recorder>, JoinHandle<()>) {
    let rec = Recorder::new();
    let handle = start_simple(c, &rec, Duration::ZERO, Action::await_change());
    send(
        tx,
        Event::Restarted(vec![widget("a", 1), widget("b", 1), widget("c", 1)]),
    );
    sleep(SEC).await;
    (rec, handle)
}

/// What most cases start from: a shutdown token, a controller fed by the
/// returned sender that stops with the token, and an empty recorder.
fn setup() -> (
    CancellationToken,
    Events<Widget>,
    Controller<Widget>,
    Arc<Recorder>,
) {
    let token = CancellationToken::new();
    let (tx, controller) = controller(&token);
    (token, tx, controller, Recorder::new())
}

fn controller(shutdown: &CancellationToken) -> (Events<Widget>, Controller<Widget>) {
    let (tx, rx) = channel();
    let controller = Controller::from_stream(rx).graceful_shutdown_on(shutdown.clone());
    (tx, controller)
}

#[tokio::test(start_paused = true)]
async fn ten_events_during_a_reconcile_cause_one_more() {
    let (token, tx, c, rec) = setup();
    let handle = start_simple(c, &rec, 10 * SEC, Action::await_change());

    send(&tx, Event::Restarted(vec![widget("a", 1)]));
    sleep(SEC).await;
    assert_eq!(rec.runs().len(), 1);
    for version in 2..=11 {
        send(&tx, Event::Applied(widget("a", version)));
    }
    sleep(60 * SEC).await;
    let runs = rec.runs_of("a");
    assert_eq!(runs.len(), 2, "{runs:?}");
    // The follow-up starts when the first run ends, with the newest version.
    assert_eq!(runs[1].version, 11);
    assert!(
        runs[1].at >= 10 * SEC && runs[1].at <= 10 * SEC + SLACK,
        "{runs:?}"
    );
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn one_object_is_never_reconciled_twice_at_once() {
    let (token, tx, c, rec) = setup();
    let handle = start(c.concurrency(8), &rec, |object, _| async move {
        // Uneven durations, so runs and events interleave in many ways.
        sleep(Duration::from_millis(
            100 * u64::from(object.spec.version % 7),
        ))
        .await;
        Ok(Action::requeue(Duration::from_millis(250)))
    });

    send(&tx, Event::Restarted(vec![widget("a", 0), widget("b", 0)]));
    for version in 1..=60 {
        let name = if version % 3 == 0 { "b" } else { "a" };
        send(&tx, Event::Applied(widget(name, version)));
        sleep(Duration::from_millis(70)).await;
    }
    sleep(5 * SEC).await;
    assert!(rec.runs().len() > 20, "{}", rec.runs().len());
    assert_eq!(rec.max_per_object.load(Ordering::SeqCst), 1);
    assert!(rec.max_in_flight.load(Ordering::SeqCst) <= 2);
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn different_objects_run_concurrently_up_to_the_bound() {
    let (token, tx, c, rec) = setup();
    let handle = start_simple(c.concurrency(3), &rec, SEC, Action::await_change());

    let widgets = (0..10).map(|i| widget(&format!("w{i}"), 1)).collect();
    send(&tx, Event::Restarted(widgets));
    sleep(Duration::from_millis(500)).await;
    assert_eq!(rec.in_flight.load(Ordering::SeqCst), 3);
    sleep(3 * SEC).await;
    // Batches of 3, 3, 3, 1 of one second each.
    assert_eq!(rec.finished(), 9);
    sleep(SEC).await;
    assert_eq!(rec.finished(), 10);
    assert_eq!(rec.max_in_flight.load(Ordering::SeqCst), 3);
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_requeue_fires_after_its_delay() {
    let (token, _tx, rec, handle) = requeuing_a(5 * SEC);
    sleep(12 * SEC).await;
    let times = rec.times_of("a");
    assert_eq!(times.len(), 3, "{times:?}");
    for (i, at) in times.iter().enumerate() {
        let expected = 5 * SEC * u32::try_from(i).expect("small");
        assert!(*at >= expected && *at <= expected + SLACK, "{times:?}");
    }
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_trigger_does_not_wait_for_a_pending_requeue() {
    let (token, tx, rec, handle) = requeuing_a(60 * SEC);
    sleep(2 * SEC).await;
    send(&tx, Event::Applied(widget("a", 2)));
    sleep(SEC).await;
    let times = rec.times_of("a");
    assert_eq!(times.len(), 2);
    assert!(
        times[1] >= 2 * SEC && times[1] <= 2 * SEC + SLACK,
        "{times:?}"
    );
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn errors_back_off_exponentially_and_reset_on_success() {
    let (token, tx, c, rec) = setup();
    let backoff = ErrorBackoff::new(SEC, 8 * SEC).with_jitter(0.0);
    let calls = Arc::new(AtomicUsize::new(0));
    let handle = start(c.error_backoff(backoff), &rec, move |_, _| {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            // Five failures, one success, then failures again.
            if call == 5 {
                Ok(Action::await_change())
            } else {
                Err(format!("failure {call}"))
            }
        }
    });

    send(&tx, Event::Applied(widget("a", 1)));
    sleep(30 * SEC).await;
    send(&tx, Event::Applied(widget("a", 2)));
    sleep(4 * SEC).await;
    let secs: Vec<_> = rec.times_of("a").iter().map(Duration::as_secs).collect();
    // Delays 1, 2, 4, 8, 8 (capped); success at 23; after the next trigger
    // the backoff starts over at 1.
    assert_eq!(secs, [0, 1, 3, 7, 15, 23, 30, 31, 33]);
    assert_eq!(rec.policy_calls.load(Ordering::SeqCst), 8);
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn error_backoff_jitter_stays_within_bounds() {
    let (token, tx, c, rec) = setup();
    let backoff = ErrorBackoff::new(SEC, 4 * SEC).with_jitter(0.5);
    let handle = start(c.error_backoff(backoff), &rec, |_, _| async {
        Err::<Action, _>("always".to_string())
    });

    let names: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    send(
        &tx,
        Event::Restarted(names.iter().map(|n| widget(n, 1)).collect()),
    );
    sleep(40 * SEC).await;
    let mut first_gaps = Vec::new();
    for name in &names {
        let times = rec.times_of(name);
        assert!(times.len() >= 6, "{name}: {times:?}");
        for (failures, pair) in (0u32..).zip(times.windows(2)) {
            let gap = pair[1] - pair[0];
            let nominal = backoff.nominal(failures);
            assert!(
                gap >= nominal && gap <= nominal.mul_f64(1.5) + SLACK,
                "{name}: gap {failures} is {gap:?}"
            );
        }
        first_gaps.push(times[1] - times[0]);
    }
    // Objects failing together must not retry in lockstep.
    assert!(
        first_gaps.iter().any(|g| *g != first_gaps[0]),
        "{first_gaps:?}"
    );
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn the_error_policy_can_override_the_backoff() {
    let (token, tx, c, rec) = setup();
    let handle = tokio::spawn(c.run(
        |object: Arc<Object<Widget>>, rec: Arc<Recorder>| async move {
            rec.track(&object, async { Err::<Action, _>("no") }).await
        },
        |_, _: &&str, _| Action::requeue(7 * SEC),
        rec.clone(),
    ));

    send(&tx, Event::Applied(widget("a", 1)));
    sleep(15 * SEC).await;
    let secs: Vec<_> = rec.times_of("a").iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [0, 7, 14]);
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_reconcile_is_retried_with_backoff() {
    let (token, tx, c, rec) = setup();
    let calls = Arc::new(AtomicUsize::new(0));
    let backoff = ErrorBackoff::new(2 * SEC, 8 * SEC).with_jitter(0.0);
    let handle = start(c.error_backoff(backoff), &rec, move |_, _| {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            assert!(call > 0, "deliberate panic in a test reconcile");
            Ok(Action::await_change())
        }
    });

    send(&tx, Event::Applied(widget("a", 1)));
    sleep(5 * SEC).await;
    let secs: Vec<_> = rec.times_of("a").iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [0, 2]);
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn an_object_deleted_before_its_turn_is_skipped() {
    let (token, tx, rec, handle) = busy_with_one(10 * SEC).await;
    // Queued behind the busy one, then deleted.
    send(&tx, Event::Applied(widget("b", 1)));
    send(&tx, Event::Deleted(widget("b", 1)));
    // Queued behind it too, and gone from a relist.
    send(&tx, Event::Applied(widget("c", 1)));
    send(&tx, Event::Restarted(vec![widget("busy", 1)]));
    sleep(30 * SEC).await;
    assert!(rec.runs_of("b").is_empty());
    assert!(rec.runs_of("c").is_empty());
    assert_eq!(rec.runs_of("busy").len(), 2);
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_deleted_object_loses_its_requeue() {
    let (token, tx, rec, handle) = requeuing_a(5 * SEC);
    sleep(2 * SEC).await;
    send(&tx, Event::Deleted(widget("a", 1)));
    sleep(20 * SEC).await;
    assert_eq!(rec.runs_of("a").len(), 1);
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn the_reconciler_sees_the_latest_version() {
    let (token, tx, rec, handle) = busy_with_one(5 * SEC).await;
    for version in 1..=3 {
        send(&tx, Event::Applied(widget("b", version)));
    }
    sleep(20 * SEC).await;
    let versions: Vec<_> = rec.runs_of("b").iter().map(|r| r.version).collect();
    assert_eq!(versions, [3]);
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_secondary_change_reconciles_the_mapped_primary() {
    let token = CancellationToken::new();
    let (tx, c) = controller(&token);
    let (gadgets, gadget_events) = channel::<Gadget>();
    let c = c.watches_stream(gadget_events, |g: &Object<Gadget>| {
        Some(ObjectRef::new(g.namespace(), &g.spec.widget))
    });
    let rec = Recorder::new();
    let handle = start_simple(c, &rec, Duration::ZERO, Action::await_change());

    send(&tx, Event::Restarted(vec![widget("a", 1), widget("b", 1)]));
    sleep(SEC).await;
    send(&gadgets, Event::Applied(gadget("g1", "b")));
    // Mapped to a widget that does not exist: nothing to do.
    send(&gadgets, Event::Applied(gadget("g2", "nope")));
    sleep(SEC).await;
    send(&gadgets, Event::Deleted(gadget("g1", "b")));
    sleep(SEC).await;
    assert_eq!((rec.runs_of("a").len(), rec.runs_of("b").len()), (1, 3));
    assert!(rec.runs_of("nope").is_empty());
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn reconcile_all_on_enqueues_every_cached_object() {
    let token = CancellationToken::new();
    let (tx, c) = controller(&token);
    let (all_tx, all_rx) = mpsc::unbounded_channel::<()>();
    let c = c.reconcile_all_on(UnboundedReceiverStream::new(all_rx));
    let (rec, handle) = started_with_abc(c, &tx).await;
    all_tx.send(()).expect("controller gone");
    sleep(SEC).await;
    for name in ["a", "b", "c"] {
        assert_eq!(rec.runs_of(name).len(), 2, "{name}");
    }
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn reconcile_on_enqueues_only_the_named_objects() {
    let token = CancellationToken::new();
    let (tx, c) = controller(&token);
    let (keys_tx, keys_rx) = mpsc::unbounded_channel::<ObjectRef>();
    let c = c.reconcile_on(UnboundedReceiverStream::new(keys_rx));
    let (rec, handle) = started_with_abc(c, &tx).await;
    keys_tx
        .send(ObjectRef::new("ns", "b"))
        .expect("controller gone");
    sleep(SEC).await;
    assert_eq!(rec.runs_of("a").len(), 1);
    assert_eq!(rec.runs_of("b").len(), 2);
    assert_eq!(rec.runs_of("c").len(), 1);
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_secondary_store_change_reconciles_all() {
    // The shape used with `spawn_reflector`: a cache of another kind whose
    // changes re-run every primary.
    let token = CancellationToken::new();
    let (tx, c) = controller(&token);
    let (gadgets, mut gadget_writer) = store::<Gadget>();
    let c = c.reconcile_all_on(WatchStream::from_changes(gadgets.changes()));
    let rec = Recorder::new();
    let handle = start_simple(c, &rec, Duration::ZERO, Action::await_change());

    send(&tx, Event::Restarted(vec![widget("a", 1), widget("b", 1)]));
    sleep(SEC).await;
    gadget_writer.apply(&Event::Applied(gadget("g", "a")));
    sleep(SEC).await;
    assert_eq!((rec.runs_of("a").len(), rec.runs_of("b").len()), (2, 2));
    assert_eq!(gadgets.len(), 1);
    stop(&token, handle).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_running_reconciles_and_starts_no_more() {
    let (token, tx, c, rec) = setup();
    let handle = start_simple(c.concurrency(1), &rec, 5 * SEC, Action::requeue(SEC));

    send(&tx, Event::Restarted(vec![widget("a", 1), widget("b", 1)]));
    sleep(SEC).await;
    let cancelled_at = Instant::now();
    token.cancel();
    sleep(3 * SEC).await;
    assert!(!handle.is_finished());
    assert!(handle.await.is_ok());
    // The run started at 0 and took 5s; the controller returned right after.
    let waited = cancelled_at.elapsed();
    assert!(waited >= 4 * SEC && waited <= 4 * SEC + SLACK, "{waited:?}");
    assert_eq!((rec.runs().len(), rec.finished()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_after_the_grace_period() {
    let (token, tx, c, rec) = setup();
    let c = c.shutdown_grace(10 * SEC);
    let handle = start_simple(c, &rec, 1000 * SEC, Action::await_change());

    send(&tx, Event::Applied(widget("a", 1)));
    sleep(SEC).await;
    let cancelled_at = Instant::now();
    token.cancel();
    assert!(handle.await.is_ok());
    let waited = cancelled_at.elapsed();
    assert!(
        waited >= 10 * SEC && waited <= 10 * SEC + SLACK,
        "{waited:?}"
    );
    assert_eq!((rec.runs().len(), rec.finished()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn the_controller_stops_when_its_event_stream_ends() {
    let token = CancellationToken::new();
    let (tx, c) = controller(&token);
    let store = c.store();
    let rec = Recorder::new();
    let handle = start_simple(c, &rec, SEC, Action::requeue(SEC));

    send(&tx, Event::Restarted(vec![widget("a", 1)]));
    tx.send(Err("a transient error".into()))
        .expect("controller gone");
    sleep(Duration::from_millis(500)).await;
    assert!(store.is_ready() && store.get(&ObjectRef::new("ns", "a")).is_some());
    drop(tx);
    assert!(handle.await.is_ok());
    assert_eq!(rec.finished(), 1);
}
