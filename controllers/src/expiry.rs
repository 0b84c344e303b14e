//! The one mechanism of the controllers that delete an object some time
//! after a moment (`agent_gc`, `taskrun_ttl`, `state_ttl`): a controller
//! over every object of one kind whose reconciler judges the object at the
//! current time ([`Ttl`]) and acts on the judgment with [`expire`] (a
//! requeue for when it is due, or a delete guarded by its
//! resourceVersion). What differs per kind is only the judgment and what
//! follows a deletion.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sloth_sdk::runtime::{Action, Controller};
use sloth_sdk::{Api, Client, Error, Object, Spec, WatchParams};
use tokio_util::sync::CancellationToken;

use crate::gc::{Ttl, expire};

struct Ctx<J, D> {
    client: Client,
    judge: J,
    deleted: D,
}

/// Deletes objects of kind `S` once `judge` says they are due, until
/// `shutdown`; `deleted` runs after each deletion (logging, cleaning up
/// what the object leaves behind). `name` labels the reconcile metrics.
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
    Controller::new(objects, "", WatchParams::default())
        .observe(crate::metrics::global().controller(name))
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile::<S, J, D, Fut>,
            |_, _: &Error, _| Action::backoff(),
            Arc::new(Ctx {
                client,
                judge,
                deleted,
            }),
        )
        .await;
}

async fn reconcile<S, J, D, Fut>(
    object: Arc<Object<S>>,
    ctx: Arc<Ctx<J, D>>,
) -> Result<Action, Error>
where
    S: Spec,
    J: Fn(&Object<S>, DateTime<Utc>) -> Ttl + Send + Sync + 'static,
    D: Fn(Client, Arc<Object<S>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let now = Utc::now();
    let judgment = (ctx.judge)(&object, now);
    let (action, deleted) = expire(&ctx.client, S::KIND, &object.metadata, judgment, now).await?;
    if deleted {
        (ctx.deleted)(ctx.client.clone(), object).await;
    }
    Ok(action)
}
