//! `mirsal-router`: runs the router until SIGINT or SIGTERM.
//!
//! ```text
//! mirsal-router [--config router.toml]     # or MIRSAL_ROUTER_CONFIG
//! ```
//!
//! A bad configuration exits with code 64 before anything is opened or connected.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use mirsal_router::config::{LogFormat, RouterConfig, env};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let path = match config_path() {
        Ok(path) => path,
        Err(message) => {
            eprintln!("mirsal-router: {message}");
            return ExitCode::from(64);
        }
    };
    let config = match RouterConfig::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("mirsal-router: bad configuration: {error}");
            return ExitCode::from(64);
        }
    };
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mirsal-router: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mirsal_router::run(config, Arc::default(), shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "router failed");
            eprintln!("mirsal-router: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_path() -> Result<PathBuf, String> {
    let mut args = std::env::args().skip(1);
    let mut path = std::env::var(env::CONFIG).ok().map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => path = Some(args.next().ok_or("--config needs a file")?.into()),
            "--help" | "-h" => {
                return Err("usage: mirsal-router [--config FILE]  (or set MIRSAL_ROUTER_CONFIG)".into());
            }
            other => {
                return Err(format!("unexpected argument {other:?}; usage: mirsal-router [--config FILE]"));
            }
        }
    }
    Ok(path.unwrap_or_else(|| PathBuf::from("router.toml")))
}

fn init_logging(config: &RouterConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

async fn shutdown_signal() {
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
