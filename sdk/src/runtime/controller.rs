//! The controller: merges triggers into a work queue and runs a reconciler
//! over it, with bounded concurrency, requeues, error backoff and graceful
//! shutdown.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, BoxStream, SelectAll};
use futures_util::{Stream, StreamExt};
use tokio::task::{Id, JoinSet};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::action::{Action, ErrorBackoff};
use super::object_ref::ObjectRef;
use super::observer::{NoObserver, ReconcileObserver};
use super::queue::WorkQueue;
use super::reflector::{self, Store, reflector};
use crate::client::{Api, WatchParams};
use crate::resource::{Object, Spec};
use crate::watcher::{Event, watch_objects};

/// How many objects are reconciled at once unless set with
/// [`Controller::concurrency`].
pub const DEFAULT_CONCURRENCY: usize = 8;

/// How long shutdown waits for running reconciles unless set with
/// [`Controller::shutdown_grace`].
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Stands in for "no timer" in `select!`, whose disabled branches still
/// build their future.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365);

/// A reconcile's outcome, with the object it was given for the error policy.
type Finished<S, E> = (Arc<Object<S>>, Result<Action, E>);

/// Why an object should be reconciled, apart from its own events.
enum Trigger {
    Object(ObjectRef),
    All,
}

/// Reconciles objects of kind `S`, in the manner of kube-runtime.
///
/// Triggers — events on the primary kind, mapped events of secondary kinds
/// ([`watches`](Self::watches)) and reconcile-all signals
/// ([`reconcile_all_on`](Self::reconcile_all_on)) — feed one deduplicating
/// [`WorkQueue`]. The reconciler is level-triggered: it gets the object as
/// the cache holds it when its turn comes, not the event that queued it, and
/// an object deleted before its turn is skipped. One object is never
/// reconciled twice at once; a trigger during its reconcile runs it once
/// more afterwards.
///
/// After a reconcile the returned [`Action`] decides when to run again. On
/// error the error policy's `Action` does; [`Action::Backoff`] there uses the
/// controller's per-object [`ErrorBackoff`] (exponential with jitter, reset
/// when a reconcile of the object succeeds), and any other action overrides
/// it. A panicking reconcile counts as an error with [`Action::Backoff`].
pub struct Controller<S: Spec> {
    store: Store<S>,
    primary: BoxStream<'static, Result<Event<Object<S>>, String>>,
    triggers: SelectAll<BoxStream<'static, Trigger>>,
    concurrency: usize,
    backoff: ErrorBackoff,
    shutdown: CancellationToken,
    shutdown_grace: Duration,
    observer: Arc<dyn ReconcileObserver>,
}

impl<S: Spec> Controller<S> {
    /// A controller of the objects `api` watches in `namespace` (everywhere
    /// when empty) that match `params`.
    pub fn new(api: Api<S>, namespace: &str, params: WatchParams) -> Self {
        Self::from_stream(watch_objects(&api, namespace, params))
    }

    /// A controller fed by any stream of watcher events, e.g. a channel in
    /// tests. Errors in the stream are logged and otherwise ignored, since
    /// the watcher retries by itself. When the stream ends, the controller
    /// shuts down as if cancelled.
    pub fn from_stream<E, St>(events: St) -> Self
    where
        E: Display,
        St: Stream<Item = Result<Event<Object<S>>, E>> + Send + 'static,
    {
        let (store, writer) = reflector::store();
        let events = events.map(|item| item.map_err(|e| e.to_string()));
        Self {
            store,
            primary: reflector(writer, events).boxed(),
            triggers: SelectAll::new(),
            concurrency: DEFAULT_CONCURRENCY,
            backoff: ErrorBackoff::default(),
            shutdown: CancellationToken::new(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            observer: Arc::new(NoObserver),
        }
    }

    /// The cache of the primary kind, filled while [`run`](Self::run) runs;
    /// hand it to the reconciler through its context.
    pub fn store(&self) -> Store<S> {
        self.store.clone()
    }

    /// Also reconciles the primary objects that `mapper` names whenever an
    /// object of kind `O` is listed, changes or is deleted.
    pub fn watches<O, M, I>(
        self,
        api: Api<O>,
        namespace: &str,
        params: WatchParams,
        mapper: M,
    ) -> Self
    where
        O: Spec,
        M: Fn(&Object<O>) -> I + Send + 'static,
        I: IntoIterator<Item = ObjectRef>,
    {
        self.watches_stream(watch_objects(&api, namespace, params), mapper)
    }

    /// [`watches`](Self::watches) over any stream of watcher events, e.g. a
    /// [`reflector`](super::reflector::reflector) that also caches them, or
    /// a channel in tests.
    pub fn watches_stream<O, E, St, M, I>(mut self, events: St, mapper: M) -> Self
    where
        O: Spec,
        E: Display,
        St: Stream<Item = Result<Event<Object<O>>, E>> + Send + 'static,
        M: Fn(&Object<O>) -> I + Send + 'static,
        I: IntoIterator<Item = ObjectRef>,
    {
        let triggers = events.flat_map(move |item| {
            let keys: Vec<ObjectRef> = match item {
                Ok(Event::Restarted(objects)) => objects.iter().flat_map(&mapper).collect(),
                Ok(Event::Applied(object) | Event::Deleted(object)) => {
                    mapper(&object).into_iter().collect()
                }
                Err(e) => {
                    tracing::warn!(kind = O::KIND, error = %e, "secondary watch failed");
                    Vec::new()
                }
            };
            stream::iter(keys.into_iter().map(Trigger::Object))
        });
        self.triggers.push(triggers.boxed());
        self
    }

    /// Reconciles every cached object each time `signal` yields, e.g. when
    /// agents change and every pending task run may now fit somewhere. With
    /// [`spawn_reflector`](super::reflector::spawn_reflector):
    /// `reconcile_all_on(WatchStream::from_changes(changes))`.
    pub fn reconcile_all_on<T>(mut self, signal: impl Stream<Item = T> + Send + 'static) -> Self {
        self.triggers.push(signal.map(|_| Trigger::All).boxed());
        self
    }

    /// Reconciles the objects `keys` names, each time it names them: for a
    /// reconciler that knows which few objects a change concerns (e.g. the
    /// waiting TaskRuns a freed slot can take), where
    /// [`reconcile_all_on`](Self::reconcile_all_on) would run every object.
    pub fn reconcile_on(mut self, keys: impl Stream<Item = ObjectRef> + Send + 'static) -> Self {
        self.triggers.push(keys.map(Trigger::Object).boxed());
        self
    }

    /// Reconciles at most `n` objects at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The delays of [`Action::Backoff`].
    pub fn error_backoff(mut self, backoff: ErrorBackoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Shuts down when `token` is cancelled: no new reconciles start,
    /// running ones get the [grace period](Self::shutdown_grace) to finish,
    /// then [`run`](Self::run) returns.
    pub fn graceful_shutdown_on(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// How long shutdown waits for running reconciles before aborting them.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Reports reconcile durations, failures and the queue's depth to
    /// `observer` (metrics).
    pub fn observe(mut self, observer: Arc<dyn ReconcileObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Runs the controller until shutdown (see
    /// [`graceful_shutdown_on`](Self::graceful_shutdown_on)) or until the
    /// primary stream ends.
    ///
    /// Each reconcile runs as its own Tokio task, so reconciles of different
    /// objects run in parallel and a panic in one is contained.
    pub async fn run<R, Fut, E, P, Ctx>(self, reconcile: R, error_policy: P, ctx: Arc<Ctx>)
    where
        R: Fn(Arc<Object<S>>, Arc<Ctx>) -> Fut,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: Display + Send + 'static,
        P: Fn(Arc<Object<S>>, &E, Arc<Ctx>) -> Action,
        Ctx: Send + Sync + 'static,
    {
        let Controller {
            store,
            mut primary,
            mut triggers,
            concurrency,
            backoff,
            shutdown,
            shutdown_grace,
            observer,
        } = self;
        let mut queue = WorkQueue::new();
        let mut tasks: JoinSet<Finished<S, E>> = JoinSet::new();
        // Each running reconcile's object and start.
        let mut running: HashMap<Id, (ObjectRef, Instant)> = HashMap::new();
        // Consecutive failures per object, for the error backoff.
        let mut failures: HashMap<ObjectRef, u32> = HashMap::new();
        let mut stop_by: Option<Instant> = None;

        loop {
            if stop_by.is_none() {
                let now = Instant::now();
                while tasks.len() < concurrency {
                    let Some(key) = queue.pop_ready(now) else {
                        break;
                    };
                    let Some(object) = store.get(&key) else {
                        // Deleted before its turn: nothing to reconcile.
                        queue.finish(&key);
                        continue;
                    };
                    let span = tracing::info_span!("reconcile", kind = S::KIND, object = %key);
                    let work = reconcile(object.clone(), ctx.clone());
                    let handle = tasks.spawn(async move { (object, work.await) }.instrument(span));
                    running.insert(handle.id(), (key, now));
                }
            } else if tasks.is_empty() {
                break;
            }
            observer.queue_depth(queue.len());

            // A full pool wakes on a completion, not on due work, so a ready
            // queue behind a full pool does not spin.
            let wake = if tasks.len() < concurrency && stop_by.is_none() {
                queue.next_due()
            } else {
                None
            };
            let far = Instant::now() + FAR_FUTURE;

            tokio::select! {
                () = shutdown.cancelled(), if stop_by.is_none() => {
                    tracing::info!(
                        kind = S::KIND,
                        running = tasks.len(),
                        "controller shutting down"
                    );
                    stop_by = Some(deadline_after(shutdown_grace));
                }
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let (key, next, failed) = match joined {
                        Ok((id, (object, result))) => {
                            let key = match running.remove(&id) {
                                Some((key, started)) => {
                                    observer.reconciled(started.elapsed(), result.is_err());
                                    key
                                }
                                None => ObjectRef::from_obj(&object),
                            };
                            match result {
                                Ok(action) => (key, action, false),
                                Err(e) => {
                                    tracing::warn!(
                                        kind = S::KIND,
                                        object = %key,
                                        error = %e,
                                        "reconcile failed"
                                    );
                                    (key, error_policy(object, &e, ctx.clone()), true)
                                }
                            }
                        }
                        Err(e) => {
                            let Some((key, started)) = running.remove(&e.id()) else {
                                continue;
                            };
                            if e.is_panic() {
                                observer.reconciled(started.elapsed(), true);
                                tracing::error!(
                                    kind = S::KIND,
                                    object = %key,
                                    "reconcile panicked"
                                );
                            }
                            // Reconciles are only cancelled at shutdown,
                            // where nothing is requeued.
                            (key, Action::Backoff, true)
                        }
                    };
                    queue.finish(&key);
                    if stop_by.is_some() {
                        continue;
                    }
                    if store.get(&key).is_none() {
                        // Deleted meanwhile: its retry state would only leak.
                        failures.remove(&key);
                        queue.cancel(&key);
                        continue;
                    }
                    let previous_failures = if failed {
                        let count = failures.entry(key.clone()).or_insert(0);
                        *count = count.saturating_add(1);
                        *count - 1
                    } else {
                        failures.remove(&key);
                        0
                    };
                    let delay = match next {
                        Action::Requeue(delay) => Some(delay),
                        Action::AwaitChange => None,
                        Action::Backoff => Some(backoff.delay(previous_failures)),
                    };
                    if let Some(delay) = delay {
                        queue.schedule(key, delay);
                    }
                }
                item = primary.next(), if stop_by.is_none() => match item {
                    Some(Ok(Event::Restarted(objects))) => {
                        // The relist may have dropped objects deleted while
                        // the watch was down.
                        failures.retain(|key, _| store.get(key).is_some());
                        for object in &objects {
                            queue.schedule(ObjectRef::from_obj(object), Duration::ZERO);
                        }
                    }
                    Some(Ok(Event::Applied(object))) => {
                        queue.schedule(ObjectRef::from_obj(&object), Duration::ZERO);
                    }
                    Some(Ok(Event::Deleted(object))) => {
                        let key = ObjectRef::from_obj(&object);
                        queue.cancel(&key);
                        failures.remove(&key);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(
                            kind = S::KIND,
                            error = %e,
                            "watch failed; the watcher retries"
                        );
                    }
                    None => {
                        tracing::warn!(kind = S::KIND, "event stream ended; controller stopping");
                        stop_by = Some(deadline_after(shutdown_grace));
                    }
                },
                Some(trigger) = triggers.next(), if stop_by.is_none() && !triggers.is_empty() => {
                    match trigger {
                        Trigger::Object(key) => queue.schedule(key, Duration::ZERO),
                        Trigger::All => {
                            for key in store.refs() {
                                queue.schedule(key, Duration::ZERO);
                            }
                        }
                    }
                }
                () = sleep_until(wake.unwrap_or(far)), if wake.is_some() => {}
                () = sleep_until(stop_by.unwrap_or(far)), if stop_by.is_some() => {
                    tracing::warn!(
                        kind = S::KIND,
                        running = tasks.len(),
                        "shutdown grace period over; aborting running reconciles"
                    );
                    tasks.abort_all();
                    break;
                }
            }
        }
    }
}

/// `now + grace`, or far ahead when that is too large to represent.
fn deadline_after(grace: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(grace).unwrap_or(now + FAR_FUTURE)
}
