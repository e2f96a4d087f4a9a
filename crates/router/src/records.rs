//! What the router keeps in sled, one protobuf message per record (compact, and new
//! fields can be added without a migration). These are internal: they never cross the
//! wire.

use bytes::Bytes;

pub use mirsal_envelope::Kind;

/// An accepted envelope, in the archive.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EnvelopeRecord {
    /// The encoded envelope exactly as it arrived; redelivery sends these bytes.
    #[prost(bytes = "bytes", tag = "1")]
    pub envelope: Bytes,
    /// SHA-256 of its `signed_content`.
    #[prost(bytes = "vec", tag = "2")]
    pub digest: Vec<u8>,
    #[prost(string, tag = "3")]
    pub sender: String,
    #[prost(enumeration = "Kind", tag = "4")]
    pub kind: i32,
    #[prost(string, repeated, tag = "5")]
    pub recipients: Vec<String>,
    /// Router time of acceptance, Unix milliseconds.
    #[prost(int64, tag = "6")]
    pub accepted_at_ms: i64,
    /// Audit sequence number of the acceptance event: the proof of submission.
    #[prost(uint64, tag = "7")]
    pub audit_sequence: u64,
    #[prost(string, tag = "8")]
    pub thread_id: String,
    /// For receipts: the letter they are about.
    #[prost(string, tag = "9")]
    pub about: String,
    #[prost(int64, tag = "10")]
    pub created_at_ms: i64,
    #[prost(int32, tag = "11")]
    pub priority: i32,
    #[prost(int32, tag = "12")]
    pub classification: i32,
    /// Unix milliseconds; 0 when none.
    #[prost(int64, tag = "13")]
    pub reply_due_ms: i64,
    /// Set once the work after acceptance is confirmed by the broker: the accepted
    /// notice for letters, the forwarding for receipts.
    #[prost(bool, tag = "14")]
    pub completed: bool,
    /// The plain letter's outgoing number (sealed letters hide it from the router).
    #[prost(string, tag = "15")]
    pub outgoing_number: String,
}

/// Where a letter stands for one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(i32)]
pub enum Status {
    Unknown = 0,
    Accepted = 1,
    Queued = 2,
    Delivered = 3,
    Registered = 4,
    Referred = 5,
    Answered = 6,
    Closed = 7,
    Rejected = 8,
    Refused = 9,
    Recalled = 10,
    Expired = 11,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Accepted => "accepted",
            Self::Queued => "queued",
            Self::Delivered => "delivered",
            Self::Registered => "registered",
            Self::Referred => "referred",
            Self::Answered => "answered",
            Self::Closed => "closed",
            Self::Rejected => "rejected",
            Self::Refused => "refused",
            Self::Recalled => "recalled",
            Self::Expired => "expired",
        }
    }
}

/// One step of a letter's life at one recipient.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Transition {
    #[prost(enumeration = "Status", tag = "1")]
    pub status: i32,
    /// Router time, Unix milliseconds.
    #[prost(int64, tag = "2")]
    pub at_ms: i64,
    /// The receipt that reported it, when one did.
    #[prost(string, tag = "3")]
    pub receipt_id: String,
    /// Incoming number, department, reply id, refusal reason: what the receipt said.
    #[prost(string, tag = "4")]
    pub detail: String,
}

/// The tracking row of (letter, recipient).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackingRecord {
    #[prost(string, tag = "1")]
    pub letter_id: String,
    #[prost(string, tag = "2")]
    pub recipient: String,
    #[prost(enumeration = "Status", tag = "3")]
    pub status: i32,
    #[prost(message, repeated, tag = "4")]
    pub transitions: Vec<Transition>,
    #[prost(string, tag = "5")]
    pub incoming_number: String,
    #[prost(bool, tag = "6")]
    pub delivery_overdue_notified: bool,
    #[prost(bool, tag = "7")]
    pub reply_overdue_notified: bool,
    #[prost(string, tag = "8")]
    pub sender: String,
}

/// One event of the append-only audit log.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuditEvent {
    #[prost(uint64, tag = "1")]
    pub sequence: u64,
    #[prost(int64, tag = "2")]
    pub at_ms: i64,
    /// `accepted`, `queued`, `receipt`, `rejected`, `overdue`, ...
    #[prost(string, tag = "3")]
    pub kind: String,
    #[prost(string, tag = "4")]
    pub envelope_id: String,
    #[prost(string, tag = "5")]
    pub agency: String,
    #[prost(string, tag = "6")]
    pub detail: String,
    /// SHA-256 of the previous event (32 zero bytes for the first).
    #[prost(bytes = "vec", tag = "7")]
    pub previous_hash: Vec<u8>,
    /// SHA-256 of this event encoded with `hash` empty.
    #[prost(bytes = "vec", tag = "8")]
    pub hash: Vec<u8>,
}

/// The chain head as signed by the platform key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChainHead {
    #[prost(uint64, tag = "1")]
    pub sequence: u64,
    #[prost(bytes = "vec", tag = "2")]
    pub hash: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub at_ms: i64,
}

/// A message taken from `mirsal.dead-letters` and kept here, where the platform team can
/// look at it as often as it likes without the broker counting a delivery each time.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeadLetterRecord {
    /// The first 16 hex digits of the SHA-256 of `body`.
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(bytes = "bytes", tag = "2")]
    pub body: Bytes,
    /// The AMQP `message_id` (the envelope id the publisher gave).
    #[prost(string, optional, tag = "3")]
    pub message_id: Option<String>,
    #[prost(int32, optional, tag = "4")]
    pub reason_code: Option<i32>,
    #[prost(string, optional, tag = "5")]
    pub reason: Option<String>,
    /// The agency that published it, as RabbitMQ authenticated it (or as the router
    /// recorded it when it refused the envelope).
    #[prost(string, optional, tag = "6")]
    pub origin: Option<String>,
    /// The queue it died in.
    #[prost(string, optional, tag = "7")]
    pub queue: Option<String>,
    /// `refused` (by the router), or RabbitMQ's reason: `rejected`, `delivery_limit`, …
    #[prost(string, tag = "8")]
    pub death: String,
    /// When the router took it from the dead-letter queue (the first time).
    #[prost(int64, tag = "9")]
    pub received_at_ms: i64,
    /// When it died last (the same bytes can die more than once: a refused replay).
    #[prost(int64, tag = "10")]
    pub last_died_at_ms: i64,
    /// How many times these bytes reached the dead-letter queue.
    #[prost(uint32, tag = "11")]
    pub deaths: u32,
    /// Its `mirsal-kind` header, for a copy that died in an inbox.
    #[prost(string, optional, tag = "12")]
    pub kind: Option<String>,
}
