//! How Mirsal messages are labelled on the wire.
//!
//! The body of every message is an encoded `mirsal.v1.Envelope`. Properties:
//! `message_id` = envelope id, `content_type` = [`CONTENT_TYPE`], persistent delivery,
//! `user_id` = the publishing agency (set by adapters; RabbitMQ refuses a forged one).
//! The router never copies `user_id` when it republishes (RabbitMQ would close its
//! channel); it carries the origin it checked in [`ORIGIN`] instead.

use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable, LongString, ShortString},
};

/// `content_type` of every Mirsal message.
pub const CONTENT_TYPE: &str = "application/x-protobuf; proto=mirsal.v1.Envelope";
/// The sender as checked by the router: header sender = certificate = AMQP user.
pub const ORIGIN: &str = "mirsal-origin";
/// What the envelope holds: `letter`, `sealed`, `receipt`, `request` or `notice`.
pub const KIND: &str = "mirsal-kind";
/// The trace id that follows an envelope through adapter, router and recipient.
pub const TRACE_ID: &str = "mirsal-trace-id";
/// On dead letters: the numeric reason code and its text.
pub const REASON_CODE: &str = "mirsal-reason-code";
pub const REASON: &str = "mirsal-reason";
/// On dead letters the router refused: the queue the envelope came from.
pub const QUEUE: &str = "mirsal-queue";
/// Set by RabbitMQ on quorum queue redeliveries.
pub const DELIVERY_COUNT: &str = "x-delivery-count";

/// Properties of a persistent Mirsal message with id `message_id`.
pub fn envelope_properties(message_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_message_id(message_id.into())
        .with_content_type(CONTENT_TYPE.into())
        .with_delivery_mode(2)
}

/// Adds a string header to `properties`.
pub fn with_header(properties: BasicProperties, name: &str, value: &str) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(ShortString::from(name), AMQPValue::LongString(LongString::from(value)));
    properties.with_headers(headers)
}

/// A string header of `headers`, if present and textual.
pub fn header_str<'a>(headers: Option<&'a FieldTable>, name: &str) -> Option<&'a str> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(value) => std::str::from_utf8(value.as_bytes()).ok(),
        AMQPValue::ShortString(value) => Some(value.as_str()),
        _ => None,
    }
}

/// An integer header of `headers`, whatever integer type the broker used.
pub fn header_u64(headers: Option<&FieldTable>, name: &str) -> Option<u64> {
    match headers?.inner().get(name)? {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortShortUInt(v) => Some(u64::from(*v)),
        _ => None,
    }
}
