//! `mirsal-adapter`: the reference agency adapter. It runs the SDK with the local HTTP
//! bridge (and the webhook push when configured) until SIGINT or SIGTERM.
//!
//! ```text
//! mirsal-adapter [--config adapter.toml]     # or MIRSAL_ADAPTER_CONFIG
//! ```
//!
//! A bad configuration exits with code 64 before anything is opened or connected.

use std::process::ExitCode;

use mirsal_adapter::{
    Adapter, bridge,
    config::{AdapterConfig, env},
    webhook,
};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let config = match mirsal_service::config_path("mirsal-adapter", env::CONFIG, "adapter.toml")
        .and_then(|path| AdapterConfig::load(&path).map_err(|e| format!("bad configuration: {e}")))
    {
        Ok(config) => config,
        Err(message) => {
            eprintln!("mirsal-adapter: {message}");
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
    config.log.init();
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
        mirsal_service::shutdown_signal().await;
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
