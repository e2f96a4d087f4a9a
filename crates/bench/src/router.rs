//! The real `mirsal-router` release binary as a child process of the benchmark.
//!
//! It runs with the test platform's configuration ([`Platform::router_binary`]), with
//! the log level, the ingress prefetch and a clock skew of one hour set through its
//! documented overrides: letters are signed before the timed phase, and a long run
//! (the backlog) submits letters signed minutes earlier.

use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::Context as _;
use mirsal_integration_tests::platform::{Platform, find_binary};
use mirsal_router::config::env;
use tokio::process::Child;

use crate::procfs::{self, Memory};

/// How long the router may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// A running router process.
#[derive(Debug)]
pub(crate) struct RouterProcess {
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl RouterProcess {
    /// Starts the router for `platform` and waits until it consumes the ingress queue.
    /// Its log (level `warn`) goes to `<log_dir>/router-<phase>.log`.
    ///
    /// # Errors
    /// The binary is not built, cannot be started, or exits before it consumes.
    pub(crate) async fn start(
        platform: &mut Platform,
        prefetch: u16,
        log_dir: &std::path::Path,
        phase: &str,
    ) -> anyhow::Result<Self> {
        find_binary("mirsal-router").context(
            "mirsal-router is not built beside mirsal-bench; run `cargo build --release --bins` \
             (scripts/bench does)",
        )?;
        platform.config_overrides.entry("policy").or_default().push("max_clock_skew = \"1h\"".to_owned());
        std::fs::create_dir_all(log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
        let log = log_dir.join(format!("router-{phase}.log"));
        let file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = platform.router_binary();
        command
            .env(env::LOG_LEVEL, "warn")
            .env(env::PREFETCH, prefetch.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        let mut child = command.spawn().context("starting mirsal-router")?;
        let pid = child.id().context("the router exited at once")?;
        tokio::select! {
            () = platform.wait_for_router() => {}
            status = child.wait() => {
                let status = status.context("waiting for the router")?;
                anyhow::bail!("the router exited ({status}) before it consumed mirsal.ingress; see {}", log.display());
            }
        }
        Ok(Self { child, pid, log })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn log(&self) -> &std::path::Path {
        &self.log
    }

    /// Fails when the router has exited.
    ///
    /// # Errors
    /// It has exited, or its status cannot be read.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait().context("checking on the router")? {
            None => Ok(()),
            Some(status) => anyhow::bail!("the router exited ({status}); see {}", self.log.display()),
        }
    }

    pub(crate) fn memory(&self) -> anyhow::Result<Memory> {
        procfs::memory(self.pid).context("the router's memory")
    }

    /// Stops the router with SIGTERM (it drains and flushes), killing it if it takes
    /// longer than 30 s.
    ///
    /// # Errors
    /// It could not be signalled, or it did not exit cleanly.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        self.check_running()?;
        let signalled = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await
            .context("running kill -TERM")?;
        anyhow::ensure!(signalled.success(), "kill -TERM {} failed: {signalled}", self.pid);
        match tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
            Ok(status) => {
                let status = status.context("waiting for the router to stop")?;
                anyhow::ensure!(
                    status.success(),
                    "the router stopped with {status}; see {}",
                    self.log.display()
                );
                Ok(())
            }
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                anyhow::bail!("the router did not stop within {STOP_GRACE:?} of SIGTERM; killed it")
            }
        }
    }
}
