//! Notices: what the platform tells an agency, signed with the platform key.

use bytes::Bytes;
use mirsal_envelope::{Draft, Policy, ReasonCode, SigningIdentity, Time, pb, time::to_timestamp};
use prost::Message as _;

/// A signed notice ready to publish.
#[derive(Debug, Clone)]
pub struct SignedNotice {
    pub id: String,
    pub bytes: Bytes,
}

/// Signs notices with the platform identity (CN `MIRSAL`).
#[derive(Debug)]
pub struct Notary {
    identity: SigningIdentity,
    policy: Policy,
}

/// Notice signing failed (a bug or a broken platform key, never bad input).
#[derive(Debug, thiserror::Error)]
#[error("cannot sign a notice: {0}")]
pub struct NoticeError(String);

impl Notary {
    pub fn new(identity: SigningIdentity, policy: Policy) -> Self {
        Self { identity, policy }
    }

    pub fn identity(&self) -> &SigningIdentity {
        &self.identity
    }

    /// Proof of submission: the router accepted envelope `about` at `router_time` as
    /// audit event `sequence`.
    ///
    /// # Errors
    /// See [`NoticeError`].
    pub fn accepted(
        &self,
        to: &str,
        about: (&str, [u8; 32]),
        router_time: Time,
        sequence: u64,
        now: Time,
    ) -> Result<SignedNotice, NoticeError> {
        let kind = pb::notice::Kind::Accepted(pb::Accepted {
            router_time: Some(to_timestamp(router_time)),
            audit_sequence: sequence,
        });
        self.sign(Draft::notice(to, Some(about), kind), now)
    }

    /// The envelope `about` was refused for `code`.
    ///
    /// # Errors
    /// See [`NoticeError`].
    pub fn rejected(
        &self,
        to: &str,
        about: Option<(&str, [u8; 32])>,
        code: ReasonCode,
        text: &str,
        now: Time,
    ) -> Result<SignedNotice, NoticeError> {
        let limit = self.policy.limits.max_field_chars;
        let text: String = text.chars().take(limit).collect();
        let kind = pb::notice::Kind::Rejected(pb::Rejected { code: code as i32, text });
        self.sign(Draft::notice(to, about, kind), now)
    }

    /// `agency` has not delivered (or answered) the letter `about` by `due`.
    ///
    /// # Errors
    /// See [`NoticeError`].
    pub fn overdue(
        &self,
        to: &str,
        about: (&str, [u8; 32]),
        kind: pb::OverdueKind,
        agency: &str,
        due: Time,
        now: Time,
    ) -> Result<SignedNotice, NoticeError> {
        let kind = pb::notice::Kind::Overdue(pb::Overdue {
            kind: kind as i32,
            agency: agency.to_owned(),
            due: Some(to_timestamp(due)),
        });
        self.sign(Draft::notice(to, Some(about), kind), now)
    }

    /// The directory snapshot with the current CRL, in answer to request `about`.
    ///
    /// # Errors
    /// See [`NoticeError`].
    pub fn directory(
        &self,
        to: &str,
        about: Option<(&str, [u8; 32])>,
        agencies: Vec<pb::DirectoryEntry>,
        crl: Bytes,
        now: Time,
    ) -> Result<SignedNotice, NoticeError> {
        let snapshot = pb::DirectorySnapshot { agencies, as_of: Some(to_timestamp(now)), crl };
        let kind = pb::notice::Kind::Directory(snapshot);
        self.sign(Draft::notice(to, about, kind), now)
    }

    /// An archived envelope, in answer to request `about`.
    ///
    /// # Errors
    /// See [`NoticeError`].
    pub fn retrieval(
        &self,
        to: &str,
        about: Option<(&str, [u8; 32])>,
        envelope: Bytes,
        now: Time,
    ) -> Result<SignedNotice, NoticeError> {
        let kind = pb::notice::Kind::Retrieval(pb::RetrievalResponse { envelope });
        self.sign(Draft::notice(to, about, kind), now)
    }

    fn sign(&self, draft: Draft, now: Time) -> Result<SignedNotice, NoticeError> {
        let content = draft.build(&self.policy, now).map_err(|e| NoticeError(e.to_string()))?;
        let id = content.header.as_ref().map(|h| h.envelope_id.clone()).unwrap_or_default();
        let envelope = self.identity.sign(&content).map_err(|e| NoticeError(e.to_string()))?;
        Ok(SignedNotice { id, bytes: Bytes::from(envelope.encode_to_vec()) })
    }
}
