//! The TaskRun loop: one watch of the TaskRuns bound to this agent (all
//! namespaces, field selector `spec.agentName=NAME`), a queue of the ones
//! waiting to run, and dispatch while capacity allows.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use futures_util::StreamExt;
use sloth_sdk::objects::{TaskRun, TaskRunSpec};
use sloth_sdk::watcher::{Event, watch_objects};
use sloth_sdk::{Api, Error, WatchParams};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::concurrency::{RunKey, StopReason};
use crate::retention;
use crate::taskrun::{self, Ctx, Held, claimable, key_of, phase_of, running_on};

/// TaskRuns waiting for a slot, first seen first run.
#[derive(Debug, Default)]
struct Queue {
    order: VecDeque<RunKey>,
    items: HashMap<RunKey, TaskRun>,
}

impl Queue {
    /// Adds a TaskRun, or refreshes the copy of one already waiting.
    fn upsert(&mut self, key: RunKey, taskrun: TaskRun) {
        if self.items.insert(key.clone(), taskrun).is_none() {
            self.order.push_back(key);
        }
    }

    fn remove(&mut self, key: &RunKey) {
        if self.items.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }

    fn clear(&mut self) {
        self.order.clear();
        self.items.clear();
    }

    /// The first TaskRun whose key is not `busy` (an earlier TaskRun of the
    /// same name still finishing), taken out of the queue.
    fn take_next(&mut self, busy: impl Fn(&RunKey) -> bool) -> Option<TaskRun> {
        let index = self.order.iter().position(|k| !busy(k))?;
        let key = self.order.remove(index)?;
        self.items.remove(&key)
    }

    fn has_next(&self, busy: impl Fn(&RunKey) -> bool) -> bool {
        self.order.iter().any(|k| !busy(k))
    }
}

/// Watches and runs TaskRuns until `stop`.
pub(crate) async fn run(ctx: Arc<Ctx>, stop: CancellationToken) {
    let api: Api<TaskRunSpec> = Api::all(ctx.client.clone());
    let params = WatchParams {
        field_selector: format!("spec.agentName={}", ctx.agent),
        allow_bookmarks: true,
        ..WatchParams::default()
    };
    let mut events = watch_objects(&api, "", params);
    let (freed_tx, mut freed) = mpsc::unbounded_channel();
    let mut queue = Queue::default();
    // Deleted while they ran: their directories go once the runs end.
    let mut deleted_running = HashSet::new();
    // Run directories whose TaskRuns are confirmed gone.
    let (gone_tx, mut gone) = mpsc::unbounded_channel();
    // Nothing starts while the heartbeat lease is not current: a renewal
    // wakes the dispatcher again.
    let mut lease = ctx.fence.subscribe();
    loop {
        dispatch(&ctx, &mut queue, &freed_tx);
        tokio::select! {
            () = stop.cancelled() => return,
            Some(()) = freed.recv() => {
                deleted_running.retain(|key| remove_when_ended(&ctx, key));
                ctx.retention.enforce_cap(&ctx.runs);
            }
            Some(key) = gone.recv() => {
                remove_when_ended(&ctx, &key);
            }
            Ok(()) = lease.changed() => {}
            event = events.next() => match event {
                Some(Ok(Event::Restarted(items))) => {
                    let present: HashSet<RunKey> = items.iter().map(key_of).collect();
                    let stale = ctx.retention.stale_runs(&present, &ctx.runs);
                    tokio::spawn(retention::confirm_gone(ctx.client.clone(), stale, gone_tx.clone()));
                    handle(&ctx, &mut queue, &mut deleted_running, Event::Restarted(items));
                }
                Some(Ok(event)) => handle(&ctx, &mut queue, &mut deleted_running, event),
                Some(Err(e)) => tracing::warn!("watching taskruns: {e}"),
                None => {
                    tracing::error!("the taskrun watch ended");
                    return;
                }
            },
        }
    }
}

/// Starts queued TaskRuns while slots are free.
fn dispatch(ctx: &Arc<Ctx>, queue: &mut Queue, freed: &mpsc::UnboundedSender<()>) {
    let busy = |key: &RunKey| ctx.runs.contains(key);
    while !ctx.draining.is_cancelled() && ctx.fence.holds() && queue.has_next(busy) {
        let Some(permit) = ctx.slots.try_acquire() else {
            return;
        };
        let Some(taskrun) = queue.take_next(busy) else {
            return;
        };
        let key = key_of(&taskrun);
        let Some((guard, stop)) = ctx.runs.insert(key, &taskrun.metadata.uid) else {
            continue;
        };
        let held = Held::new(permit, guard, freed.clone());
        tokio::spawn(taskrun::execute(ctx.clone(), taskrun, held, stop));
    }
}

/// Removes the run directory of deleted TaskRun `key` unless it still
/// runs; true while it must wait. (Called from the loop that dispatches,
/// so no new run of the same name can start in between.)
fn remove_when_ended(ctx: &Ctx, key: &RunKey) -> bool {
    if ctx.runs.contains(key) {
        return true;
    }
    ctx.retention.remove_run(key);
    false
}

fn handle(
    ctx: &Arc<Ctx>,
    queue: &mut Queue,
    deleted_running: &mut HashSet<RunKey>,
    event: Event<TaskRun>,
) {
    match event {
        Event::Restarted(items) => {
            tracing::debug!("listed {} taskruns bound here", items.len());
            queue.clear();
            let present: HashSet<RunKey> = items.iter().map(key_of).collect();
            for taskrun in items {
                observe(ctx, queue, taskrun);
            }
            ctx.retention.enforce_cap(&ctx.runs);
            // Runs held here that vanished while the watch was down.
            for key in ctx.runs.keys() {
                if !present.contains(&key) {
                    tokio::spawn(stop_if_deleted(ctx.clone(), key));
                }
            }
        }
        Event::Applied(taskrun) => observe(ctx, queue, taskrun),
        Event::Deleted(taskrun) => {
            let key = key_of(&taskrun);
            queue.remove(&key);
            if ctx
                .runs
                .stop(&key, &taskrun.metadata.uid, StopReason::Deleted)
            {
                tracing::info!("taskrun {key} was deleted; stopping its run");
            }
            if remove_when_ended(ctx, &key) {
                deleted_running.insert(key);
            }
        }
    }
}

/// Files one TaskRun as the watch shows it.
fn observe(ctx: &Arc<Ctx>, queue: &mut Queue, taskrun: TaskRun) {
    let key = key_of(&taskrun);
    if phase_of(&taskrun).is_terminal() {
        queue.remove(&key);
        // Finished by someone else while it runs here: the result is decided.
        ctx.runs
            .stop(&key, &taskrun.metadata.uid, StopReason::Finalized);
    } else if claimable(&taskrun, &ctx.agent) {
        queue.upsert(key, taskrun);
    } else {
        queue.remove(&key);
        if running_on(&taskrun, &ctx.agent) && !ctx.runs.contains(&key) {
            tokio::spawn(taskrun::fail_orphan(ctx.clone(), key));
        }
    }
}

/// Stops the run of `key` when its TaskRun no longer exists (or another
/// TaskRun of the same name took its place).
async fn stop_if_deleted(ctx: Arc<Ctx>, key: RunKey) {
    let Some(uid) = ctx.runs.uid(&key) else {
        return;
    };
    let api: Api<TaskRunSpec> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let gone = match api.get(&key.name).await {
        Ok(current) => current.metadata.uid != uid,
        Err(Error::NotFound(_)) => true,
        Err(_) => false,
    };
    if gone && ctx.runs.stop(&key, &uid, StopReason::Deleted) {
        tracing::info!("taskrun {key} was deleted; stopping its run");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sloth_sdk::objects::TaskRunSpec;

    fn tr(name: &str) -> TaskRun {
        let mut t = TaskRun::new(name, TaskRunSpec::default());
        t.metadata.namespace = "ns".into();
        t
    }

    #[test]
    fn queue_is_fifo_and_skips_busy_keys() {
        let mut q = Queue::default();
        for name in ["a", "b", "c"] {
            q.upsert(RunKey::new("ns", name), tr(name));
        }
        q.upsert(RunKey::new("ns", "a"), tr("a"));
        q.remove(&RunKey::new("ns", "b"));
        let busy_a = |k: &RunKey| k.name == "a";
        assert!(q.has_next(busy_a));
        assert_eq!(
            q.take_next(busy_a).map(|t| t.metadata.name),
            Some("c".into())
        );
        assert!(!q.has_next(busy_a));
        assert_eq!(
            q.take_next(|_| false).map(|t| t.metadata.name),
            Some("a".into())
        );
        assert!(q.take_next(|_| false).is_none());
    }
}
