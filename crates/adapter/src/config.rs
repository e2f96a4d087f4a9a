//! The adapter's configuration: `adapter.toml` from the bundle `mirsal agency add`
//! writes, then environment overrides, then validation. Relative paths are relative to
//! the file's own folder, so a bundle can be moved as a whole.
//!
//! ```toml
//! agency = "MOF"
//! data_dir = "data"                 # the durable outbox and inbox (sled)
//!
//! [broker]
//! url = "amqp://MOF:secret@127.0.0.1:5672/mirsal"   # amqps://…?auth_mechanism=external in production
//! # tls_ca = "broker-ca.pem"
//! # tls_certificate = "client.pem"
//! # tls_key = "client.key"
//! prefetch = 64
//!
//! [pki]
//! ca = "ca.pem"
//! crl = "crl.pem"
//! signing_key = "signing.key"
//! signing_certificate = "signing.pem"
//! sealing_key = "sealing.key"
//! sealing_certificate = "sealing.pem"
//!
//! [http]                            # the reference adapter's local HTTP bridge
//! listen = "127.0.0.1:8480"
//! token_file = "http.token"
//!
//! [webhook]                         # optional: push incoming items to the agency system
//! url = "http://127.0.0.1:9000/mirsal"
//! # token = "…"                     # sent as a bearer token
//! max_backoff = "5m"
//!
//! [log]
//! format = "human"                  # or "json"
//! level = "info"
//! ```

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

/// Environment variables that override the file.
pub mod env {
    pub const CONFIG: &str = "MIRSAL_ADAPTER_CONFIG";
    pub const BROKER_URL: &str = "MIRSAL_ADAPTER_BROKER_URL";
    pub const DATA_DIR: &str = "MIRSAL_ADAPTER_DATA_DIR";
    pub const HTTP_LISTEN: &str = "MIRSAL_ADAPTER_HTTP_LISTEN";
    pub const WEBHOOK_URL: &str = "MIRSAL_ADAPTER_WEBHOOK_URL";
    pub const LOG_FORMAT: &str = "MIRSAL_ADAPTER_LOG_FORMAT";
    pub const LOG_LEVEL: &str = "MIRSAL_ADAPTER_LOG";
}

use mirsal_service::invalid;
pub use mirsal_service::{ConfigError, LogConfig, LogFormat};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfig {
    pub agency: String,
    pub data_dir: PathBuf,
    pub broker: BrokerConfig,
    pub pki: PkiConfig,
    #[serde(default)]
    pub http: HttpConfig,
    pub webhook: Option<WebhookConfig>,
    #[serde(default)]
    pub log: LogConfig,
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
}

fn default_prefetch() -> u16 {
    64
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkiConfig {
    pub ca: PathBuf,
    pub crl: PathBuf,
    pub signing_key: PathBuf,
    pub signing_certificate: PathBuf,
    pub sealing_key: PathBuf,
    pub sealing_certificate: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub token_file: PathBuf,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([127, 0, 0, 1], 8480)), token_file: PathBuf::from("http.token") }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    pub token: Option<String>,
    #[serde(default = "five_minutes", with = "humantime_serde")]
    pub max_backoff: Duration,
}

fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

impl AdapterConfig {
    /// Reads `path`, resolves relative paths against its folder, applies the environment
    /// overrides and validates.
    ///
    /// # Errors
    /// The first problem found, naming the file or key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(&text, path, |key| std::env::var(key).ok())
    }

    /// Parses `text` as if read from `path`, with overrides from `env`.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn parse(text: &str, path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config: Self = mirsal_service::read_toml(text, path)?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        config.resolve(base);
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    fn resolve(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        resolve(&mut self.data_dir);
        for path in [
            &mut self.pki.ca,
            &mut self.pki.crl,
            &mut self.pki.signing_key,
            &mut self.pki.signing_certificate,
            &mut self.pki.sealing_key,
            &mut self.pki.sealing_certificate,
            &mut self.http.token_file,
        ] {
            resolve(path);
        }
        for path in [&mut self.broker.tls_ca, &mut self.broker.tls_certificate, &mut self.broker.tls_key]
            .into_iter()
            .flatten()
        {
            resolve(path);
        }
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(url) = env(env::BROKER_URL) {
            self.broker.url = url;
        }
        if let Some(dir) = env(env::DATA_DIR) {
            self.data_dir = PathBuf::from(dir);
        }
        if let Some(listen) = env(env::HTTP_LISTEN) {
            self.http.listen = listen.parse().map_err(|_| {
                invalid(env::HTTP_LISTEN, format!("{listen:?} is not an address such as 127.0.0.1:8480"))
            })?;
        }
        if let Some(url) = env(env::WEBHOOK_URL) {
            match &mut self.webhook {
                Some(webhook) => webhook.url = url,
                None => self.webhook = Some(WebhookConfig { url, token: None, max_backoff: five_minutes() }),
            }
        }
        self.log.apply_env(&env, env::LOG_FORMAT, env::LOG_LEVEL)?;
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !mirsal_envelope::code::is_valid(&self.agency) || self.agency == mirsal_envelope::PLATFORM_CODE {
            return Err(invalid("agency", format!("{:?} is not an agency code", self.agency)));
        }
        mirsal_service::require_amqp_url("broker.url", &self.broker.url)?;
        if self.broker.prefetch == 0 {
            return Err(invalid("broker.prefetch", "must be at least 1"));
        }
        mirsal_service::require_files(&[
            ("pki.ca", &self.pki.ca),
            ("pki.crl", &self.pki.crl),
            ("pki.signing_key", &self.pki.signing_key),
            ("pki.signing_certificate", &self.pki.signing_certificate),
            ("pki.sealing_key", &self.pki.sealing_key),
            ("pki.sealing_certificate", &self.pki.sealing_certificate),
        ])?;
        if let Some(webhook) = &self.webhook
            && !(webhook.url.starts_with("http://") || webhook.url.starts_with("https://"))
        {
            return Err(invalid("webhook.url", "must be an http:// or https:// URL"));
        }
        self.log.validate()?;
        Ok(())
    }
}
