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
//!
//! The same topology can also be declared over the management HTTP API (`mirsal agency
//! add` does, so onboarding works before the router ever ran): [`EXCHANGES`] and
//! [`arguments_json`] give it exactly the properties the AMQP declarations use, so the
//! router's own declarations later match and are no-ops.

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};

use serde_json::{Map, Value};

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

/// The exchanges, with their AMQP types. All are durable, not auto-deleted, not internal,
/// and have no arguments.
pub const EXCHANGES: [(&str, ExchangeKind); 3] = [
    (SUBMIT_EXCHANGE, ExchangeKind::Fanout),
    (DELIVER_EXCHANGE, ExchangeKind::Direct),
    (DEAD_LETTER_EXCHANGE, ExchangeKind::Fanout),
];

/// The name of an exchange type as the management API spells it (`"fanout"`, ...).
pub fn exchange_type(kind: &ExchangeKind) -> &str {
    match kind {
        ExchangeKind::Custom(name) => name,
        ExchangeKind::Direct => "direct",
        ExchangeKind::Fanout => "fanout",
        ExchangeKind::Headers => "headers",
        ExchangeKind::Topic => "topic",
    }
}

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

/// `arguments` as the JSON object the management API takes when it declares a queue
/// (`PUT /api/queues/...`), e.g. `arguments_json(&work_queue_arguments(settings))`. The
/// broker turns JSON strings back into long strings and JSON integers into integers,
/// which it compares as equal to the AMQP declaration's (RabbitMQ compares integer
/// arguments by value, whatever their width), so a queue declared either way accepts the
/// other's declaration.
///
/// Values JSON has no form for (decimals, byte arrays, void) become `null`; the topology
/// uses none of them.
pub fn arguments_json(arguments: &FieldTable) -> Map<String, Value> {
    arguments.into_iter().map(|(key, value)| (key.to_string(), json_value(value))).collect()
}

fn json_value(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Timestamp(n) => Value::from(*n),
        AMQPValue::Float(n) => serde_json::Number::from_f64(f64::from(*n)).map_or(Value::Null, Value::Number),
        AMQPValue::Double(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        AMQPValue::ShortString(s) => Value::String(s.to_string()),
        AMQPValue::LongString(s) => Value::String(s.to_string()),
        AMQPValue::FieldArray(items) => Value::Array(items.as_slice().iter().map(json_value).collect()),
        AMQPValue::FieldTable(table) => Value::Object(arguments_json(table)),
        AMQPValue::DecimalValue(_) | AMQPValue::ByteArray(_) | AMQPValue::Void => Value::Null,
    }
}

/// The arguments of the ingress queue: a work queue with a single active consumer, so
/// one router consumes at a time and a standby takes over when it goes away.
pub fn ingress_arguments(settings: QueueSettings) -> FieldTable {
    let mut args = work_queue_arguments(settings);
    args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    args
}

/// The arguments of the dead-letter queue (quorum; it dead-letters nowhere).
pub fn dead_letter_queue_arguments() -> FieldTable {
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
    for (name, kind) in EXCHANGES {
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
    channel
        .queue_declare(INGRESS_QUEUE.into(), durable_queue(), ingress_arguments(settings))
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_json_form_of_the_work_queue_arguments_is_the_same_arguments() {
        let arguments = arguments_json(&work_queue_arguments(QueueSettings { delivery_limit: 7 }));
        assert_eq!(
            Value::Object(arguments),
            json!({
                "x-queue-type": "quorum",
                "x-delivery-limit": 7,
                "x-dead-letter-exchange": "mirsal.dead-letters",
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            })
        );
    }

    #[test]
    fn exchange_types_are_spelled_as_the_management_api_wants() {
        let types: Vec<(&str, &str)> =
            EXCHANGES.iter().map(|(name, kind)| (*name, exchange_type(kind))).collect();
        assert_eq!(
            types,
            [("mirsal.submit", "fanout"), ("mirsal.deliver", "direct"), ("mirsal.dead-letters", "fanout")]
        );
    }
}
