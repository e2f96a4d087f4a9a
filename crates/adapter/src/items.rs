//! What the SDK hands to the application, and what the application tells it back.

use bytes::Bytes;
use mirsal_envelope::{Time, pb};
use serde::{Deserialize, Serialize};

/// Something received: a letter (opened if it was sealed), a receipt about a letter this
/// agency sent, or a notice from the platform.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// The envelope id: the key to deduplicate on and to acknowledge with.
    pub id: String,
    /// `letter`, `sealed`, `receipt` or `notice`.
    pub kind: &'static str,
    pub sender: String,
    pub received_at: Time,
    pub acknowledged: bool,
    pub header: pb::Header,
    pub body: ItemBody,
    /// SHA-256 of the envelope's signed content, hexadecimal.
    pub digest: String,
    /// The envelope exactly as received, for the agency's own archive.
    #[serde(skip)]
    pub envelope: Bytes,
}

/// The content of an [`Item`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemBody {
    /// A letter, plain or opened.
    Letter(pb::Letter),
    /// A sealed letter this agency could not open (the reason says why).
    Unreadable { reason: String, reason_code: i32 },
    /// A recipient's receipt about a letter this agency sent.
    Receipt(pb::Receipt),
    /// A notice from the platform.
    Notice(pb::Notice),
}

/// A status the recipient reports for a letter it received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum StatusUpdate {
    /// Recorded in the registry under the agency's own incoming number.
    Registered {
        incoming_number: String,
        /// `YYYY-MM-DD`; today when empty.
        #[serde(default)]
        incoming_date: String,
    },
    /// Referred to a department.
    Referred {
        department: String,
        #[serde(default)]
        deadline: String,
        #[serde(default)]
        note: String,
    },
    /// Answered by the envelope `reply_id`.
    Answered { reply_id: String },
    Closed {
        #[serde(default)]
        note: String,
    },
    /// Refused, e.g. because it was misaddressed.
    Refused { reason: RefusalReason, text: String },
}

/// Why a letter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    Misaddressed,
    NotCompetent,
    Unreadable,
    Other,
}

impl StatusUpdate {
    /// The receipt status on the wire.
    pub fn to_wire(&self, today: &str) -> pb::receipt::Status {
        use pb::receipt::Status;
        match self {
            Self::Registered { incoming_number, incoming_date } => Status::Registered(pb::Registered {
                incoming_number: incoming_number.clone(),
                incoming_date: if incoming_date.is_empty() {
                    today.to_owned()
                } else {
                    incoming_date.clone()
                },
            }),
            Self::Referred { department, deadline, note } => Status::Referred(pb::Referred {
                department: department.clone(),
                deadline: deadline.clone(),
                note: note.clone(),
            }),
            Self::Answered { reply_id } => Status::Answered(pb::Answered { reply_id: reply_id.clone() }),
            Self::Closed { note } => Status::Closed(pb::Closed { note: note.clone() }),
            Self::Refused { reason, text } => {
                let reason = match reason {
                    RefusalReason::Misaddressed => pb::RefusalReason::Misaddressed,
                    RefusalReason::NotCompetent => pb::RefusalReason::NotCompetent,
                    RefusalReason::Unreadable => pb::RefusalReason::Unreadable,
                    RefusalReason::Other => pb::RefusalReason::Other,
                };
                Status::Refused(pb::Refused { reason: reason as i32, text: text.clone() })
            }
        }
    }

    /// The tracking status name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Registered { .. } => "registered",
            Self::Referred { .. } => "referred",
            Self::Answered { .. } => "answered",
            Self::Closed { .. } => "closed",
            Self::Refused { .. } => "refused",
        }
    }
}

/// The local tracking view of a letter this agency sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentTracking {
    pub id: String,
    pub subject: String,
    pub classification: String,
    pub created_at: Option<Time>,
    /// `queued` (durable in the outbox), `published` (the broker confirmed), `accepted`
    /// (the platform's signed proof of submission arrived), `rejected` (the platform
    /// refused it, see `rejection`), `failing` (the broker refuses the publish, e.g. the
    /// agency's permissions were withdrawn; it stays in the outbox and is tried again,
    /// and `rejection.text` says why).
    pub state: String,
    pub published_at: Option<Time>,
    pub accepted_at: Option<Time>,
    /// The audit sequence number in the platform's accepted notice.
    pub audit_sequence: Option<u64>,
    pub rejection: Option<Rejection>,
    pub recipients: Vec<RecipientTracking>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub code: i32,
    pub reason: String,
    pub text: String,
}

/// Where the letter stands at one recipient, and how it got there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientTracking {
    pub agency: String,
    pub status: String,
    pub timeline: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub status: String,
    pub at: Option<Time>,
    pub detail: String,
}
