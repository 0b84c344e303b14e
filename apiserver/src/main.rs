//! `sloth-apiserver`: stores Sloth's objects and serves the resource API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use futures_util::StreamExt;
use sloth_apiserver::access::audit::AuditLog;
use sloth_apiserver::access::guard::Guard;
use sloth_apiserver::access::limits::WatchLimit;
use sloth_apiserver::api::grpc::GrpcService;
use sloth_apiserver::api::http;
use sloth_apiserver::api::http::{ConnListener, HttpPeer};
use sloth_apiserver::api::logs::AgentDialer;
use sloth_apiserver::api::rest::Rest;
use sloth_apiserver::cache::{CacheOptions, WatchCache};
use sloth_apiserver::encryption::{EncryptingStore, GENERATED_KEY_FILE, KeyRing, rewrite};
use sloth_apiserver::maintenance::backup::Backups;
use sloth_apiserver::maintenance::compaction;
use sloth_apiserver::metrics::Metrics;
use sloth_apiserver::registry::resources::Resources;
use sloth_apiserver::store::Store;
use sloth_apiserver::store::embedded::{EmbeddedOptions, EmbeddedStore};
use sloth_apiserver::store::etcd::{EtcdOptions, EtcdStore};
use sloth_proto::v1::resources_server::ResourcesServer;
use sloth_sdk::tls::accept;
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

mod artifact_args;
mod in_process;
mod security;
use security::Security;

/// The largest gRPC message accepted: above the object size limit (1 MiB),
/// so that oversized objects get admission's clear error rather than a
/// transport one, and small enough that a client cannot pin much memory.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Concurrent calls (watches included) on one HTTP/2 connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 1_000;
/// The gRPC port when --listen is not given.
const DEFAULT_GRPC_PORT: u16 = 50053;
/// The HTTP port when --http-listen is not given.
const DEFAULT_HTTP_PORT: u16 = 8080;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Embedded,
    Etcd,
}

#[derive(Parser, Debug)]
#[command(
    name = "sloth-apiserver",
    version,
    about = "Sloth's API server",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// gRPC API address [default: 0.0.0.0:50053 with --token-file or
    /// --tls-ca-file, else 127.0.0.1:50053].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// /healthz, /readyz, /metrics address [default: port 8080, on the
    /// interfaces --listen defaults to].
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Serve TLS with this certificate (PEM; reloaded when it changes).
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// Require client certificates signed by this CA (mutual TLS); their
    /// subject CN is the user, O the role. Also checks agents' certificates.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    tls_ca_file: Option<PathBuf>,
    /// Bearer tokens, one `token,user,role` a line (reloaded when it changes).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Append one JSON line per mutating or refused call to FILE.
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Watches one client (one user, or one connection without
    /// authentication) may hold open; 0: no limit.
    #[arg(long, default_value_t = 1_000)]
    max_watches_per_client: usize,
    /// Allow browsers' cross-origin requests to the REST API from these
    /// origins (comma-separated, e.g. `https://ops.example.com`); none: CORS off.
    #[arg(
        long,
        env = "SLOTH_CORS_ALLOWED_ORIGINS",
        value_name = "ORIGINS",
        value_delimiter = ','
    )]
    cors_allowed_origins: Vec<axum::http::HeaderValue>,
    /// A call that has not answered by then fails with DeadlineExceeded
    /// (streams: until their first response).
    #[arg(long, default_value = "60s", value_parser = sloth_sdk::duration::parse_flag)]
    request_timeout: Duration,
    /// Storage backend.
    #[arg(long, value_enum, default_value = "embedded")]
    store: StoreKind,
    /// Directory of the embedded store's file.
    #[arg(long, default_value = "./.sloth/data")]
    data_dir: PathBuf,
    /// etcd endpoints (with --store etcd).
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    etcd_endpoints: Vec<String>,
    /// Prepended to every etcd key (keys are `<prefix>/sloth/...`), so that
    /// several installations can share one etcd.
    #[arg(long, default_value = "")]
    etcd_prefix: String,
    /// Keys for Secret values (AES-256-GCM), one `NAME:BASE64` a line: the
    /// first encrypts, all decrypt. Default with the embedded store: a key
    /// file generated in --data-dir; required on etcd to write Secrets.
    #[arg(long, value_name = "FILE")]
    encryption_key_file: Option<PathBuf>,
    /// Also run every controller in this process (single-node mode).
    #[arg(long)]
    controllers: bool,
    /// With --controllers: how long finished ad-hoc TaskRuns (ones no
    /// Workflow owns) are kept; a TaskRun's spec.ttlAfterFinished overrides it.
    #[arg(long, default_value = "24h", value_parser = sloth_sdk::duration::parse_flag)]
    taskrun_ttl: Duration,
    #[cfg(feature = "controllers")]
    #[command(flatten)]
    agent_gc: sloth_controllers::agent_gc::AgentGcFlag,
    /// How much watch history to keep for resuming clients.
    #[arg(long, default_value = "5m", value_parser = sloth_sdk::duration::parse_flag)]
    history: Duration,
    /// How often to compact history.
    #[arg(long, default_value = "1m", value_parser = sloth_sdk::duration::parse_flag)]
    compaction_interval: Duration,
    /// Recent events the watch cache keeps per kind (watches resume from
    /// within them); 0 turns the cache off: one store watch per client watch.
    #[arg(long, default_value_t = 10_000)]
    watch_cache_events: usize,
    /// Updates buffered per client watch; a watch further behind ends with
    /// Expired (the client relists) instead of growing memory.
    #[arg(long, default_value_t = 1_000)]
    watch_cache_buffer: usize,
    /// How often idle watches get a BOOKMARK.
    #[arg(long, default_value = "5s", value_parser = sloth_sdk::duration::parse_flag)]
    bookmark_interval: Duration,
    /// Tests only: while this file exists, writes to the embedded store's
    /// file fail with ENOSPC (a full disk, switched on and off at will).
    #[arg(long, hide = true, env = "SLOTH_TEST_FAULT_FILE", value_name = "FILE")]
    test_fault_file: Option<PathBuf>,
    #[command(flatten)]
    artifacts: artifact_args::ArtifactArgs,
    #[command(flatten)]
    log: sloth_sdk::telemetry::LogFlags,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Copy every object of a stopped embedded store into etcd (uids,
    /// labels and encrypted Secrets unchanged), then start the apiservers
    /// with --store etcd. Safe to run again: identical keys are skipped,
    /// different ones are never overwritten.
    Migrate(MigrateArgs),
}

#[derive(clap::Args, Debug)]
struct MigrateArgs {
    /// The embedded store's data dir (its apiserver stopped).
    #[arg(long, value_name = "DIR")]
    from_data_dir: PathBuf,
    /// etcd endpoints to copy into (comma-separated).
    #[arg(long, value_name = "URL", value_delimiter = ',', required = true)]
    to_etcd: Vec<String>,
    /// The --etcd-prefix the apiservers will run with.
    #[arg(long, default_value = "")]
    etcd_prefix: String,
    #[command(flatten)]
    log: sloth_sdk::telemetry::LogFlags,
}

/// `sloth-apiserver migrate`.
async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let path = args.from_data_dir.join("sloth.redb");
    if !path.is_file() {
        bail!("--from-data-dir: no store file {}", path.display());
    }
    let from = EmbeddedStore::open(&path, EmbeddedOptions::default())
        .await
        .with_context(|| {
            format!(
                "cannot open the embedded store {} (stop its apiserver first)",
                path.display()
            )
        })?;
    let to = EtcdStore::new(EtcdOptions {
        endpoints: args.to_etcd.clone(),
        prefix: etcd_prefix(&args.etcd_prefix)?,
        ..EtcdOptions::default()
    })
    .await
    .context("cannot set up the etcd client")?;
    to.check()
        .await
        .with_context(|| format!("--to-etcd {}", args.to_etcd.join(",")))?;
    let copied = sloth_apiserver::maintenance::migrate::copy_all(&*from, &*to).await;
    from.close().await.context("closing the embedded store")?;
    let done = copied.context("migration failed")?;
    println!(
        "migrated {} keys ({} already there) from {} at revision {} to {}",
        done.copied,
        done.unchanged,
        path.display(),
        done.revision,
        args.to_etcd.join(",")
    );
    Ok(())
}

/// `--etcd-prefix` without its trailing slash; it must be absolute.
fn etcd_prefix(flag: &str) -> anyhow::Result<String> {
    let prefix = flag.trim_end_matches('/').to_string();
    if !prefix.is_empty() && !prefix.starts_with('/') {
        bail!("--etcd-prefix must start with '/' (got {flag:?})");
    }
    Ok(prefix)
}

/// The keys for Secrets: the key file given, or on the embedded store one
/// generated in the data dir (said once, when it is created).
fn encryption_keys(args: &Args) -> anyhow::Result<Option<Arc<KeyRing>>> {
    if let Some(path) = &args.encryption_key_file {
        let ring = KeyRing::load(path)?;
        tracing::info!(path = %path.display(), keys = %ring.names().join(","), "encryption keys loaded");
        return Ok(Some(Arc::new(ring)));
    }
    match args.store {
        StoreKind::Embedded => {
            let path = args.data_dir.join(GENERATED_KEY_FILE);
            let (ring, generated) = KeyRing::load_or_generate(&path)?;
            if generated {
                tracing::warn!(
                    path = %path.display(),
                    "generated an encryption key for Secrets (mode 0600); back it up with the \
                     data dir, or pass --encryption-key-file"
                );
            }
            Ok(Some(Arc::new(ring)))
        }
        StoreKind::Etcd => {
            tracing::info!(
                "no --encryption-key-file: Secrets cannot be written to etcd until one is given"
            );
            Ok(None)
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = sloth_sdk::env_flags::parse();
    if let Some(Command::Migrate(migration)) = args.command {
        migration.log.init();
        return migrate(migration).await;
    }
    args.log.init();
    in_process::check_available(args.controllers)?;
    // Bad TLS or token files stop the server before it opens the store.
    let security = Security::from_args(&args)?;
    // The embedded store is closed at shutdown (its file is then free).
    let (store, embedded): (Arc<dyn Store>, Option<Arc<EmbeddedStore>>) = match args.store {
        StoreKind::Embedded => {
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
            let path = args.data_dir.join("sloth.redb");
            let embedded = EmbeddedStore::open(
                &path,
                EmbeddedOptions {
                    progress_interval: args.bookmark_interval,
                    fault_switch: args.test_fault_file.clone(),
                    ..EmbeddedOptions::default()
                },
            )
            .await
            .with_context(|| format!("cannot open the embedded store {}", path.display()))?;
            tracing::info!(path = %path.display(), revision = embedded.current_revision().await?, "store open");
            (embedded.clone(), Some(embedded))
        }
        StoreKind::Etcd => {
            let prefix = etcd_prefix(&args.etcd_prefix)?;
            let etcd = EtcdStore::new(EtcdOptions {
                endpoints: args.etcd_endpoints.clone(),
                prefix,
                progress_interval: args.bookmark_interval,
                ..EtcdOptions::default()
            })
            .await
            .context("cannot set up the etcd client")?;
            match etcd.check().await {
                Ok(revision) => {
                    tracing::info!(endpoints = %args.etcd_endpoints.join(","), revision, "etcd store connected")
                }
                // Serve anyway: /readyz says not ready until etcd answers,
                // and a load balancer keeps traffic away meanwhile.
                Err(e) => tracing::error!(
                    "{e}; serving, but /readyz reports not ready until etcd answers"
                ),
            }
            (etcd, None)
        }
    };
    let keys = encryption_keys(&args)?;
    if let Some(keys) = keys.clone() {
        // After a rotation (a new key first): move every Secret to it, so
        // the old key can be removed. In the background: etcd may be away.
        let backend = store.clone();
        tokio::spawn(async move {
            match rewrite::rewrite_stale(&backend, &keys).await {
                Ok(count) => tracing::info!(
                    count,
                    key = keys.primary().name,
                    "Secrets re-encrypted with the first key"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot re-encrypt Secrets with the first key")
                }
            }
        });
    }
    let store: Arc<dyn Store> = Arc::new(EncryptingStore::new(store, keys));

    let shutdown = CancellationToken::new();
    let mut registry = sloth_sdk::telemetry::metrics::registry("apiserver");
    if args.controllers {
        in_process::register_metrics(&mut registry);
    }
    let metrics = Arc::new(Metrics::new(registry));
    let grpc_listen = args
        .listen
        .unwrap_or_else(|| security.default_addr(DEFAULT_GRPC_PORT));
    let http_listen = args
        .http_listen
        .unwrap_or_else(|| security.default_addr(DEFAULT_HTTP_PORT));
    security.warn_if_open(grpc_listen);
    let grpc_listener = TcpListener::bind(grpc_listen)
        .await
        .with_context(|| format!("cannot listen on {grpc_listen}"))?;
    let http_listener = TcpListener::bind(http_listen)
        .await
        .with_context(|| format!("cannot listen on {http_listen}"))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;

    // In-process controllers authenticate with a token that never leaves
    // the process, on a loopback port of their own, so they need none of
    // the certificates remote clients need.
    let internal = if args.controllers && security.authenticator.enabled() {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .context("cannot listen on loopback for the in-process controllers")?;
        Some((
            listener,
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
        ))
    } else {
        None
    };
    let mut authenticator = security.authenticator;
    if let Some((_, token)) = &internal {
        authenticator = authenticator.with_internal_token(token, "system:controllers");
    }
    let audit = match &args.audit_log {
        Some(path) => Some(
            AuditLog::open(path)
                .with_context(|| format!("cannot open the audit log {}", path.display()))?,
        ),
        None => None,
    };
    let guard = Arc::new(Guard::new(
        authenticator,
        audit,
        WatchLimit::new(args.max_watches_per_client),
    ));

    let artifact_store = args
        .artifacts
        .open(&args.data_dir, args.store == StoreKind::Etcd)?;
    let artifact_gc = tokio::spawn(sloth_apiserver::artifacts::gc::run(
        artifact_store.clone(),
        Resources::new(store.clone()),
        args.artifacts.artifact_gc_interval,
        args.artifacts.artifact_gc_grace,
        shutdown.clone(),
    ));
    let mut service = GrpcService::new(
        Resources::new(store.clone()),
        metrics.clone(),
        shutdown.clone(),
        args.bookmark_interval,
    )
    .with_guard(guard.clone())
    .with_agent_dialer(AgentDialer::new(security.agent_tls))
    .with_artifacts(artifact_store.clone());
    if let Some(embedded) = &embedded {
        service = service.with_backups(Arc::new(Backups::new(
            embedded.clone(),
            args.data_dir.clone(),
        )));
    }
    if args.watch_cache_events > 0 {
        // One store watch per kind, started on the kind's first watch.
        service = service.with_watch_cache(WatchCache::new(
            store.clone(),
            metrics.clone(),
            CacheOptions {
                window: args.watch_cache_events,
                watcher_buffer: args.watch_cache_buffer,
            },
            shutdown.clone(),
        ));
    } else {
        tracing::info!("watch cache off: every watch is a store watch");
    }
    // The REST API calls the same handlers.
    let rest = Rest::new(service.clone(), guard.clone(), shutdown.clone())
        .with_cors_origins(args.cors_allowed_origins.clone());
    let connections = accept(grpc_listener, security.grpc_tls.clone(), shutdown.clone());
    let (internal_listener, internal_token) = match internal {
        Some((listener, token)) => (Some(listener), Some(token)),
        None => (None, None),
    };
    let internal_addr = match &internal_listener {
        Some(listener) => Some(listener.local_addr()?),
        None => None,
    };
    let mut incoming = ReceiverStream::new(connections).boxed();
    if let Some(listener) = internal_listener {
        let plain = ReceiverStream::new(accept(listener, None, shutdown.clone()));
        incoming = futures_util::stream::select(incoming, plain).boxed();
    }
    let grpc = tonic::transport::Server::builder()
        .timeout(args.request_timeout)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(
            ResourcesServer::new(service)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(
            incoming.map(Ok::<_, std::io::Error>),
            shutdown.clone().cancelled_owned(),
        );
    let http = axum::serve(
        ConnListener::new(
            accept(http_listener, security.http_tls.clone(), shutdown.clone()),
            http_addr,
        ),
        http::router(
            store.clone(),
            metrics.clone(),
            shutdown.clone(),
            guard,
            Some(rest),
        )
        .into_make_service_with_connect_info::<HttpPeer>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let compactor = tokio::spawn(compaction::run(
        store.clone(),
        args.compaction_interval,
        args.history,
        shutdown.clone(),
    ));

    let controllers = if args.controllers {
        let url = format!(
            "http://{}",
            internal_addr.unwrap_or_else(|| loopback(grpc_addr))
        );
        let client = sloth_sdk::Client::with_options(
            &[url],
            &sloth_sdk::ClientOptions {
                tls: None,
                token: internal_token,
            },
        )
        .context("cannot make a client for the in-process controllers")?;
        tracing::info!("running the controllers in this process");
        Some(in_process::spawn(
            client,
            grpc_addr,
            &args,
            shutdown.clone(),
        ))
    } else {
        None
    };

    // Tests and scripts read this line to learn the ports the OS picked.
    println!("listening grpc={grpc_addr} http={http_addr}");
    tracing::info!(%grpc_addr, %http_addr, "serving");
    // systemd's Type=notify: the unit is started once the ports are bound.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!("cannot tell systemd the apiserver is ready: {e}");
    }

    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        signals.cancel();
    });
    let (grpc_result, http_result) = tokio::join!(grpc, http);
    grpc_result.context("gRPC server failed")?;
    http_result.context("HTTP server failed")?;
    shutdown.cancel();
    let _ = compactor.await;
    let _ = artifact_gc.await;
    if let Some(controllers) = controllers {
        let _ = controllers.await;
    }
    if let Some(embedded) = embedded {
        embedded.close().await.context("closing the store")?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The address in-process clients dial: loopback when bound to all interfaces.
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
