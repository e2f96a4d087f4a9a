//! The router's configuration: a TOML file, then environment overrides, then
//! validation, section by section. A bad configuration stops the router with exit code
//! 64 and one message naming the key, before any connection is made.
//!
//! ```toml
//! [broker]
//! url = "amqp://mirsal-router:secret@127.0.0.1:5672/%2f"  # amqps://… in production
//! # tls_ca = "/etc/mirsal/broker-ca.pem"                   # amqps only
//! # tls_certificate = "/etc/mirsal/router.pem"             # client certificate login
//! # tls_key = "/etc/mirsal/router.key"
//! prefetch = 512                 # ingress deliveries in flight
//! delivery_limit = 20            # deliveries before a message is dead-lettered
//!
//! [pki]
//! ca = "pki/ca.pem"
//! crl = "pki/crl.pem"            # reloaded when it changes
//! platform_key = "pki/platform.key"
//! platform_certificate = "pki/platform.pem"
//!
//! [storage]
//! data_dir = "data/router"
//! cache_mb = 256                 # sled's page cache: the bulk of the router's memory
//!
//! [directory]
//! path = "data/directory.json"   # written by `mirsal agency`; reloaded when it changes
//! reload_interval = "1s"
//!
//! [policy]
//! max_envelope_bytes = 16777216
//! max_clock_skew = "5m"         # how far created_at may be ahead of the router's clock
//! max_age = "7d"                # how far behind: letters may wait out an outage in the queue
//! require_user_id = true         # the AMQP user_id must be the sender
//!
//! [overdue]
//! check_interval = "30s"
//! delivery_sla = { normal = "24h", urgent = "4h", immediate = "1h" }
//!
//! [audit]
//! sign_interval = "1m"           # how often the chain head is signed
//!
//! [log]
//! format = "human"               # or "json"
//! level = "info"                 # an EnvFilter directive
//!
//! [shutdown]
//! grace = "10s"                  # how long in-flight work may take to drain
//!
//! [http]                         # health, metrics, the operators' API and dashboard
//! listen = "127.0.0.1:8470"      # loopback by default
//! token_file = "router.token"    # bearer token for everything but /healthz, /readyz, /metrics
//!
//! [management]                   # queue figures for the agencies view (optional)
//! url = "http://127.0.0.1:15672"
//! user = "mirsal-monitor"
//! password = "…"                 # or MIRSAL_ROUTER_MANAGEMENT_PASSWORD
//! vhost = "mirsal"               # default: the broker URL's vhost
//! ```

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

/// Environment variables that override the file, one per setting that operators
/// commonly set per deployment.
pub mod env {
    pub const CONFIG: &str = "MIRSAL_ROUTER_CONFIG";
    pub const BROKER_URL: &str = "MIRSAL_ROUTER_BROKER_URL";
    pub const DATA_DIR: &str = "MIRSAL_ROUTER_DATA_DIR";
    pub const DIRECTORY: &str = "MIRSAL_ROUTER_DIRECTORY";
    pub const PKI_CA: &str = "MIRSAL_ROUTER_PKI_CA";
    pub const PKI_CRL: &str = "MIRSAL_ROUTER_PKI_CRL";
    pub const PLATFORM_KEY: &str = "MIRSAL_ROUTER_PLATFORM_KEY";
    pub const PLATFORM_CERTIFICATE: &str = "MIRSAL_ROUTER_PLATFORM_CERTIFICATE";
    pub const PREFETCH: &str = "MIRSAL_ROUTER_PREFETCH";
    pub const LOG_FORMAT: &str = "MIRSAL_ROUTER_LOG_FORMAT";
    pub const LOG_LEVEL: &str = "MIRSAL_ROUTER_LOG";
    pub const HTTP_LISTEN: &str = "MIRSAL_ROUTER_HTTP_LISTEN";
    pub const HTTP_TOKEN: &str = "MIRSAL_ROUTER_HTTP_TOKEN";
    pub const MANAGEMENT_PASSWORD: &str = "MIRSAL_ROUTER_MANAGEMENT_PASSWORD";
}

use mirsal_service::invalid;
pub use mirsal_service::{ConfigError, LogConfig, LogFormat};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    pub broker: BrokerConfig,
    pub pki: PkiConfig,
    pub storage: StorageConfig,
    pub directory: DirectoryConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub overdue: OverdueConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    #[serde(default)]
    pub http: HttpConfig,
    pub management: Option<ManagementConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: std::net::SocketAddr,
    /// The file holding the bearer token; `MIRSAL_ROUTER_HTTP_TOKEN` instead.
    pub token_file: Option<PathBuf>,
    /// Filled from `token_file` or the environment while loading.
    #[serde(skip)]
    pub token: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8470)), token_file: None, token: None }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementConfig {
    pub url: String,
    pub user: String,
    #[serde(default)]
    pub password: String,
    pub vhost: Option<String>,
}

impl std::fmt::Debug for ManagementConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementConfig")
            .field("url", &self.url)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    pub url: String,
    pub tls_ca: Option<PathBuf>,
    pub tls_certificate: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    #[serde(default = "default_delivery_limit")]
    pub delivery_limit: u32,
}

fn default_prefetch() -> u16 {
    512
}

fn default_delivery_limit() -> u32 {
    20
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkiConfig {
    pub ca: PathBuf,
    pub crl: PathBuf,
    pub platform_key: PathBuf,
    pub platform_certificate: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// sled's page cache, in MiB: the bulk of the router's memory.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
}

fn default_cache_mb() -> u64 {
    256
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    pub path: PathBuf,
    #[serde(default = "one_second", with = "humantime_serde")]
    pub reload_interval: Duration,
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub max_envelope_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    pub require_user_id: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            max_envelope_bytes: 16 * 1024 * 1024,
            max_clock_skew: Duration::from_secs(300),
            max_age: Duration::from_secs(7 * 24 * 3600),
            require_user_id: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverdueConfig {
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    pub delivery_sla: DeliverySla,
}

impl Default for OverdueConfig {
    fn default() -> Self {
        Self { check_interval: Duration::from_secs(30), delivery_sla: DeliverySla::default() }
    }
}

/// How long a letter of each priority may wait for its `delivered` receipt.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySla {
    #[serde(with = "humantime_serde")]
    pub normal: Duration,
    #[serde(with = "humantime_serde")]
    pub urgent: Duration,
    #[serde(with = "humantime_serde")]
    pub immediate: Duration,
}

impl Default for DeliverySla {
    fn default() -> Self {
        Self {
            normal: Duration::from_secs(24 * 3600),
            urgent: Duration::from_secs(4 * 3600),
            immediate: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    #[serde(with = "humantime_serde")]
    pub sign_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { sign_interval: Duration::from_secs(60) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { grace: Duration::from_secs(10) }
    }
}

impl RouterConfig {
    /// Reads `path`, applies the environment overrides, and validates.
    ///
    /// # Errors
    /// The first problem found, naming the file or key.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(&text, path, |key| std::env::var(key).ok())
    }

    /// Parses `text` (from `path`, for messages), applying overrides from `env`.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn parse(
        text: &str,
        path: &std::path::Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config: Self = mirsal_service::read_toml(text, path)?;
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(url) = env(env::BROKER_URL) {
            self.broker.url = url;
        }
        let paths: [(&str, &mut PathBuf); 6] = [
            (env::DATA_DIR, &mut self.storage.data_dir),
            (env::DIRECTORY, &mut self.directory.path),
            (env::PKI_CA, &mut self.pki.ca),
            (env::PKI_CRL, &mut self.pki.crl),
            (env::PLATFORM_KEY, &mut self.pki.platform_key),
            (env::PLATFORM_CERTIFICATE, &mut self.pki.platform_certificate),
        ];
        for (key, slot) in paths {
            if let Some(value) = env(key) {
                *slot = PathBuf::from(value);
            }
        }
        if let Some(prefetch) = env(env::PREFETCH) {
            self.broker.prefetch = prefetch
                .parse()
                .map_err(|_| invalid(env::PREFETCH, format!("{prefetch:?} is not a number 1-65535")))?;
        }
        self.log.apply_env(&env, env::LOG_FORMAT, env::LOG_LEVEL)?;
        if let Some(listen) = env(env::HTTP_LISTEN) {
            self.http.listen = listen.parse().map_err(|_| {
                invalid(env::HTTP_LISTEN, format!("{listen:?} is not an address such as 127.0.0.1:8470"))
            })?;
        }
        self.http.token = match (env(env::HTTP_TOKEN), &self.http.token_file) {
            (Some(token), _) => Some(token),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| invalid("http.token_file", format!("{}: {e}", file.display())))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        if let (Some(password), Some(management)) = (env(env::MANAGEMENT_PASSWORD), self.management.as_mut())
        {
            management.password = password;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.broker.url;
        mirsal_service::require_amqp_url("broker.url", url)?;
        let tls_files = [&self.broker.tls_ca, &self.broker.tls_certificate, &self.broker.tls_key];
        if url.starts_with("amqp://") && tls_files.iter().any(|f| f.is_some()) {
            return Err(invalid("broker.tls_*", "TLS files are only used with an amqps:// URL"));
        }
        if self.broker.tls_certificate.is_some() != self.broker.tls_key.is_some() {
            return Err(invalid("broker.tls_certificate", "tls_certificate and tls_key go together"));
        }
        if self.broker.prefetch == 0 {
            return Err(invalid("broker.prefetch", "must be at least 1"));
        }
        if self.broker.delivery_limit == 0 {
            return Err(invalid("broker.delivery_limit", "must be at least 1"));
        }
        mirsal_service::require_files(&[
            ("pki.ca", &self.pki.ca),
            ("pki.crl", &self.pki.crl),
            ("pki.platform_key", &self.pki.platform_key),
            ("pki.platform_certificate", &self.pki.platform_certificate),
        ])?;
        if self.policy.max_envelope_bytes < 1024 {
            return Err(invalid("policy.max_envelope_bytes", "must be at least 1024"));
        }
        let sla = &self.overdue.delivery_sla;
        for (key, value) in [
            ("overdue.check_interval", self.overdue.check_interval),
            ("overdue.delivery_sla.normal", sla.normal),
            ("overdue.delivery_sla.urgent", sla.urgent),
            ("overdue.delivery_sla.immediate", sla.immediate),
            ("audit.sign_interval", self.audit.sign_interval),
            ("directory.reload_interval", self.directory.reload_interval),
        ] {
            if value.is_zero() {
                return Err(invalid(key, "must be longer than zero"));
            }
        }
        if self.http.token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(invalid("http.token_file", "the bearer token must be at least 16 characters"));
        }
        if let Some(management) = &self.management
            && !(management.url.starts_with("http://") || management.url.starts_with("https://"))
        {
            return Err(invalid("management.url", "must be an http:// or https:// URL"));
        }
        self.log.validate()?;
        Ok(())
    }
}
