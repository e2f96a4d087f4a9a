//! `mirsal-adapter`: the reference agency adapter. It runs the SDK with the local HTTP
//! bridge (and the webhook push when configured) until SIGINT or SIGTERM.
//!
//! ```text
//! mirsal-adapter [--config adapter.toml]     # or MIRSAL_ADAPTER_CONFIG
//! ```
//!
//! A bad configuration exits with code 64 before anything is opened or connected.

use std::{path::PathBuf, process::ExitCode};

use mirsal_adapter::{
    Adapter, bridge,
    config::{AdapterConfig, LogFormat, env},
    webhook,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let path = match config_path() {
        Ok(path) => path,
        Err(message) => {
            eprintln!("mirsal-adapter: {message}");
            return ExitCode::from(64);
        }
    };
    let config = match AdapterConfig::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("mirsal-adapter: bad configuration: {error}");
            return ExitCode::from(64);
        }
    };
    let token = match std::fs::read_to_string(&config.http.token_file) {
        Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
        Ok(_) => {
            eprintln!("mirsal-adapter: bad configuration: {} is empty", config.http.token_file.display());
            return ExitCode::from(64);
        }
        Err(error) => {
            eprintln!(
                "mirsal-adapter: bad configuration: http.token_file {}: {error}",
                config.http.token_file.display()
            );
            return ExitCode::from(64);
        }
    };
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mirsal-adapter: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, token)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mirsal-adapter: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: AdapterConfig, token: String) -> anyhow::Result<()> {
    let listen = config.http.listen;
    let webhook_config = config.webhook.clone();
    let adapter = Adapter::open(config).await?;
    let stop = CancellationToken::new();
    let webhook = webhook_config.map(|c| tokio::spawn(webhook::push(adapter.clone(), c, stop.clone())));
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        signal_stop.cancel();
    });
    let served = bridge::serve(adapter.clone(), listen, token, stop.clone().cancelled_owned()).await;
    stop.cancel();
    if let Some(webhook) = webhook {
        let _ = webhook.await;
    }
    adapter.shutdown().await;
    served.map_err(|e| anyhow::anyhow!("HTTP bridge on {listen}: {e}"))
}

fn config_path() -> Result<PathBuf, String> {
    let mut args = std::env::args().skip(1);
    let mut path = std::env::var(env::CONFIG).ok().map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => path = Some(args.next().ok_or("--config needs a file")?.into()),
            "--help" | "-h" => {
                return Err("usage: mirsal-adapter [--config FILE]  (or set MIRSAL_ADAPTER_CONFIG)".into());
            }
            other => {
                return Err(format!("unexpected argument {other:?}; usage: mirsal-adapter [--config FILE]"));
            }
        }
    }
    Ok(path.unwrap_or_else(|| PathBuf::from("adapter.toml")))
}

fn init_logging(config: &AdapterConfig) {
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
}
