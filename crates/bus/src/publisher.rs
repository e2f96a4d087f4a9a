//! Confirmed publishing.
//!
//! Every publish goes out on the bus's confirm-mode channel and counts as done only when
//! the broker confirms it. A nack (for instance a full queue with `reject-publish`) and
//! a mandatory message returned as unroutable are failures, never silent drops. Many
//! tasks can publish at once: each waits for its own confirm, so the number of tasks in
//! flight is the confirm window. For a single task that publishes a stream,
//! [`Publisher::start`] returns the pending confirm so it can keep a window itself.

use std::time::Duration;

use bytes::Bytes;
use lapin::{BasicProperties, Confirmation, PublisherConfirm, options::BasicPublishOptions};
use tokio::time::Instant;

use crate::Bus;

/// How long a confirm may take before the publish counts as failed.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    pub payload: Bytes,
    pub properties: BasicProperties,
    /// Fail (instead of dropping) when no queue is bound for the routing key.
    pub mandatory: bool,
}

/// Why a publish did not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("the broker refused the message (nack), e.g. because the queue is full")]
    Nacked,
    #[error("unroutable: {code} {text}")]
    Returned { code: u16, text: String },
    #[error("the broker refused the publish: {code} {text}")]
    Refused { code: u16, text: String },
    #[error("connection lost before the broker confirmed: {0}")]
    ConnectionLost(String),
    #[error("no confirm within {0:?}")]
    Timeout(Duration),
    #[error("shutting down")]
    ShuttingDown,
}

impl PublishError {
    /// Whether trying again later may succeed (an unroutable or forbidden message will
    /// not).
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Returned { .. } | Self::Refused { .. } | Self::ShuttingDown)
    }

    /// A lapin error as a publish error: the broker closing the channel for a forbidden,
    /// misaddressed or forged publish (ACCESS_REFUSED, NOT_FOUND, PRECONDITION_FAILED) is
    /// a refusal that will not change by retrying; anything else is a lost connection.
    fn from_lapin(error: &lapin::Error) -> Self {
        if let lapin::ErrorKind::ProtocolError(amqp) = error.kind() {
            let code = amqp.get_id();
            if matches!(code, 403 | 404 | 406) {
                return Self::Refused { code, text: amqp.get_message().to_string() };
            }
        }
        Self::ConnectionLost(error.to_string())
    }
}

/// A publish the broker has received but not yet confirmed.
#[derive(Debug)]
pub struct PendingConfirm {
    confirm: PublisherConfirm,
}

impl PendingConfirm {
    /// Waits for the broker's answer.
    ///
    /// # Errors
    /// Nack, return, connection loss or timeout.
    pub async fn wait(self) -> Result<(), PublishError> {
        match tokio::time::timeout(CONFIRM_TIMEOUT, self.confirm).await {
            Err(_) => Err(PublishError::Timeout(CONFIRM_TIMEOUT)),
            Ok(Err(error)) => Err(PublishError::from_lapin(&error)),
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)))) => {
                Err(PublishError::Returned {
                    code: returned.reply_code,
                    text: returned.reply_text.to_string(),
                })
            }
            Ok(Ok(Confirmation::Nack(None))) => Err(PublishError::Nacked),
            // The publishing channel is always in confirm mode.
            Ok(Ok(Confirmation::NotRequested)) => {
                Err(PublishError::ConnectionLost("confirms not enabled".into()))
            }
        }
    }
}

/// A confirmed publisher. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Publisher {
    bus: Bus,
}

impl Publisher {
    pub(crate) fn new(bus: Bus) -> Self {
        Self { bus }
    }

    /// Sends `message` on the current connection, waiting for one if there is none, and
    /// returns the pending confirm.
    ///
    /// # Errors
    /// Shutdown, or the connection failing while sending.
    pub async fn start(&self, message: &Outgoing) -> Result<PendingConfirm, PublishError> {
        let link = self.bus.link().await.map_err(|_| PublishError::ShuttingDown)?;
        let options = BasicPublishOptions { mandatory: message.mandatory, immediate: false };
        let confirm = link
            .publish_channel
            .basic_publish(
                message.exchange.as_str().into(),
                message.routing_key.as_str().into(),
                options,
                &message.payload,
                message.properties.clone(),
            )
            .await
            .map_err(|e| PublishError::from_lapin(&e))?;
        Ok(PendingConfirm { confirm })
    }

    /// Publishes `message` once and waits for its confirm.
    ///
    /// # Errors
    /// See [`PublishError`].
    pub async fn publish(&self, message: &Outgoing) -> Result<(), PublishError> {
        self.start(message).await?.wait().await
    }

    /// Publishes `message` until it is confirmed, publishing it again after a nack or
    /// over the next connection after a connection loss, for at most `patience`. A
    /// message can therefore reach its queue more than once; Mirsal's consumers dedupe
    /// by envelope id.
    ///
    /// # Errors
    /// An unroutable message at once; the last transient error when `patience` runs out.
    pub async fn publish_reliably(&self, message: &Outgoing, patience: Duration) -> Result<(), PublishError> {
        let deadline = Instant::now() + patience;
        let mut attempt = 0;
        loop {
            let generation = self.bus.generation();
            let error = match tokio::time::timeout_at(deadline, self.publish(message)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(error)) if !error.is_transient() => return Err(error),
                Ok(Err(error)) => error,
                Err(_) => return Err(PublishError::Timeout(patience)),
            };
            tracing::debug!(%error, attempt, "publish not confirmed; trying again");
            attempt += 1;
            let pause = async {
                if matches!(error, PublishError::ConnectionLost(_)) {
                    self.bus.generation_after(generation).await;
                } else {
                    tokio::time::sleep(self.bus_backoff(attempt)).await;
                }
            };
            if tokio::time::timeout_at(deadline, pause).await.is_err() {
                return Err(error);
            }
        }
    }

    fn bus_backoff(&self, attempt: u32) -> Duration {
        crate::Backoff::default().delay(attempt)
    }
}
