//! [`Bus`]: one AMQP connection that is always being kept alive.
//!
//! A background task connects, runs the caller's set-up on a fresh channel (declaring
//! the topology it needs), opens a confirm-mode channel for publishing, and then
//! watches the connection. When the broker goes away it waits with exponential backoff
//! and does it all again. Each successful connection is a new *generation*; publishers
//! and consumers built on the bus notice the change and carry on over the new one. A
//! publishing channel the broker closed (a refused publish: a forged `user_id`, a
//! missing exchange, no write permission) is replaced on the same connection, which
//! also counts as a new generation; the consumers' channels are left alone.
//! Nothing is recovered inside lapin: unacknowledged deliveries go back to their queues
//! when the old channel dies, and unconfirmed publishes are the publisher's to repeat
//! ([`crate::Publisher::publish_reliably`]).

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use futures_util::StreamExt as _;
use lapin::{
    Channel, Connection, ConnectionProperties, Event,
    options::ConfirmSelectOptions,
    tcp::{OwnedIdentity, OwnedTLSConfig},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{BusError, Deliveries, Publisher};

/// How long one connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to connect.
#[derive(Clone)]
pub struct BusConfig {
    /// `amqp://user:pass@host:5672/vhost` (development) or
    /// `amqps://host:5671/vhost?auth_mechanism=external` (production, client certificate).
    pub url: String,
    pub tls: TlsConfig,
    /// Shown in the management UI; say which process this is.
    pub connection_name: String,
    pub backoff: Backoff,
}

impl std::fmt::Debug for BusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusConfig")
            .field("url", &redact(&self.url))
            .field("connection_name", &self.connection_name)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl BusConfig {
    pub fn new(url: impl Into<String>, connection_name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls: TlsConfig::default(),
            connection_name: connection_name.into(),
            backoff: Backoff::default(),
        }
    }
}

/// TLS material for `amqps://` URLs, all PEM.
#[derive(Clone, Default)]
pub struct TlsConfig {
    /// CA certificates that issued the broker's certificate.
    pub ca_pem: Option<String>,
    /// Client certificate and its private key, for certificate login.
    pub client_certificate_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_pem", &self.ca_pem.is_some())
            .field("client_certificate_pem", &self.client_certificate_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// Exponential backoff between connection attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial: Duration::from_millis(200), max: Duration::from_secs(10) }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// What runs on every new connection before it is handed out, e.g. declaring the
/// topology. It gets the connection, to open the channels it needs (a refused
/// declaration closes its channel, so set-up that wants to carry on after one opens
/// another).
pub type Setup =
    Arc<dyn Fn(Arc<Connection>) -> Pin<Box<dyn Future<Output = Result<(), BusError>> + Send>> + Send + Sync>;

/// The live connection of one generation.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) generation: u64,
    pub(crate) connection: Arc<Connection>,
    /// Confirm-mode channel shared by every publisher of this generation.
    pub(crate) publish_channel: Channel,
}

struct Inner {
    config: BusConfig,
    state: watch::Sender<Option<Link>>,
    generations: watch::Sender<u64>,
    shutdown: CancellationToken,
    /// Cancelled once the supervisor has stopped, after closing its connection.
    stopped: CancellationToken,
}

/// A connection to the broker that reconnects by itself. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("config", &self.inner.config)
            .field("generation", &*self.inner.generations.borrow())
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Bus {
    /// Starts keeping a connection open in the background; returns at once. `setup`
    /// runs on every new connection. Use [`connected`](Self::connected) to wait for the
    /// first one.
    pub fn start(config: BusConfig, setup: Setup) -> Self {
        let (state, _) = watch::channel(None);
        let (generations, _) = watch::channel(0);
        let bus = Self {
            inner: Arc::new(Inner {
                config,
                state,
                generations,
                shutdown: CancellationToken::new(),
                stopped: CancellationToken::new(),
            }),
        };
        tokio::spawn(supervise(bus.clone(), setup));
        bus
    }

    /// Starts with no set-up.
    pub fn start_plain(config: BusConfig) -> Self {
        Self::start(config, Arc::new(|_| Box::pin(async { Ok(()) })))
    }

    /// Waits until a connection is up.
    ///
    /// # Errors
    /// [`BusError::ShuttingDown`] once [`shutdown`](Self::shutdown) was called.
    pub async fn connected(&self) -> Result<(), BusError> {
        self.link().await.map(|_| ())
    }

    pub(crate) async fn link(&self) -> Result<Link, BusError> {
        let mut state = self.inner.state.subscribe();
        loop {
            if self.inner.shutdown.is_cancelled() {
                return Err(BusError::ShuttingDown);
            }
            if let Some(link) = state.borrow_and_update().clone() {
                return Ok(link);
            }
            tokio::select! {
                changed = state.changed() => if changed.is_err() { return Err(BusError::ShuttingDown) },
                () = self.inner.shutdown.cancelled() => return Err(BusError::ShuttingDown),
            }
        }
    }

    /// The current link if there is one, without waiting.
    pub(crate) fn current(&self) -> Option<Link> {
        self.inner.state.borrow().clone()
    }

    /// Whether a connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.current().is_some_and(|link| link.connection.status().connected())
    }

    /// How many connections have been made so far (increments on every reconnect, and
    /// when the publishing channel had to be replaced).
    pub fn generation(&self) -> u64 {
        *self.inner.generations.borrow()
    }

    /// Waits until the generation is no longer `generation` (the connection was
    /// replaced), or shutdown.
    pub(crate) async fn generation_after(&self, generation: u64) {
        let mut generations = self.inner.generations.subscribe();
        loop {
            if *generations.borrow_and_update() != generation {
                return;
            }
            tokio::select! {
                changed = generations.changed() => if changed.is_err() { return },
                () = self.inner.shutdown.cancelled() => return,
            }
        }
    }

    /// The current connection (waits for one).
    ///
    /// # Errors
    /// Shutdown.
    pub async fn connection(&self) -> Result<Arc<Connection>, BusError> {
        Ok(self.link().await?.connection)
    }

    /// A new channel on the current connection (waits for one).
    ///
    /// # Errors
    /// Shutdown, or the broker refusing the channel.
    pub async fn create_channel(&self) -> Result<Channel, BusError> {
        let link = self.link().await?;
        link.connection.create_channel().await.map_err(BusError::amqp("opening a channel"))
    }

    /// A confirmed publisher on this bus.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(self.clone())
    }

    /// Consumes `queue` with `prefetch` unacknowledged deliveries at most, across
    /// reconnects.
    pub fn consume(&self, queue: &str, prefetch: u16, consumer_tag: &str) -> Deliveries {
        Deliveries::start(self.clone(), queue.to_owned(), prefetch, consumer_tag.to_owned())
    }

    /// The token cancelled by [`shutdown`](Self::shutdown).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Stops reconnecting and closes the connection (which ends the consumers); returns
    /// once it is closed.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        // Only the supervisor closes, so that the connection it may be handing out at
        // this very moment is closed too, and never twice at once (lapin then leaves
        // one of the two closes waiting forever).
        self.inner.stopped.cancelled().await;
    }
}

async fn supervise(bus: Bus, setup: Setup) {
    let inner = &bus.inner;
    // Also when this task panics or is aborted, so that `shutdown` never waits forever.
    let _stopped = inner.stopped.clone().drop_guard();
    let mut attempt = 0u32;
    while !inner.shutdown.is_cancelled() {
        let opened = tokio::select! {
            opened = open(&inner.config, &setup) => opened,
            () = inner.shutdown.cancelled() => break,
        };
        match opened {
            Ok((connection, mut publish_channel)) => {
                attempt = 0;
                let mut events = connection.events_listener();
                let mut generation = hand_out(inner, &connection, &publish_channel);
                tracing::info!(generation, name = %inner.config.connection_name, "connected to the broker");
                let reason = loop {
                    tokio::select! {
                        () = inner.shutdown.cancelled() => break None,
                        event = events.next() => match event {
                            // lapin also reports here every channel the broker closed (a
                            // refused publish or consume): only a dead connection means
                            // reconnecting. Reconnecting anyway would leave the old
                            // connection open under its consumers.
                            Some(Event::Error(error)) if !connection.status().connected() => {
                                break Some(error.to_string());
                            }
                            Some(_) => {}
                            None => break Some("connection closed".to_owned()),
                        },
                        () = tokio::time::sleep(Duration::from_secs(1)) => {
                            if !connection.status().connected() {
                                break Some("connection no longer connected".to_owned());
                            }
                        }
                    }
                    if !publish_channel.status().connected() && connection.status().connected() {
                        match tokio::time::timeout(CONNECT_TIMEOUT, open_publish_channel(&connection)).await {
                            Err(_) => break Some("no new publishing channel in time".to_owned()),
                            Ok(Err(error)) => break Some(error.to_string()),
                            Ok(Ok(channel)) => {
                                publish_channel = channel;
                                generation = hand_out(inner, &connection, &publish_channel);
                                tracing::warn!(
                                    generation,
                                    "the broker closed the publishing channel; opened another"
                                );
                            }
                        }
                    }
                };
                inner.state.send_replace(None);
                if let Some(reason) = reason {
                    tracing::warn!(generation, %reason, "lost the broker connection; reconnecting");
                }
                // Consumers hold the connection open as long as they run: close it (a
                // no-op when it is dead already) rather than just drop it.
                let close = connection.close(200, "closing".into());
                let _ = tokio::time::timeout(CONNECT_TIMEOUT, close).await;
            }
            Err(error) => {
                let delay = inner.config.backoff.delay(attempt);
                attempt = attempt.saturating_add(1);
                tracing::warn!(%error, attempt, retry_in_ms = delay.as_millis() as u64, "cannot connect to the broker");
                tokio::select! {
                    () = inner.shutdown.cancelled() => {}
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Makes `publish_channel` the current link of a new generation and returns that
/// generation. The old link is withdrawn before the generation changes and the new one
/// put in place after, so whoever sees the new generation never gets the old link, and
/// whoever gets the new link sees its generation.
fn hand_out(inner: &Inner, connection: &Arc<Connection>, publish_channel: &Channel) -> u64 {
    let generation = *inner.generations.borrow() + 1;
    inner.state.send_replace(None);
    inner.generations.send_replace(generation);
    inner.state.send_replace(Some(Link {
        generation,
        connection: connection.clone(),
        publish_channel: publish_channel.clone(),
    }));
    generation
}

async fn open_publish_channel(connection: &Connection) -> Result<Channel, BusError> {
    let channel =
        connection.create_channel().await.map_err(BusError::amqp("opening the publishing channel"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(BusError::amqp("enabling publisher confirms"))?;
    Ok(channel)
}

async fn open(config: &BusConfig, setup: &Setup) -> Result<(Arc<Connection>, Channel), BusError> {
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, connect(config))
        .await
        .map_err(|_| BusError::NotConnected)??;
    let connection = Arc::new(connection);
    let result = async {
        setup(Arc::clone(&connection)).await?;
        open_publish_channel(&connection).await
    }
    .await;
    match result {
        Ok(channel) => Ok((connection, channel)),
        Err(error) => {
            let _ = connection.close(200, "set-up failed".into()).await;
            Err(error)
        }
    }
}

/// One connection attempt.
///
/// # Errors
/// A URL that does not parse, a broker that cannot be reached or refuses the login.
pub async fn connect(config: &BusConfig) -> Result<Connection, BusError> {
    let properties =
        ConnectionProperties::default().with_connection_name(config.connection_name.as_str().into());
    let context = format!("connecting to {}", redact(&config.url));
    if config.url.starts_with("amqps://") {
        let identity = match (&config.tls.client_certificate_pem, &config.tls.client_key_pem) {
            (Some(pem), Some(key)) => Some(OwnedIdentity::PKCS8 { pem: pem.clone(), key: key.clone() }),
            _ => None,
        };
        let tls = OwnedTLSConfig { identity, cert_chain: config.tls.ca_pem.clone() };
        let runtime =
            lapin::runtime::default_runtime().map_err(BusError::amqp("starting the AMQP runtime"))?;
        Connection::connect_with_config(&config.url, properties, tls, runtime)
            .await
            .map_err(BusError::amqp(context))
    } else if config.url.starts_with("amqp://") {
        Connection::connect(&config.url, properties).await.map_err(BusError::amqp(context))
    } else {
        Err(BusError::InvalidUrl(format!("{}: expected amqp:// or amqps://", redact(&config.url))))
    }
}

/// `url` with any password replaced by `***`, for logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((credentials, host)) = rest.split_once('@') else { return url.to_owned() };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(redact("amqp://guest:secret@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(
            redact("amqps://broker:5671/x?auth_mechanism=external"),
            "amqps://broker:5671/x?auth_mechanism=external"
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        let backoff = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(1) };
        assert_eq!(backoff.delay(0), Duration::from_millis(100));
        assert_eq!(backoff.delay(2), Duration::from_millis(400));
        assert_eq!(backoff.delay(30), Duration::from_secs(1));
    }
}
