//! `mirsal-router`: runs the router until SIGINT or SIGTERM.
//!
//! ```text
//! mirsal-router [--config router.toml]     # or MIRSAL_ROUTER_CONFIG
//! ```
//!
//! A bad configuration exits with code 64 before anything is opened or connected.

use std::{process::ExitCode, sync::Arc};

use mirsal_router::config::{RouterConfig, env};

fn main() -> ExitCode {
    let config = match mirsal_service::config_path("mirsal-router", env::CONFIG, "router.toml")
        .and_then(|path| RouterConfig::load(&path).map_err(|e| format!("bad configuration: {e}")))
    {
        Ok(config) => config,
        Err(message) => {
            eprintln!("mirsal-router: {message}");
            return ExitCode::from(64);
        }
    };
    config.log.init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mirsal-router: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mirsal_router::run(config, Arc::default(), mirsal_service::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "router failed");
            eprintln!("mirsal-router: {error:#}");
            ExitCode::FAILURE
        }
    }
}
