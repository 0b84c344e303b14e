//! The one mechanism of the controllers that delete an object some time
//! after a moment (`agent_gc`, `taskrun_ttl`, `state_ttl`): every object
//! of one kind is judged as its watch reports it ([`Ttl`]), and the
//! judgment is kept in a [`DueQueue`] (its due time and resourceVersion,
//! not the object). Only due objects cost work: each is deleted with its
//! judged resourceVersion as precondition, so an object changed since is
//! judged again from its own event. What differs per kind is only the
//! judgment and what follows a deletion.
//!
//! A judgment depends on the object and the time only, so the due time
//! judged when the event arrived still holds when it comes.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sloth_sdk::client::to_typed;
use sloth_sdk::runtime::{ObjectRef, ReconcileObserver};
use sloth_sdk::watcher::{Event, watch_objects};
use sloth_sdk::{Api, Client, Error, Object, Spec, WatchParams};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::due_queue::{Due, DueQueue};
use crate::gc::Ttl;

/// Deletions in flight at once.
const CONCURRENCY: usize = 8;
/// Slack after a TTL runs out before the object is deleted.
const SLACK: Duration = Duration::from_millis(100);
/// How soon a deletion that failed (server unreachable, say) is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// The longest the loop sleeps without looking at the clock again, so a
/// wall-clock step is noticed within this long.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How long shutdown waits for deletions in flight before abandoning them
/// (each is one conditional delete: it took effect or it did not).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

struct Ctx<J, D> {
    client: Client,
    judge: J,
    deleted: D,
}

/// What became of one deletion.
enum Outcome {
    Deleted,
    /// Gone already, or changed since it was judged (its event judges the
    /// new version).
    Skipped,
    Failed(Error),
}

/// Deletes objects of kind `S` once `judge` says they are due, until
/// `shutdown`; `deleted` runs after each deletion (logging, cleaning up
/// what the object leaves behind). `name` labels the reconcile metrics
/// (one "reconcile" per deletion attempt).
pub async fn run<S, J, D, Fut>(
    client: Client,
    name: &'static str,
    judge: J,
    deleted: D,
    shutdown: CancellationToken,
) where
    S: Spec,
    J: Fn(&Object<S>, DateTime<Utc>) -> Ttl + Send + Sync + 'static,
    D: Fn(Client, Arc<Object<S>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let objects: Api<S> = Api::all(client.clone());
    let mut events = watch_objects(&objects, "", WatchParams::default());
    let observer = crate::metrics::global().controller(name);
    let ctx = Arc::new(Ctx {
        client,
        judge,
        deleted,
    });
    let mut queue = DueQueue::new();
    let mut deleting: JoinSet<(ObjectRef, Due, Outcome)> = JoinSet::new();
    loop {
        let now = Utc::now();
        while deleting.len() < CONCURRENCY {
            let Some((key, due)) = queue.pop_due(now) else {
                break;
            };
            deleting.spawn(delete(ctx.clone(), observer.clone(), key, due));
        }
        observer.queue_depth(queue.len());
        let wake = match queue.next_at() {
            Some(at) if deleting.len() < CONCURRENCY => {
                (at - now).to_std().unwrap_or_default().min(MAX_SLEEP)
            }
            _ => MAX_SLEEP,
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(joined) = deleting.join_next(), if !deleting.is_empty() => match joined {
                Ok((key, due, Outcome::Failed(e))) => {
                    tracing::warn!(kind = S::KIND, object = %key, error = %e, "cannot delete an expired object; retrying");
                    let retry = Due {
                        at: Utc::now() + RETRY,
                        ..due
                    };
                    queue.set_unless_known(key, retry);
                }
                Ok(_) => {}
                Err(e) => tracing::error!(kind = S::KIND, error = %e, "an expiry deletion panicked"),
            },
            item = events.next() => match item {
                Some(Ok(Event::Restarted(list))) => {
                    queue.clear();
                    let now = Utc::now();
                    for object in &list {
                        track(&mut queue, &ctx.judge, object, now);
                    }
                }
                Some(Ok(Event::Applied(object))) => track(&mut queue, &ctx.judge, &object, Utc::now()),
                Some(Ok(Event::Deleted(object))) => queue.set(ObjectRef::from_obj(&object), None),
                Some(Err(e)) => tracing::warn!(kind = S::KIND, error = %e, "watch failed; the watcher retries"),
                None => break,
            },
            () = tokio::time::sleep(wake) => {}
        }
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while deleting.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            kind = S::KIND,
            running = deleting.len(),
            "shutdown grace over; abandoning expiry deletions in flight"
        );
        deleting.abort_all();
    }
}

/// Judges `object` at `now` into `queue`.
fn track<S, J>(queue: &mut DueQueue, judge: &J, object: &Object<S>, now: DateTime<Utc>)
where
    S: Spec,
    J: Fn(&Object<S>, DateTime<Utc>) -> Ttl,
{
    let at = match judge(object, now) {
        Ttl::Keep => None,
        Ttl::DueAt(due) => Some(due + SLACK),
        Ttl::Delete => Some(now),
    };
    let due = at.map(|at| Due {
        at,
        resource_version: object.metadata.resource_version.clone(),
    });
    queue.set(ObjectRef::from_obj(object), due);
}

/// Deletes `key` if it is still the version judged due.
async fn delete<S, J, D, Fut>(
    ctx: Arc<Ctx<J, D>>,
    observer: Arc<dyn ReconcileObserver>,
    key: ObjectRef,
    due: Due,
) -> (ObjectRef, Due, Outcome)
where
    S: Spec,
    J: Send + Sync + 'static,
    D: Fn(Client, Arc<Object<S>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let result = ctx
        .client
        .delete(
            S::KIND,
            &key.namespace,
            &key.name,
            Some(&due.resource_version),
        )
        .await;
    let outcome = match result {
        Ok(gone) => match to_typed::<S>(gone) {
            Ok(object) => {
                (ctx.deleted)(ctx.client.clone(), Arc::new(object)).await;
                Outcome::Deleted
            }
            // Deleted all the same; only the follow-up is lost.
            Err(e) => {
                tracing::warn!(kind = S::KIND, object = %key, error = %e, "deleted, but cannot decode the deleted object");
                Outcome::Deleted
            }
        },
        Err(Error::NotFound(_) | Error::Conflict(_)) => Outcome::Skipped,
        Err(e) => Outcome::Failed(e),
    };
    observer.reconciled(started.elapsed(), matches!(outcome, Outcome::Failed(_)));
    (key, due, outcome)
}
