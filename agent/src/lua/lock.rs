//! `lock`: Locks through the API (`sloth_sdk::lease`), held by
//! `TaskRun/<namespace>/<taskrun>` in the TaskRun's namespace, renewed
//! while held and released when the task ends.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use mlua::{Lua, MultiValue, Table};
use sloth_sdk::lease::{self, Acquire, Renew};
use sloth_sdk::objects::LockSpec;
use sloth_sdk::{Api, Error};

use super::{ModuleTable, RunCtx, check_options, fail, opt_seconds};

/// The lease of a Lock taken without `lease` (renewed while held).
pub(super) const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// How long `acquire` waits for a held Lock without `wait`.
pub(super) const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// How often a held Lock is tried again while waiting.
const POLL: Duration = Duration::from_millis(250);

/// How long the release of the Locks left at the task's end may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

const OPTIONS: &[&str] = &["lease", "wait"];

/// A Lock this run holds: the task renewing it.
#[derive(Debug)]
pub(crate) struct Held {
    renew: tokio::task::JoinHandle<()>,
}

pub(super) fn module(lua: &Lua, ctx: &Rc<RunCtx>) -> mlua::Result<Table> {
    let m = ModuleTable::new(lua, ctx, "lock")?;
    m.add("lock.acquire", |_, c, args| {
        let name = args.string(1, "name")?;
        let opts = args.opt_table(2, "options")?;
        acquire(c, args.func(), &name, opts.as_ref())
    })?;
    m.add("lock.release", |_, c, args| {
        release(c, args.func(), &args.string(1, "name")?)
    })?;
    m.add("lock.with", |_, c, args| {
        let name = args.string(1, "name")?;
        let function = args.function(2, "fn")?;
        let opts = args.opt_table(3, "options")?;
        acquire(c, args.func(), &name, opts.as_ref())?;
        let result = function.call::<MultiValue>(());
        let released = release(c, args.func(), &name);
        let values = result?;
        released?;
        Ok(values)
    })?;
    Ok(m.into_table())
}

/// Errors after which the lock may still be taken: outages, and a lost
/// race for it.
fn transient(e: &Error) -> bool {
    e.is_transient() || matches!(e, Error::Conflict(_))
}

fn api_of(ctx: &RunCtx, func: &str) -> mlua::Result<(Api<LockSpec>, tokio::runtime::Handle)> {
    let api = ctx.api.as_ref().ok_or_else(|| {
        fail(
            func,
            "locks need the API, which this Lua state has no client for",
        )
    })?;
    Ok((
        Api::namespaced(api.client.clone(), &ctx.namespace),
        api.handle.clone(),
    ))
}

fn acquire(ctx: &RunCtx, func: &str, name: &str, opts: Option<&Table>) -> mlua::Result<bool> {
    check_options(func, opts, OPTIONS)?;
    let lease = opt_seconds(func, opts, "lease")?.unwrap_or(DEFAULT_LEASE);
    let wait = opt_seconds(func, opts, "wait")?.unwrap_or(DEFAULT_WAIT);
    if name.is_empty() {
        return Err(fail(func, "argument 1 (name) must not be empty"));
    }
    let lease_secs = u32::try_from(lease.as_secs().max(1)).unwrap_or(u32::MAX);
    if ctx.locks.borrow().contains_key(name) {
        return Ok(true);
    }
    let (api, handle) = api_of(ctx, func)?;
    let holder = ctx.holder();
    let end = Instant::now() + wait;
    loop {
        ctx.ctl.checked()?;
        let (tx, rx) = mpsc::channel();
        {
            let (api, name, holder) = (api.clone(), name.to_string(), holder.clone());
            handle.spawn(async move {
                let _ = tx.send(lease::try_acquire(&api, &name, &holder, lease_secs).await);
            });
        }
        let problem = match ctx.ctl.wait(&rx)? {
            Ok(Acquire::Acquired(_)) => {
                let lost = ctx.ctl.lock_lost_flag();
                let renew = handle.spawn(renew(api, name.to_string(), holder, lease_secs, lost));
                ctx.locks
                    .borrow_mut()
                    .insert(name.to_string(), Held { renew });
                return Ok(true);
            }
            Ok(Acquire::Held { holder, .. }) => {
                format!(
                    "lock {name:?} is held by {holder} (waited {}s)",
                    wait.as_secs_f64()
                )
            }
            Err(e) if transient(&e) => format!("cannot acquire lock {name:?}: {e}"),
            Err(e) => return Err(fail(func, format!("cannot acquire lock {name:?}: {e}"))),
        };
        let now = Instant::now();
        if now >= end {
            return Err(fail(func, problem));
        }
        ctx.ctl.sleep(POLL.min(end - now))?;
    }
}

/// Renews a held Lock every third of its lease until aborted. A Lock that
/// is gone, taken over or expired is never taken back: `lost` is set, which
/// stops the run (reason LockLost), since what the Lock guarded may already
/// be in someone else's hands.
async fn renew(
    api: Api<LockSpec>,
    name: String,
    holder: String,
    lease_secs: u32,
    lost: Arc<AtomicBool>,
) {
    let every = Duration::from_secs(u64::from(lease_secs)) / 3;
    loop {
        tokio::time::sleep(every.max(Duration::from_millis(300))).await;
        match lease::renew(&api, &name, &holder, lease_secs).await {
            Ok(Renew::Renewed(_)) => {}
            Ok(Renew::Lost(why)) => {
                tracing::warn!("{holder} lost lock {name}: {why}; stopping the run");
                lost.store(true, Ordering::Release);
                return;
            }
            Err(e) => tracing::warn!("cannot renew lock {name} of {holder}: {e}"),
        }
    }
}

fn release(ctx: &RunCtx, func: &str, name: &str) -> mlua::Result<bool> {
    let (api, handle) = api_of(ctx, func)?;
    if let Some(held) = ctx.locks.borrow_mut().remove(name) {
        held.renew.abort();
    }
    let (tx, rx) = mpsc::channel();
    let (name_owned, holder) = (name.to_string(), ctx.holder());
    handle.spawn(async move {
        let _ = tx.send(lease::release(&api, &name_owned, &holder).await);
    });
    // A release is short and must happen even when the task is ending.
    match rx.recv_timeout(RELEASE_TIMEOUT) {
        Ok(Ok(released)) => Ok(released),
        Ok(Err(e)) => Err(fail(func, format!("cannot release lock {name:?}: {e}"))),
        Err(_) => Err(fail(
            func,
            format!("cannot release lock {name:?}: no answer"),
        )),
    }
}

/// Releases every Lock the run still holds (at its end).
pub(super) fn release_all(ctx: &RunCtx) {
    let names: Vec<String> = ctx.locks.borrow().keys().cloned().collect();
    for name in names {
        if let Err(e) = release(ctx, "lock.release", &name) {
            tracing::warn!("taskrun {}/{}: {e}", ctx.namespace, ctx.taskrun);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::assert_errors;

    #[test]
    fn bad_arguments_are_named() {
        assert_errors(&[
            (
                "lock.acquire()",
                "lock.acquire: argument 1 (name) must be a string, got nil",
            ),
            (
                "lock.acquire('l', 5)",
                "lock.acquire: argument 2 (options) must be a table or nil",
            ),
            (
                "lock.acquire('l', {lease = -1})",
                "lock.acquire: option lease must be a non-negative",
            ),
            (
                "lock.acquire('l', {wait = {}})",
                "lock.acquire: option wait must be a number of seconds",
            ),
            (
                "lock.acquire('l', {ttl = 1})",
                "lock.acquire: unknown option \"ttl\"",
            ),
            (
                "lock.acquire('')",
                "lock.acquire: argument 1 (name) must not be empty",
            ),
            (
                "lock.release()",
                "lock.release: argument 1 (name) must be a string",
            ),
            (
                "lock.with('l')",
                "lock.with: argument 2 (fn) must be a function, got nil",
            ),
            // Without an API client (a plain Lua state), the error says so.
            ("lock.acquire('l')", "lock.acquire: locks need the API"),
        ]);
    }
}
