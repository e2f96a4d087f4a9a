//! A window of outstanding publisher confirms.
//!
//! A publisher hands each [`PendingConfirm`] to [`ConfirmWindow::push`], which waits
//! only when `window` confirms are already outstanding; a task of its own awaits them in
//! order (the broker confirms in publish order on one channel). Awaiting each confirm
//! before the next publish instead caps a publisher at ~1.7k msg/s here (FACTS.md).

use std::time::Instant;

use anyhow::Context as _;
use mirsal_bus::publisher::PendingConfirm;
use tokio::{sync::mpsc, task::JoinHandle};

/// The publishing side of a confirm window. Dropping it lets the drainer finish.
#[derive(Debug)]
pub(crate) struct ConfirmWindow {
    pending: mpsc::Sender<PendingConfirm>,
}

/// What the drainer saw: how many were confirmed, and when the last one was.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Confirmed {
    pub(crate) count: u64,
    pub(crate) last: Option<Instant>,
}

impl ConfirmWindow {
    /// A window of `window` outstanding confirms for the publisher called `name`, and
    /// the task that awaits them (it fails at the first nack, return or lost connection).
    pub(crate) fn start(window: usize, name: String) -> (Self, JoinHandle<anyhow::Result<Confirmed>>) {
        let (pending, mut receiver) = mpsc::channel::<PendingConfirm>(window.max(1));
        let drainer = tokio::spawn(async move {
            let mut confirmed = Confirmed { count: 0, last: None };
            while let Some(confirm) = receiver.recv().await {
                confirm.wait().await.with_context(|| format!("{name}: publish not confirmed"))?;
                confirmed.count += 1;
                confirmed.last = Some(Instant::now());
            }
            Ok(confirmed)
        });
        (Self { pending }, drainer)
    }

    /// Adds a published message's confirm, waiting while the window is full.
    ///
    /// # Errors
    /// The drainer has stopped (after a failed confirm: its own error says which).
    pub(crate) async fn push(&self, confirm: PendingConfirm) -> anyhow::Result<()> {
        self.pending.send(confirm).await.map_err(|_| anyhow::anyhow!("the confirm window's drainer stopped"))
    }
}
