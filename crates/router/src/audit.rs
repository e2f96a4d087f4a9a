//! The audit log: every tracking event, hash-chained.
//!
//! Each event carries the SHA-256 of the one before it and its own hash, and the
//! router periodically signs the chain head (sequence and hash) with the platform key.
//! [`verify`] recomputes the whole chain and reports the first event that was altered,
//! removed or moved, and checks every signed head against the recomputed chain, so
//! events cut off the end after a head was signed are caught too.

use bytes::Bytes;
use mirsal_envelope::{PLATFORM_CODE, SigningIdentity, Time, Verifier, pb};
use prost::Message as _;

use crate::{
    records::{AuditEvent, ChainHead},
    store::{Store, StoreError, event_hash, head_bytes},
};

/// What is wrong with the chain, at the first bad place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditProblem {
    #[error("event {sequence} was altered: its hash does not match its content")]
    Altered { sequence: u64 },
    #[error("event {expected} is missing (the next one is {found}): events were removed or reordered")]
    Missing { expected: u64, found: u64 },
    #[error("event {sequence} does not follow the event before it: events were removed or reordered")]
    BrokenLink { sequence: u64 },
    #[error("the event stored under {key} says it is event {sequence}: events were moved")]
    Misplaced { key: String, sequence: u64 },
    #[error("event under {key} does not decode")]
    Undecodable { key: String },
    #[error(
        "the signed head at event {sequence} does not match the chain: events up to it were altered or removed"
    )]
    HeadMismatch { sequence: u64 },
    #[error("the signed head at event {sequence} has a bad signature: {reason}")]
    HeadSignature { sequence: u64, reason: String },
}

impl AuditProblem {
    /// The first bad event's sequence number.
    pub fn sequence(&self) -> u64 {
        match self {
            Self::Altered { sequence }
            | Self::BrokenLink { sequence }
            | Self::Misplaced { sequence, .. }
            | Self::HeadMismatch { sequence }
            | Self::HeadSignature { sequence, .. } => *sequence,
            Self::Missing { expected, .. } => *expected,
            Self::Undecodable { .. } => 0,
        }
    }
}

/// A chain that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub events: u64,
    pub last_hash: String,
    pub signed_heads: usize,
}

/// Why the audit could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Problem(#[from] AuditProblem),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Recomputes the chain in `store` and checks the signed heads with `platform` (a
/// verifier trusting the platform CA).
///
/// # Errors
/// [`AuditError::Problem`] at the first bad event.
pub fn verify(store: &Store, platform: &Verifier) -> Result<AuditReport, AuditError> {
    let mut hashes: Vec<[u8; 32]> = Vec::new();
    let mut previous = [0u8; 32];
    for item in store.audit_events() {
        let (key, event) = match item {
            Ok(pair) => pair,
            Err(StoreError::Corrupt { what, .. }) => {
                return Err(AuditProblem::Undecodable { key: what }.into());
            }
            Err(other) => return Err(other.into()),
        };
        let expected = hashes.len() as u64 + 1;
        let key_sequence = <[u8; 8]>::try_from(key.as_slice()).map_or(0, u64::from_be_bytes);
        if key_sequence != event.sequence {
            return Err(
                AuditProblem::Misplaced { key: key_sequence.to_string(), sequence: event.sequence }.into()
            );
        }
        if event.sequence != expected {
            return Err(AuditProblem::Missing { expected, found: event.sequence }.into());
        }
        if event_hash(&event)[..] != event.hash[..] {
            return Err(AuditProblem::Altered { sequence: event.sequence }.into());
        }
        if event.previous_hash[..] != previous[..] {
            return Err(AuditProblem::BrokenLink { sequence: event.sequence }.into());
        }
        previous.copy_from_slice(&event.hash);
        hashes.push(previous);
    }
    let mut signed_heads = 0;
    for item in store.heads() {
        let (sequence, signed) = item?;
        check_head(sequence, &signed, &hashes, platform)?;
        signed_heads += 1;
    }
    Ok(AuditReport { events: hashes.len() as u64, last_hash: hex::encode(previous), signed_heads })
}

fn check_head(
    sequence: u64,
    signed: &[u8],
    hashes: &[[u8; 32]],
    platform: &Verifier,
) -> Result<(), AuditProblem> {
    let bad = |reason: String| AuditProblem::HeadSignature { sequence, reason };
    let envelope = pb::Envelope::decode(signed).map_err(|e| bad(e.to_string()))?;
    let head = ChainHead::decode(envelope.signed_content.clone()).map_err(|e| bad(e.to_string()))?;
    let at = Time::from_timestamp_millis(head.at_ms).unwrap_or_default();
    let signer = platform.verify_detached(&envelope, at).map_err(|e| bad(e.to_string()))?;
    if signer.as_str() != PLATFORM_CODE {
        return Err(bad(format!("signed by {signer}, not the platform")));
    }
    let index = usize::try_from(head.sequence).unwrap_or(usize::MAX);
    let matches = index >= 1
        && head.sequence == sequence
        && hashes.get(index - 1).is_some_and(|hash| hash[..] == head.hash[..]);
    if matches { Ok(()) } else { Err(AuditProblem::HeadMismatch { sequence: head.sequence }) }
}

/// Signs the current chain head if events were added since the last signed one.
/// Returns the signed sequence, or `None` when there was nothing new.
///
/// # Errors
/// Storage or signing failures.
pub fn sign_head(
    store: &Store,
    platform: &SigningIdentity,
    now: Time,
) -> Result<Option<u64>, AuditSignError> {
    let (sequence, hash) = store.chain_head();
    if sequence == 0 || sequence <= store.last_signed_sequence()? {
        return Ok(None);
    }
    let head = ChainHead { sequence, hash, at_ms: now.timestamp_millis() };
    let envelope = platform
        .sign_encoded(Bytes::from(head_bytes(&head)))
        .map_err(|e| AuditSignError::Sign(e.to_string()))?;
    store.put_head(sequence, &envelope.encode_to_vec())?;
    Ok(Some(sequence))
}

/// The chain head could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum AuditSignError {
    #[error("cannot sign the audit chain head: {0}")]
    Sign(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One event as people read it (`mirsal audit` output).
pub fn describe(event: &AuditEvent) -> String {
    let at = Time::from_timestamp_millis(event.at_ms).map(|t| t.to_rfc3339()).unwrap_or_default();
    format!(
        "{} {} {} {} {} {}",
        event.sequence, at, event.kind, event.envelope_id, event.agency, event.detail
    )
}
