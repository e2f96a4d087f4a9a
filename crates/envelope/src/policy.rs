//! The knobs of validation: how large things may be and how far clocks may drift.

use std::time::Duration;

/// Size limits. Every limit is checked before any work proportional to the input is
/// done beyond decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The whole encoded envelope.
    pub max_envelope_bytes: usize,
    pub max_recipients: usize,
    pub max_attachments: usize,
    /// One attachment's content.
    pub max_attachment_bytes: usize,
    /// Subject, in characters.
    pub max_subject_chars: usize,
    /// Body, in bytes of UTF-8.
    pub max_body_bytes: usize,
    /// Every other text field (numbers, names, notes, references), in characters.
    pub max_field_chars: usize,
    pub max_references: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_envelope_bytes: 16 * 1024 * 1024,
            max_recipients: 256,
            max_attachments: 64,
            max_attachment_bytes: 12 * 1024 * 1024,
            max_subject_chars: 500,
            max_body_bytes: 1024 * 1024,
            max_field_chars: 2_000,
            max_references: 64,
        }
    }
}

/// Validation policy: limits and the accepted window for `created_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub limits: Limits,
    /// How far an envelope's `created_at` may be ahead of the verifier's clock (and
    /// behind it, when `max_age` is shorter).
    pub max_clock_skew: Duration,
    /// How far `created_at` may be behind the verifier's clock. The router accepts old
    /// envelopes (they may have waited in the ingress queue through an outage; replays
    /// are caught by envelope id), so it sets this much longer than the skew.
    pub max_age: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_clock_skew: Duration::from_secs(300),
            max_age: Duration::from_secs(300),
        }
    }
}
