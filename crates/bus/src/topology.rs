//! The broker topology, as code.
//!
//! ```text
//! agencies ──► [mirsal.submit] (fanout) ──► mirsal.ingress (quorum) ──► router
//! router   ──► [mirsal.deliver] (direct, key = agency code) ──► mirsal.inbox.CODE (quorum) ──► adapter
//! every quorum queue dead-letters (at least once) into [mirsal.dead-letters] ──► mirsal.dead-letters
//! ```
//!
//! Every work queue is a quorum queue with an explicit delivery limit (a message that
//! keeps failing is dead-lettered instead of looping), at-least-once dead-lettering, and
//! `overflow = reject-publish` (which at-least-once dead-lettering requires, and which
//! turns a full queue into a nacked publish the publisher sees). Declaring is idempotent:
//! the same names with the same arguments are a no-op.

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};

use crate::BusError;

/// Where agencies publish (their only write permission).
pub const SUBMIT_EXCHANGE: &str = "mirsal.submit";
/// The router's input.
pub const INGRESS_QUEUE: &str = "mirsal.ingress";
/// Where the router publishes, routed by agency code.
pub const DELIVER_EXCHANGE: &str = "mirsal.deliver";
/// Where refused and poisoned messages end up.
pub const DEAD_LETTER_EXCHANGE: &str = "mirsal.dead-letters";
pub const DEAD_LETTER_QUEUE: &str = "mirsal.dead-letters";
/// Prefix of the per-agency inbox queues.
pub const INBOX_PREFIX: &str = "mirsal.inbox.";

/// The inbox queue of agency `code` (an agency's only read permission).
pub fn inbox_queue(code: &str) -> String {
    format!("{INBOX_PREFIX}{code}")
}

/// Queue arguments that are part of the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// Deliveries of one message before it is dead-lettered.
    pub delivery_limit: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self { delivery_limit: 20 }
    }
}

/// The arguments of a Mirsal work queue: quorum, delivery limit, at-least-once
/// dead-lettering into [`DEAD_LETTER_EXCHANGE`], reject-publish overflow.
pub fn work_queue_arguments(settings: QueueSettings) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
    args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(i64::from(settings.delivery_limit)));
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from(DEAD_LETTER_EXCHANGE)),
    );
    args.insert("x-dead-letter-strategy".into(), AMQPValue::LongString(LongString::from("at-least-once")));
    args.insert("x-overflow".into(), AMQPValue::LongString(LongString::from("reject-publish")));
    args
}

fn dead_letter_queue_arguments() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
    args
}

fn durable() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() }
}

/// Declares the exchanges, the ingress queue and the dead-letter queue.
///
/// # Errors
/// A refused declaration (for example an existing queue with other arguments: the
/// broker closes the channel with PRECONDITION_FAILED).
pub async fn declare_core(channel: &Channel, settings: QueueSettings) -> Result<(), BusError> {
    for (name, kind) in [
        (SUBMIT_EXCHANGE, ExchangeKind::Fanout),
        (DELIVER_EXCHANGE, ExchangeKind::Direct),
        (DEAD_LETTER_EXCHANGE, ExchangeKind::Fanout),
    ] {
        channel
            .exchange_declare(name.into(), kind, durable(), FieldTable::default())
            .await
            .map_err(BusError::amqp(format!("declaring exchange {name}")))?;
    }
    channel
        .queue_declare(DEAD_LETTER_QUEUE.into(), durable_queue(), dead_letter_queue_arguments())
        .await
        .map_err(BusError::amqp(format!("declaring queue {DEAD_LETTER_QUEUE}")))?;
    bind(channel, DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE, "").await?;
    // One router consumes at a time; a standby router takes over when it goes away.
    let mut ingress = work_queue_arguments(settings);
    ingress.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    channel
        .queue_declare(INGRESS_QUEUE.into(), durable_queue(), ingress)
        .await
        .map_err(BusError::amqp(format!("declaring queue {INGRESS_QUEUE}")))?;
    bind(channel, INGRESS_QUEUE, SUBMIT_EXCHANGE, "").await
}

/// Declares agency `code`'s inbox queue and binds it to [`DELIVER_EXCHANGE`] under the
/// agency's code.
///
/// # Errors
/// A refused declaration.
pub async fn declare_inbox(channel: &Channel, code: &str, settings: QueueSettings) -> Result<(), BusError> {
    let queue = inbox_queue(code);
    channel
        .queue_declare(queue.as_str().into(), durable_queue(), work_queue_arguments(settings))
        .await
        .map_err(BusError::amqp(format!("declaring queue {queue}")))?;
    bind(channel, &queue, DELIVER_EXCHANGE, code).await
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), BusError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(BusError::amqp(format!("binding {queue} to {exchange}")))
}
