//! What every long-running Mirsal process (the router, the reference adapter) needs
//! and does the same way: configuration errors that name the key, the log settings and
//! their set-up (human or JSON), the `--config FILE` argument, and SIGINT/SIGTERM as a
//! shutdown future. The router and the adapter never link each other; this is the
//! plumbing they share.

use std::path::PathBuf;

use serde::Deserialize;

/// A configuration that cannot be used. Binaries exit with code 64 on one, before
/// anything is opened or connected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

/// [`ConfigError::Invalid`] for `key`.
pub fn invalid(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), problem: problem.into() }
}

/// Checks that `url`, the value of `key`, is an AMQP URL (`amqp://` or `amqps://`).
///
/// # Errors
/// [`ConfigError::Invalid`] for `key`.
pub fn require_amqp_url(key: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("amqp://") || url.starts_with("amqps://") {
        Ok(())
    } else {
        Err(invalid(key, "must start with amqp:// or amqps://"))
    }
}

/// Checks that every `(key, path)` names a readable file.
///
/// # Errors
/// [`ConfigError::Invalid`] for the first key whose file is not there.
pub fn require_files(files: &[(&str, &std::path::Path)]) -> Result<(), ConfigError> {
    match files.iter().find(|(_, path)| !path.is_file()) {
        Some((key, path)) => Err(invalid(key, format!("{} is not a readable file", path.display()))),
        None => Ok(()),
    }
}

/// Parses `text`, read from `path`, as the TOML of `T`.
///
/// # Errors
/// [`ConfigError::Parse`] naming the file.
pub fn read_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &std::path::Path,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The `[log]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info` or `warn,mirsal_router=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Human, level: "info".into() }
    }
}

impl LogConfig {
    /// Applies the environment overrides `format_key` (`human` or `json`) and
    /// `level_key`.
    ///
    /// # Errors
    /// A format other than `human` or `json`.
    pub fn apply_env(
        &mut self,
        env: impl Fn(&str) -> Option<String>,
        format_key: &str,
        level_key: &str,
    ) -> Result<(), ConfigError> {
        if let Some(format) = env(format_key) {
            self.format = match format.as_str() {
                "human" => LogFormat::Human,
                "json" => LogFormat::Json,
                other => return Err(invalid(format_key, format!("{other:?}: expected human or json"))),
            };
        }
        if let Some(level) = env(level_key) {
            self.level = level;
        }
        Ok(())
    }

    /// Checks that `level` is a log filter.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `log.level`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if tracing_subscriber::EnvFilter::try_new(&self.level).is_err() {
            return Err(invalid(
                "log.level",
                format!("{:?} is not a log filter such as info or mirsal=debug", self.level),
            ));
        }
        Ok(())
    }

    /// Installs the global subscriber: logs to standard error in the chosen format.
    pub fn init(&self) {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.level)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
        match self.format {
            LogFormat::Json => builder.json().init(),
            LogFormat::Human => builder.init(),
        }
    }
}

/// The configuration file from `--config FILE` (or `-c`), else the environment variable
/// `env_key`, else `default`. `program` names the binary in the usage message.
///
/// # Errors
/// A usage message for unknown arguments, `--help`, or `--config` without a file.
pub fn config_path(program: &str, env_key: &str, default: &str) -> Result<PathBuf, String> {
    let usage = format!("usage: {program} [--config FILE]  (or set {env_key})");
    let mut args = std::env::args().skip(1);
    let mut path = std::env::var(env_key).ok().map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => path = Some(args.next().ok_or("--config needs a file")?.into()),
            "--help" | "-h" => return Err(usage),
            other => return Err(format!("unexpected argument {other:?}; {usage}")),
        }
    }
    Ok(path.unwrap_or_else(|| PathBuf::from(default)))
}

/// Completes on SIGINT or SIGTERM (the only place signals are handled; everything else
/// takes this future as its shutdown argument).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
