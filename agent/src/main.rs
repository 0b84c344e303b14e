//! `sloth-agent`: runs on each machine. Registers its Agent object, renews
//! its heartbeat Lock, runs the TaskRuns bound to it and serves their output.

mod artifacts;
mod blob_cache;
mod concurrency;
mod config;
mod dispatch;
mod fence;
mod heartbeat;
mod instance;
mod logs;
mod lua;
mod masking;
mod metrics;
mod output_copy;
mod output_index;
mod process_group;
mod registration;
mod resources;
mod results;
mod retention;
mod secrets;
mod seed;
mod stamped_lines;
mod stop_request;
mod supervised;
mod supervisor;
mod taskrun;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use sloth_proto::v1::agent_logs_server::AgentLogsServer;
use sloth_sdk::Client;
use sloth_sdk::credentials::CredentialFlags;
use sloth_sdk::objects::AgentPhase;
use sloth_sdk::tls;
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::concurrency::{ActiveRuns, Slots, StopReason};
use crate::config::{Args, Config, STARTUP_BACKOFF};
use crate::fence::{Fence, Timeline};
use crate::heartbeat::{Heartbeat, LastRenewal};
use crate::registration::Registration;
use crate::taskrun::Ctx;

/// How long running TaskRuns may go on after SIGTERM before they are killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long killed runs get to end and write their terminal status.
const KILLED_RUNS_LIMIT: Duration = Duration::from_secs(5);

/// Bound on each goodbye call to the apiserver at shutdown.
const GOODBYE_LIMIT: Duration = Duration::from_secs(2);

fn main() -> anyhow::Result<()> {
    // `sloth-agent supervise ...`: the per-run supervisor when no
    // `sloth-supervise` lies beside the agent (hidden; started by the agent
    // itself, never by hand). No runtime, no logging setup.
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(std::ffi::OsStr::new(supervisor::SUBCOMMAND)) {
        supervisor::main(args);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(agent_main())
}

async fn agent_main() -> anyhow::Result<()> {
    let argv = seed::without_start(std::env::args_os());
    if seed::wants_daemon(&argv) {
        eprintln!("{}", seed::DAEMON_EXPLANATION);
        std::process::exit(seed::DAEMON_EXIT_CODE);
    }
    let args: Args = sloth_sdk::env_flags::parse_from(argv);
    args.log.init();
    let config = Config::from_args(args);
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    run(config, shutdown).await
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the agent with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}

async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let name = config.name.clone();
    // Resolved (and pinned) before anything else: a bad --supervisor is a
    // startup error, not a failure of every run.
    let own_exe = std::env::current_exe().ok();
    let supervisor =
        supervisor::Executable::resolve(config.supervisor.as_deref(), own_exe.as_deref())?;
    tracing::info!("payloads run under {}", supervisor.describe());
    std::fs::create_dir_all(&config.work_dir)
        .with_context(|| format!("cannot create the work dir {}", config.work_dir.display()))?;
    let work_dir = std::fs::canonicalize(&config.work_dir)
        .with_context(|| format!("cannot resolve the work dir {}", config.work_dir.display()))?;
    let options = config
        .credentials
        .options(&CredentialFlags::default())
        .context("bad credential flags")?;
    let client = Client::with_options(&config.servers, &options).context("bad --server")?;
    let logs_tls = logs_tls(&config.credentials)?;

    // One live agent per name: the heartbeat lease first, before this
    // process touches the Agent object or anything its runs left.
    let instance = instance::load_or_create(&work_dir)?;
    let fence = Fence::new(Timeline::new(config.lease));
    let renewed = LastRenewal::default();
    let mut heartbeat = Heartbeat::new(
        client.clone(),
        &name,
        &instance,
        config.lease_seconds(),
        renewed.clone(),
    );
    let Some(sent) = instance::take_lease(&mut heartbeat, &work_dir, &client, &shutdown).await?
    else {
        return Ok(());
    };
    fence.renewed(sent);
    // Fencing: nothing from a previous life of this agent runs on.
    instance::kill_leftovers(&work_dir).await;

    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let bound = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let address = match &logs_tls {
        Some(_) => format!("https://{}", config.report_address_for(bound)),
        None => config.report_address_for(bound),
    };

    if let Some(addr) = config.metrics_address {
        let register = |registry: &mut _| metrics::global().register(registry);
        sloth_sdk::telemetry::serve::serve_metrics("agent", addr, register, shutdown.clone())
            .await
            .with_context(|| format!("cannot listen on --metrics-address {addr}"))?;
    }
    let slots = Slots::new(config.capacity);
    let runs = ActiveRuns::default();
    let registration = Registration::new(
        client.clone(),
        &name,
        address.clone(),
        config.capacity,
        config.labels.clone(),
        work_dir.clone(),
        slots.clone(),
    )
    .reporting(renewed.clone());
    if !register(&registration, &client, &shutdown).await? {
        return Ok(());
    }
    if let Err(e) = registration.write_status(AgentPhase::Ready).await {
        tracing::warn!("cannot write the status of agent {name:?}: {e}");
    }

    let server_stop = CancellationToken::new();
    let admission = match (&logs_tls, &options.token) {
        (Some(_), _) => logs::Admission::Certificate,
        (None, Some(token)) => logs::Admission::TokenProof {
            key: Arc::new(sloth_sdk::logs_auth::key_of_token(token)),
        },
        (None, None) => logs::Admission::Open,
    };
    if matches!(admission, logs::Admission::Open) {
        if bound.ip().is_loopback() {
            tracing::warn!(
                "development mode: the agent has no credentials, so its logs port {bound} serves \
                 any caller; it listens on loopback only (give it --token or a certificate to \
                 serve the apiserver from elsewhere)"
            );
        } else {
            tracing::warn!(
                "the agent has no credentials and its logs port {bound} is not on loopback: \
                 anyone who can reach it can read any TaskRun's output"
            );
        }
    }
    let service_admission = admission.clone();
    let connections = tls::accept(listener, logs_tls, server_stop.clone());
    let mut server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AgentLogsServer::with_interceptor(
                logs::LogService::new(work_dir.clone(), runs.clone(), service_admission),
                move |request| logs::admit(request, &admission),
            ))
            .serve_with_incoming_shutdown(
                ReceiverStream::new(connections).map(Ok::<_, std::io::Error>),
                server_stop.clone().cancelled_owned(),
            ),
    );
    let background = CancellationToken::new();
    let superseded = CancellationToken::new();
    let heartbeat_for_release = Heartbeat::new(
        client.clone(),
        &name,
        &instance,
        config.lease_seconds(),
        renewed.clone(),
    );
    let renewing =
        tokio::spawn(heartbeat.run(fence.clone(), background.clone(), superseded.clone()));
    tokio::spawn(fence::enforce(fence.subscribe(), runs.clone()));
    let refreshing = tokio::spawn(heartbeat::refresh_status(
        registration.clone(),
        background.clone(),
    ));
    // `slothctl agent stop`: a drain like SIGTERM's, with the grace asked for.
    let stop_grace = Arc::new(std::sync::OnceLock::new());
    tokio::spawn({
        let (client, name, shutdown, background) = (
            client.clone(),
            name.clone(),
            shutdown.clone(),
            background.clone(),
        );
        let stop_grace = stop_grace.clone();
        async move {
            if let Some(grace) = stop_request::wait(client, &name, background).await {
                tracing::info!(
                    "stop requested (slothctl agent stop): draining with a grace of {grace:?}"
                );
                let _ = stop_grace.set(grace);
                shutdown.cancel();
            }
        }
    });
    // Tests and scripts wait for this line.
    let mut stdout = std::io::stdout();
    if let Err(e) =
        writeln!(stdout, "agent {name} ready logs={address}").and_then(|()| stdout.flush())
    {
        tracing::warn!("cannot print the ready line to stdout: {e}");
    }
    tracing::info!(
        "agent {name} ready: capacity={} logs={address} listening={bound} work_dir={}",
        config.capacity,
        work_dir.display()
    );
    // systemd's Type=notify: registered, leased and serving its logs port.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!("cannot tell systemd the agent is ready: {e}");
    }

    let work_dir_for_blobs = work_dir.clone();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        agent: name.clone(),
        retention: retention::Retention::new(work_dir.clone(), config.max_output_bytes),
        work_dir,
        workdir_roots: config.workdir_roots.clone(),
        runs: runs.clone(),
        slots,
        draining: shutdown.clone(),
        fence: fence.clone(),
        supervisor,
        blobs: blob_cache::BlobCache::new(&work_dir_for_blobs, config.blob_cache_bytes),
    });
    let mut outcome = Ok(());
    tokio::select! {
        () = dispatch::run(ctx, shutdown.clone()) => {}
        () = superseded.cancelled() => {
            // Another instance took the lease (this one was frozen or cut
            // off past it): its runs must not go on beside that one's.
            fence.revoke();
            outcome = Err(anyhow::anyhow!(
                "another instance took over the heartbeat lease of agent {name:?}; \
                 this instance ({instance}) stopped its runs and exits"
            ));
        }
        result = &mut server => {
            shutdown.cancel();
            background.cancel();
            return match result {
                Ok(Ok(())) => Err(anyhow::anyhow!("the logs server stopped unexpectedly")),
                Ok(Err(e)) => Err(e).context("the logs server failed"),
                Err(e) => Err(e).context("the logs server task failed"),
            };
        }
    }

    // Shutdown: nothing new is claimed; running TaskRuns get a grace, while
    // the lease is still renewed (their supervisors keep them alive).
    shutdown.cancel();
    let grace = stop_grace.get().copied().unwrap_or(SHUTDOWN_GRACE);
    let held = runs.len();
    if held > 0 && outcome.is_ok() {
        tracing::info!("waiting up to {grace:?} for {held} running taskruns");
    }
    if outcome.is_err() || !runs.wait_empty(grace).await {
        tracing::warn!("killing {} taskruns still running", runs.len());
        runs.stop_all(StopReason::Shutdown);
        if !runs.wait_empty(KILLED_RUNS_LIMIT).await {
            tracing::warn!(
                "{} taskruns did not record their end before the agent stopped",
                runs.len()
            );
        }
    }
    // No renewal and no Ready status may land after the goodbye below.
    background.cancel();
    for task in [renewing, refreshing] {
        if tokio::time::timeout(GOODBYE_LIMIT, task).await.is_err() {
            tracing::warn!("a heartbeat task did not stop in time");
        }
    }
    if outcome.is_ok() {
        goodbye(&registration, &heartbeat_for_release).await;
    }
    server_stop.cancel();
    if tokio::time::timeout(GOODBYE_LIMIT, server).await.is_err() {
        tracing::warn!("log streams still open at exit were cut");
    }
    tracing::info!("agent {name} stopped");
    outcome
}

/// Gives the heartbeat lease up, then marks the agent NotReady: in this
/// order, the agent-lifecycle controller never sees a NotReady agent with a
/// live lease (which it would mark Ready again).
async fn goodbye(registration: &Registration, heartbeat: &Heartbeat) {
    let name = &registration.name;
    match tokio::time::timeout(GOODBYE_LIMIT, heartbeat.release()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("cannot release the heartbeat lock: {e}"),
        Err(_) => tracing::warn!("cannot release the heartbeat lock: timed out"),
    }
    match tokio::time::timeout(
        GOODBYE_LIMIT,
        registration.write_status(AgentPhase::NotReady),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!("cannot mark agent {name:?} NotReady: {e}"),
        Err(_) => tracing::warn!("cannot mark agent {name:?} NotReady: timed out"),
    }
}

/// Creates or updates the Agent object, retrying while no apiserver answers.
/// False when shutdown came first.
async fn register(
    registration: &Registration,
    client: &Client,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    let mut retries = STARTUP_BACKOFF.retries();
    loop {
        let delay = retries.next_delay();
        match registration.register().await {
            Ok(_) => return Ok(true),
            Err(e) if e.is_transient() => {
                tracing::warn!(
                    "cannot register agent {:?} with {} (retrying in {delay:?}): {e}",
                    registration.name,
                    client.endpoints()
                );
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot register agent {:?} with {}",
                        registration.name,
                        client.endpoints()
                    )
                });
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(false),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// The TLS configuration of the logs port: with a certificate, the port
/// serves TLS and requires client certificates from the fleet's CA.
fn logs_tls(credentials: &CredentialFlags) -> anyhow::Result<Option<Arc<tls::ServerTls>>> {
    let (Some(cert), Some(key), Some(ca)) = (
        &credentials.cert_file,
        &credentials.key_file,
        &credentials.ca_file,
    ) else {
        return Ok(None);
    };
    let tls = tls::ServerTls::load(tls::ServerTlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: Some(ca.clone()),
        client_certificate_optional: false,
    })
    .context("cannot set up TLS for the logs port")?;
    Ok(Some(Arc::new(tls)))
}
