//! A controller runtime in the manner of kube-runtime.
//!
//! - [`reflector`](mod@reflector): an in-memory cache ([`Store`]) of one kind, kept current
//!   by the [`watcher`](crate::watcher).
//! - [`WorkQueue`]: deduplicated, time-scheduled, never hands out an object
//!   that is being reconciled.
//! - [`Controller`]: merges triggers into the queue and runs a
//!   level-triggered reconciler with bounded concurrency, requeues, error
//!   backoff ([`ErrorBackoff`]) and graceful shutdown.
//!
//! A TaskRun controller that also re-runs every TaskRun when agents change:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use sloth_sdk::objects::{AgentSpec, TaskRun, TaskRunSpec};
//! use sloth_sdk::runtime::{Action, Controller, Store, spawn_reflector};
//! use sloth_sdk::{Api, Client, Error, WatchParams};
//! use tokio_stream::wrappers::WatchStream;
//! use tokio_util::sync::CancellationToken;
//!
//! struct Ctx {
//!     runs: Api<TaskRunSpec>,
//!     agents: Store<AgentSpec>,
//! }
//!
//! // Gets the cached TaskRun as of now, whatever event queued it.
//! async fn reconcile(run: Arc<TaskRun>, ctx: Arc<Ctx>) -> Result<Action, Error> {
//!     let _candidates = ctx.agents.state();
//!     let _ = (&run, &ctx.runs);
//!     Ok(Action::requeue(Duration::from_secs(300)))
//! }
//!
//! # async fn example(client: Client, shutdown: CancellationToken) {
//! let runs = Api::<TaskRunSpec>::all(client.clone());
//! let agents = Api::<AgentSpec>::all(client);
//! let params = WatchParams::default();
//! let (agents, agents_changed) = spawn_reflector(&agents, "", params.clone(), shutdown.clone());
//! let ctx = Arc::new(Ctx { runs: runs.clone(), agents });
//! Controller::new(runs, "", params)
//!     .reconcile_all_on(WatchStream::from_changes(agents_changed))
//!     .concurrency(16)
//!     .graceful_shutdown_on(shutdown)
//!     .run(reconcile, |_run, _error, _ctx| Action::backoff(), ctx)
//!     .await;
//! # }
//! ```

pub mod action;
pub mod controller;
pub mod object_ref;
pub mod observer;
pub mod queue;
pub mod reflector;

#[cfg(test)]
mod tests;

pub use action::{Action, ErrorBackoff};
pub use controller::{Controller, DEFAULT_CONCURRENCY, DEFAULT_SHUTDOWN_GRACE};
pub use object_ref::ObjectRef;
pub use observer::{NoObserver, ReconcileObserver};
pub use queue::WorkQueue;
pub use reflector::{Store, Writer, WriterDropped, reflector, spawn_reflector, store};
