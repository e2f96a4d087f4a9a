//! The Mirsal router: the platform's central service.
//!
//! It consumes every submission from `mirsal.ingress`, verifies and authorizes it,
//! records it in sled, fans letters out to their recipients' inboxes and receipts back
//! to the letters' senders, answers with signed notices, and keeps a hash-chained audit
//! log of everything it did. See [`pipeline`] for the order of the steps and why.
//!
//! # Layout
//! - [`config`]: the TOML configuration, environment overrides and validation.
//! - [`directory`]: the agencies, from a JSON file reloaded when it changes.
//! - [`pipeline`]: verify → authorize → dedupe → persist → fan out → ack.
//! - [`tracking`]: the per-recipient status machine.
//! - [`notices`]: accepted, rejected and overdue notices, signed by the platform.
//! - [`metrics`]: the Prometheus metrics.
//! - [`overdue`]: delivery SLA and `reply_due` checks.
//! - [`requests`]: directory snapshots and re-deliveries asked for over the bus.
//! - [`store`]: sled behind one small API, with group-committed flushes.
//! - [`records`]: the stored record types.
//! - [`audit`]: the hash chain, its signed heads and `mirsal audit verify`.
//! - [`http`]: health, metrics, the operators' API and the dashboard; [`views`] and
//!   [`deadletters`] behind it.
//!
//! [`run`] is the whole service; `main.rs` only parses arguments, sets up logging and
//! turns signals into the shutdown future.

pub mod audit;
pub mod config;
pub mod deadletters;
pub mod directory;
pub mod http;
pub mod metrics;
pub mod notices;
pub mod overdue;
pub mod pipeline;
pub mod records;
pub mod requests;
pub mod store;
pub mod tracking;
pub mod views;

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::Context as _;
use mirsal_bus::{Bus, BusConfig, Publisher, TlsConfig, topology};
use mirsal_envelope::{Limits, Policy, SigningIdentity, TrustStore, Verifier};
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{config::RouterConfig, directory::Directory, notices::Notary, store::Store};

pub use metrics::Metrics;

/// Everything the pipeline shares.
pub(crate) struct Router {
    config: RouterConfig,
    store: Store,
    bus: Bus,
    publisher: Publisher,
    verifier: RwLock<Arc<Verifier>>,
    directory: Arc<RwLock<Arc<Directory>>>,
    notary: Notary,
    cpu: Semaphore,
    locks: Vec<tokio::sync::Mutex<()>>,
    metrics: Arc<Metrics>,
    /// Whether the ingress consumer is subscribed.
    consuming: tokio::sync::watch::Receiver<bool>,
    /// Queue figures from the management API, refreshed in the background.
    queues: RwLock<BTreeMap<String, views::QueueView>>,
    /// The dead letters kept in the store: their lock and count.
    dead_letters: deadletters::DeadLetters,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").field("bus", &self.bus).finish_non_exhaustive()
    }
}

const LOCK_STRIPES: usize = 1024;

impl Router {
    fn verifier(&self) -> Arc<Verifier> {
        self.verifier.read().map_or_else(|p| Arc::clone(&p.into_inner()), |v| Arc::clone(&v))
    }

    fn queues(&self) -> BTreeMap<String, views::QueueView> {
        self.queues.read().map(|q| q.clone()).unwrap_or_default()
    }

    fn is_consuming(&self) -> bool {
        *self.consuming.borrow()
    }

    /// Connected to the broker and consuming the ingress queue.
    fn is_ready(&self) -> bool {
        self.bus.is_connected() && self.is_consuming()
    }

    fn directory(&self) -> Arc<Directory> {
        self.directory.read().map_or_else(|p| Arc::clone(&p.into_inner()), |d| Arc::clone(&d))
    }

    /// Serializes work on one letter (its fan-out, its receipts, its overdue checks).
    async fn lock(&self, id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut hash = 0xcbf2_9ce4_8422_2325_u64;
        for byte in id.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.locks[(hash % LOCK_STRIPES as u64) as usize].lock().await
    }
}

fn policy(config: &RouterConfig) -> Policy {
    Policy {
        limits: Limits { max_envelope_bytes: config.policy.max_envelope_bytes, ..Limits::default() },
        max_clock_skew: config.policy.max_clock_skew,
        max_age: config.policy.max_age,
    }
}

fn load_verifier(config: &RouterConfig) -> anyhow::Result<Verifier> {
    let ca = std::fs::read(&config.pki.ca).with_context(|| format!("reading {}", config.pki.ca.display()))?;
    let crl =
        std::fs::read(&config.pki.crl).with_context(|| format!("reading {}", config.pki.crl.display()))?;
    let trust = TrustStore::from_pem(&ca, &[&crl]).context("loading the platform CA and CRL")?;
    Ok(Verifier::new(trust, policy(config)))
}

fn bus_config(config: &RouterConfig) -> anyhow::Result<BusConfig> {
    let read = |path: &Option<std::path::PathBuf>| -> anyhow::Result<Option<Vec<u8>>> {
        path.as_ref()
            .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
            .transpose()
    };
    let tls = TlsConfig {
        ca_pem: read(&config.broker.tls_ca)?.map(|b| String::from_utf8_lossy(&b).into_owned()),
        client_certificate_pem: read(&config.broker.tls_certificate)?,
        client_key_pem: read(&config.broker.tls_key)?,
    };
    Ok(BusConfig { tls, ..BusConfig::new(config.broker.url.clone(), "mirsal-router") })
}

/// A running router's shared counters, for tests and the benchmark.
pub type SharedMetrics = Arc<Metrics>;

/// Runs the router until `shutdown` completes, then stops consuming, lets in-flight
/// work finish (for at most the configured grace), signs the audit chain head and
/// flushes. `metrics` receives the running counters.
///
/// # Errors
/// Start-up failures: unreadable PKI files, a store that cannot be opened (another
/// router holds it), a bad directory file.
pub async fn run(
    config: RouterConfig,
    metrics: SharedMetrics,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let verifier = load_verifier(&config)?;
    let key = std::fs::read(&config.pki.platform_key)
        .with_context(|| format!("reading {}", config.pki.platform_key.display()))?;
    let certificate = std::fs::read(&config.pki.platform_certificate)
        .with_context(|| format!("reading {}", config.pki.platform_certificate.display()))?;
    let identity =
        SigningIdentity::from_pem(&key, &certificate).context("loading the platform signing key")?;
    anyhow::ensure!(
        identity.agency().is_platform(),
        "the platform certificate's CN is {}, not {}",
        identity.agency(),
        mirsal_envelope::PLATFORM_CODE
    );
    let directory = Arc::new(RwLock::new(Arc::new(Directory::load(&config.directory.path)?)));
    std::fs::create_dir_all(&config.storage.data_dir)
        .with_context(|| format!("creating {}", config.storage.data_dir.display()))?;
    let store =
        Store::open_with_cache(&config.storage.data_dir, config.storage.cache_mb.saturating_mul(1024 * 1024))
            .with_context(|| {
                format!(
                    "opening the store in {} (is another router using it?)",
                    config.storage.data_dir.display()
                )
            })?;
    let dead_letters = deadletters::DeadLetters::open(&store).context("counting the dead letters")?;
    metrics.dead_letters_kept(dead_letters.count());

    let settings = topology::QueueSettings { delivery_limit: config.broker.delivery_limit };
    let setup_directory = Arc::clone(&directory);
    let bus = Bus::start(
        bus_config(&config)?,
        Arc::new(move |connection| {
            let directory =
                setup_directory.read().map_or_else(|p| Arc::clone(&p.into_inner()), |d| Arc::clone(&d));
            Box::pin(async move {
                let channel = connection.create_channel().await.map_err(|source| {
                    mirsal_bus::BusError::Amqp { context: "opening the set-up channel".into(), source }
                })?;
                topology::declare_core(&channel, settings).await?;
                let _ = channel.close(200, "declared".into()).await;
                declare_inboxes(&connection, &directory, settings).await;
                Ok(())
            })
        }),
    );
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut deliveries = bus.consume(topology::INGRESS_QUEUE, config.broker.prefetch, "mirsal-router");
    let http_listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding the HTTP API to {}", config.http.listen))?;
    let router = Arc::new(Router {
        consuming: deliveries.subscription(),
        queues: RwLock::new(BTreeMap::new()),
        dead_letters,
        publisher: bus.publisher(),
        notary: Notary::new(identity, policy(&config)),
        verifier: RwLock::new(Arc::new(verifier)),
        directory,
        cpu: Semaphore::new(workers),
        locks: (0..LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        metrics,
        store,
        bus: bus.clone(),
        config,
    });

    let mut background = JoinSet::new();
    background.spawn(watch_files(Arc::clone(&router)));
    background.spawn(check_overdue(Arc::clone(&router)));
    background.spawn(sign_heads(Arc::clone(&router)));
    background.spawn(poll_queues(Arc::clone(&router)));
    background.spawn(deadletters::keep(Arc::clone(&router)));
    let http_stop = tokio_util::sync::CancellationToken::new();
    let http =
        tokio::spawn(http::serve_on(Arc::clone(&router), http_listener, http_stop.clone().cancelled_owned()));

    let mut in_flight = JoinSet::new();
    tokio::pin!(shutdown);
    tracing::info!(prefetch = router.config.broker.prefetch, "router started");
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            delivery = deliveries.next() => match delivery {
                Some(incoming) => { in_flight.spawn(pipeline::handle(Arc::clone(&router), incoming)); }
                None => break,
            },
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
        }
    }

    tracing::info!(in_flight = in_flight.len(), "shutting down: draining in-flight work");
    let grace = router.config.shutdown.grace;
    let drained = tokio::time::timeout(grace, async { while in_flight.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            left = in_flight.len(),
            ?grace,
            "grace period over; the broker redelivers what was not finished"
        );
        in_flight.abort_all();
    }
    drop(deliveries);
    http_stop.cancel();
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "the HTTP API stopped with an error"),
        Err(error) => tracing::warn!(%error, "the HTTP API task failed"),
    }
    background.shutdown().await;
    in_flight.shutdown().await;
    if let Err(error) = audit::sign_head(&router.store, router.notary.identity(), chrono::Utc::now()) {
        tracing::warn!(%error, "could not sign the audit chain head at shutdown");
    }
    router.bus.shutdown().await;
    let router =
        Arc::try_unwrap(router).map_err(|_| anyhow::anyhow!("router state still shared at shutdown"))?;
    router.store.close().await.context("closing the store at shutdown")?;
    tracing::info!("router stopped");
    Ok(())
}

/// Reloads the directory and the CRL when their files change, and declares the inbox
/// of every agency that appears.
async fn watch_files(router: Arc<Router>) {
    let config = &router.config;
    let stamp = |path: &std::path::Path| std::fs::metadata(path).ok().map(|m| (m.modified().ok(), m.len()));
    let mut directory_stamp = stamp(&config.directory.path);
    let mut crl_stamp = stamp(&config.pki.crl);
    let mut interval = tokio::time::interval(config.directory.reload_interval);
    loop {
        interval.tick().await;
        let now = stamp(&config.directory.path);
        if now != directory_stamp {
            match Directory::load(&config.directory.path) {
                Ok(directory) => {
                    directory_stamp = now;
                    let settings =
                        topology::QueueSettings { delivery_limit: router.config.broker.delivery_limit };
                    match router.bus.connection().await {
                        Ok(connection) => declare_inboxes(&connection, &directory, settings).await,
                        Err(error) => {
                            tracing::warn!(%error, "not connected; inboxes are declared on reconnect")
                        }
                    }
                    let count = directory.agencies().count();
                    if let Ok(mut current) = router.directory.write() {
                        *current = Arc::new(directory);
                    }
                    tracing::info!(agencies = count, "directory reloaded");
                }
                Err(error) => tracing::error!(%error, "keeping the previous directory"),
            }
        }
        let now = stamp(&config.pki.crl);
        if now != crl_stamp {
            match load_verifier(config) {
                Ok(verifier) => {
                    crl_stamp = now;
                    if let Ok(mut current) = router.verifier.write() {
                        *current = Arc::new(verifier);
                    }
                    tracing::info!("CRL reloaded");
                }
                Err(error) => tracing::error!(error = format!("{error:#}"), "keeping the previous CRL"),
            }
        }
    }
}

/// Declares every agency's inbox. One that cannot be declared (an existing queue with
/// other arguments, say) is reported and skipped, so it does not keep the others, or the
/// router, from working; letters to it are retried until it exists.
async fn declare_inboxes(
    connection: &mirsal_bus::lapin::Connection,
    directory: &Directory,
    settings: topology::QueueSettings,
) {
    let mut channel = None;
    for agency in directory.agencies() {
        if channel.is_none() {
            match connection.create_channel().await {
                Ok(fresh) => channel = Some(fresh),
                Err(error) => {
                    tracing::error!(%error, "cannot open a channel to declare inboxes");
                    return;
                }
            }
        }
        let Some(open) = &channel else { return };
        if let Err(error) = topology::declare_inbox(open, &agency.code, settings).await {
            tracing::error!(%error, agency = %agency.code, "cannot declare the inbox; skipping it");
            // The broker closed that channel.
            channel = None;
        }
    }
    if let Some(channel) = channel {
        let _ = channel.close(200, "declared".into()).await;
    }
}

/// Refreshes the queue figures from the management API every few seconds.
async fn poll_queues(router: Arc<Router>) {
    let Some(config) = router.config.management.clone() else { return };
    let management = match mirsal_bus::Management::new(&config.url, &config.user, &config.password) {
        Ok(management) => management,
        Err(error) => {
            tracing::error!(%error, "management API client; queue figures disabled");
            return;
        }
    };
    let vhost = config.vhost.clone().unwrap_or_else(|| {
        router
            .config
            .broker
            .url
            .parse::<mirsal_bus::lapin::uri::AMQPUri>()
            .map(|u| u.vhost)
            .unwrap_or_else(|_| "/".into())
    });
    let mut interval = tokio::time::interval(QUEUE_POLL);
    loop {
        interval.tick().await;
        match management.list_queues(&vhost).await {
            Ok(queues) => {
                let figures: BTreeMap<String, views::QueueView> = queues
                    .into_iter()
                    .filter(|q| q.name.starts_with("mirsal."))
                    .map(|q| {
                        router.metrics.queue_depth(&q.name, q.messages.unwrap_or(0));
                        let view = views::QueueView {
                            name: q.name.clone(),
                            messages: q.messages,
                            ready: q.messages_ready,
                            unacknowledged: q.messages_unacknowledged,
                            consumers: q.consumers,
                        };
                        (q.name, view)
                    })
                    .collect();
                if let Ok(mut current) = router.queues.write() {
                    *current = figures;
                }
            }
            Err(error) => tracing::debug!(%error, "queue figures not refreshed"),
        }
    }
}

/// How often the queue figures are refreshed (the management API samples every 5 s).
const QUEUE_POLL: Duration = Duration::from_secs(5);

async fn check_overdue(router: Arc<Router>) {
    let mut interval = tokio::time::interval(router.config.overdue.check_interval);
    loop {
        interval.tick().await;
        match overdue::check(&router).await {
            Ok(0) => {}
            Ok(sent) => tracing::info!(sent, "overdue notices sent"),
            Err(error) => tracing::warn!(%error, "overdue check failed; it runs again"),
        }
    }
}

async fn sign_heads(router: Arc<Router>) {
    let mut interval = tokio::time::interval(router.config.audit.sign_interval);
    interval.tick().await;
    loop {
        interval.tick().await;
        match audit::sign_head(&router.store, router.notary.identity(), chrono::Utc::now()) {
            Ok(Some(sequence)) => {
                if let Err(error) = router.store.flush().await {
                    tracing::warn!(%error, "flushing the signed head failed");
                }
                tracing::debug!(sequence, "audit chain head signed");
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "signing the audit chain head failed"),
        }
    }
}

/// A delay used by tests and tools that wait on the router.
pub const POLL: Duration = Duration::from_millis(50);
