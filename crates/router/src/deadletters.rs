//! The dead-letter queue, for the platform team: list, inspect, replay, discard.
//!
//! `mirsal.dead-letters` holds what the router refused (a copy with the reason code in
//! its headers) and what a queue gave up on after its delivery limit (with RabbitMQ's
//! `x-death` headers). A dead letter is named by the first 16 hex digits of the SHA-256
//! of its body.
//!
//! Replaying runs the message through the pipeline again in this process, as if it had
//! just arrived from the agency that published it (its AMQP `user_id`, or the origin the
//! router recorded), and removes it from the dead letters only once that is done: accepted
//! (fanned out, exactly once thanks to dedupe) or refused again (a fresh dead letter with
//! the new reason replaces it). A transient failure leaves it where it is.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use mirsal_bus::{
    headers,
    lapin::{
        BasicProperties,
        message::BasicGetMessage,
        options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions},
        types::{AMQPValue, FieldTable},
    },
    topology,
};
use serde::Serialize;
use serde_json::Value;

use crate::{Router, pipeline};

/// The most messages one operation looks through.
const SCAN_LIMIT: usize = 10_000;

/// One dead letter as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: String,
    pub message_id: Option<String>,
    pub reason_code: Option<i32>,
    pub reason: Option<String>,
    /// The agency that published it (as RabbitMQ authenticated it).
    pub origin: Option<String>,
    /// The queue it died in.
    pub queue: Option<String>,
    /// `refused` (by the router), or RabbitMQ's reason: `rejected`, `delivery_limit`, …
    pub death: String,
    pub size: usize,
}

/// A dead letter with its content, for inspection.
#[derive(Debug, Clone, Serialize)]
pub struct Inspected {
    #[serde(flatten)]
    pub dead_letter: DeadLetter,
    /// The envelope's JSON view when the body is one (sealed letters stay sealed).
    pub envelope: Option<Value>,
}

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub id: String,
    /// `accepted`, `refused` (with the new reason) or `kept` (a transient failure).
    pub outcome: &'static str,
    pub reason_code: Option<i32>,
    pub detail: Option<String>,
}

/// Dead-letter operations that failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("no dead letter {0}")]
    NotFound(String),
    #[error("broker: {0}")]
    Broker(String),
}

fn broker(error: impl std::fmt::Display) -> DeadLetterError {
    DeadLetterError::Broker(error.to_string())
}

fn id_of(body: &[u8]) -> String {
    hex::encode(&mirsal_envelope::sha256(body)[..8])
}

fn header_value<'a>(headers: Option<&'a FieldTable>, name: &str) -> Option<&'a AMQPValue> {
    headers?.inner().get(name)
}

fn describe(message: &BasicGetMessage) -> DeadLetter {
    let properties: &BasicProperties = &message.delivery.properties;
    let table = properties.headers().as_ref();
    let text = |name| headers::header_str(table, name).map(str::to_owned);
    let refused_by_router = text(headers::REASON_CODE).is_some();
    let death = if refused_by_router {
        "refused".to_owned()
    } else {
        match header_value(table, "x-first-death-reason") {
            Some(AMQPValue::LongString(reason)) => String::from_utf8_lossy(reason.as_bytes()).into_owned(),
            _ => "unknown".to_owned(),
        }
    };
    let queue = text("mirsal-queue").or_else(|| match header_value(table, "x-first-death-queue") {
        Some(AMQPValue::LongString(queue)) => Some(String::from_utf8_lossy(queue.as_bytes()).into_owned()),
        _ => None,
    });
    let origin = properties
        .user_id()
        .as_ref()
        .map(|u| u.to_string())
        .or_else(|| text(headers::ORIGIN))
        .filter(|o| !o.is_empty());
    DeadLetter {
        id: id_of(&message.delivery.data),
        message_id: properties.message_id().as_ref().map(|m| m.to_string()).filter(|m| !m.is_empty()),
        reason_code: text(headers::REASON_CODE).and_then(|c| c.parse().ok()),
        reason: text(headers::REASON),
        origin,
        queue,
        death,
        size: message.delivery.data.len(),
    }
}

/// Messages taken from the dead-letter queue and not yet settled; the dead-letter lock
/// is held until [`Fetched::settle`].
struct Fetched<'a> {
    _serial: tokio::sync::MutexGuard<'a, ()>,
    channel: mirsal_bus::lapin::Channel,
    messages: Vec<BasicGetMessage>,
}

/// Takes up to `limit` messages from the dead-letter queue without acknowledging them.
async fn fetch(router: &Router, limit: usize) -> Result<Fetched<'_>, DeadLetterError> {
    let serial = router.dead_letters.lock().await;
    let channel = router.bus.create_channel().await.map_err(broker)?;
    let queue = channel
        .queue_declare(
            topology::DEAD_LETTER_QUEUE.into(),
            QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() },
            FieldTable::default(),
        )
        .await
        .map_err(broker)?;
    let count =
        usize::try_from(queue.message_count()).unwrap_or(SCAN_LIMIT).min(SCAN_LIMIT).min(limit.max(1));
    let mut messages = Vec::with_capacity(count);
    for _ in 0..count {
        match channel.basic_get(topology::DEAD_LETTER_QUEUE.into(), BasicGetOptions::default()).await {
            Ok(Some(message)) => messages.push(message),
            Ok(None) => break,
            Err(error) => return Err(broker(error)),
        }
    }
    Ok(Fetched { _serial: serial, channel, messages })
}

impl Fetched<'_> {
    /// Acknowledges (removes) the messages marked `consumed` and hands the others back.
    async fn settle(self, consumed: &[bool]) -> Result<(), DeadLetterError> {
        for (message, consumed) in self.messages.iter().zip(consumed.iter().chain(std::iter::repeat(&false)))
        {
            if *consumed {
                message.delivery.acker.ack(BasicAckOptions::default()).await.map_err(broker)?;
            } else {
                let _ =
                    message.delivery.acker.nack(BasicNackOptions { multiple: false, requeue: true }).await;
            }
        }
        let _ = self.channel.close(200, "done".into()).await;
        Ok(())
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.messages.iter().position(|m| id_of(&m.delivery.data) == id)
    }
}

/// Up to `limit` dead letters, oldest first.
///
/// # Errors
/// Broker failures.
pub(crate) async fn list(router: &Router, limit: usize) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let fetched = fetch(router, limit).await?;
    let listed = fetched.messages.iter().map(describe).collect();
    fetched.settle(&[]).await?;
    Ok(listed)
}

/// Dead letter `id` with its content.
///
/// # Errors
/// [`DeadLetterError::NotFound`], broker failures.
pub(crate) async fn inspect(router: &Router, id: &str) -> Result<Inspected, DeadLetterError> {
    let fetched = fetch(router, SCAN_LIMIT).await?;
    let found = fetched.position(id).map(|index| {
        let message = &fetched.messages[index];
        let envelope = mirsal_envelope::json::envelope_view_bytes(&message.delivery.data).ok();
        Inspected { dead_letter: describe(message), envelope }
    });
    fetched.settle(&[]).await?;
    found.ok_or_else(|| DeadLetterError::NotFound(id.to_owned()))
}

/// Removes dead letter `id` for good (recorded in the audit log).
///
/// # Errors
/// [`DeadLetterError::NotFound`], broker failures.
pub(crate) async fn discard(router: &Router, id: &str) -> Result<DeadLetter, DeadLetterError> {
    let fetched = fetch(router, SCAN_LIMIT).await?;
    let Some(index) = fetched.position(id) else {
        fetched.settle(&[]).await?;
        return Err(DeadLetterError::NotFound(id.to_owned()));
    };
    let discarded = describe(&fetched.messages[index]);
    let mut consumed = vec![false; fetched.messages.len()];
    consumed[index] = true;
    fetched.settle(&consumed).await?;
    let detail = format!("dead letter {id}");
    let envelope = discarded.message_id.as_deref().unwrap_or("");
    pipeline::record_event(
        router,
        "dead-letter-discarded",
        envelope,
        discarded.origin.as_deref().unwrap_or(""),
        detail,
    )
    .await
    .map_err(broker)?;
    Ok(discarded)
}

/// Replays dead letter `id`, or every dead letter when `id` is `None`, at most
/// `per_second` a second.
///
/// # Errors
/// [`DeadLetterError::NotFound`] for an unknown `id`, broker failures.
pub(crate) async fn replay(
    router: &Arc<Router>,
    id: Option<&str>,
    per_second: u32,
) -> Result<Vec<Replayed>, DeadLetterError> {
    let pause = Duration::from_secs(1) / per_second.max(1);
    let fetched = fetch(router, SCAN_LIMIT).await?;
    let mut consumed = vec![false; fetched.messages.len()];
    let mut results = Vec::new();
    for (index, message) in fetched.messages.iter().enumerate() {
        let this = id_of(&message.delivery.data);
        if id.is_some_and(|wanted| wanted != this) {
            continue;
        }
        let origin = describe(message).origin;
        let body = Bytes::from(message.delivery.data.clone());
        let outcome = pipeline::replay(router, body, origin.as_deref()).await;
        consumed[index] = outcome.outcome != "kept";
        results.push(Replayed { id: this, ..outcome });
        if id.is_some() {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    fetched.settle(&consumed).await?;
    if let Some(id) = id
        && results.is_empty()
    {
        return Err(DeadLetterError::NotFound(id.to_owned()));
    }
    Ok(results)
}
