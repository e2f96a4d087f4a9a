//! The content rules of the contract.
//!
//! The same rules run when a draft is built (so an agency cannot send what the router
//! would refuse) and when an envelope is verified (so nobody trusts a sender to have
//! run them). Each broken rule is a [`ValidationError`] with its own [`ReasonCode`].

use std::collections::HashSet;

use uuid::Uuid;

use crate::{
    PLATFORM_CODE, ReasonCode, code,
    pb::{self, signed_content::Body},
    policy::{Limits, Policy},
    time::{Time, from_timestamp, is_calendar_date},
};

/// A rule of the contract that the content breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("missing {0}")]
    MissingField(&'static str),
    #[error("{field}: {problem}")]
    InvalidField { field: &'static str, problem: String },
    #[error("{field}: invalid agency code {code:?}")]
    InvalidAgencyCode { field: &'static str, code: String },
    #[error("{0} is reserved for the platform; letters and receipts are between agencies")]
    ReservedAgencyCode(&'static str),
    #[error("{field}: {value:?} is not a UUIDv7 in canonical form")]
    InvalidEnvelopeId { field: &'static str, value: String },
    #[error("no recipients")]
    NoRecipients,
    #[error("recipient {0} is listed more than once")]
    DuplicateRecipient(String),
    #[error("sender {0} is also a recipient")]
    SenderIsRecipient(String),
    #[error("the subject is empty")]
    EmptySubject,
    #[error("attachment {name:?}: SHA-256 does not match its content")]
    AttachmentDigestMismatch { name: String },
    #[error("attachment {name:?}: {problem}")]
    InvalidAttachment { name: String, problem: String },
    #[error("{what}: {actual} is over the limit of {limit}")]
    LimitExceeded { what: &'static str, limit: usize, actual: usize },
    #[error(
        "created_at {created_at} is outside the accepted window around now ({now}): at most {ahead_secs} s ahead and {behind_secs} s behind"
    )]
    ClockSkew { created_at: Time, now: Time, ahead_secs: u64, behind_secs: u64 },
    #[error("{0}")]
    InvalidTimes(String),
    #[error("expired at {0}")]
    Expired(Time),
    #[error("a {0} letter must be sealed")]
    SealingRequired(&'static str),
    #[error("sealed letter: {0}")]
    InvalidSealed(String),
    #[error("receipt: {0}")]
    InvalidReceipt(String),
    #[error("request: {0}")]
    InvalidRequest(String),
    #[error("notice: {0}")]
    InvalidNotice(String),
}

impl ValidationError {
    /// The stable reason code reported for this error.
    pub fn reason(&self) -> ReasonCode {
        match self {
            Self::MissingField(_) => ReasonCode::MissingField,
            Self::InvalidField { .. } => ReasonCode::InvalidField,
            Self::InvalidAgencyCode { .. } | Self::ReservedAgencyCode(_) => ReasonCode::InvalidAgencyCode,
            Self::InvalidEnvelopeId { .. } => ReasonCode::InvalidEnvelopeId,
            Self::NoRecipients => ReasonCode::NoRecipients,
            Self::DuplicateRecipient(_) => ReasonCode::DuplicateRecipient,
            Self::SenderIsRecipient(_) => ReasonCode::SenderIsRecipient,
            Self::EmptySubject => ReasonCode::EmptySubject,
            Self::AttachmentDigestMismatch { .. } => ReasonCode::AttachmentDigestMismatch,
            Self::InvalidAttachment { .. } => ReasonCode::InvalidAttachment,
            Self::LimitExceeded { .. } => ReasonCode::LimitExceeded,
            Self::ClockSkew { .. } => ReasonCode::ClockSkew,
            Self::InvalidTimes(_) => ReasonCode::InvalidTimes,
            Self::Expired(_) => ReasonCode::Expired,
            Self::SealingRequired(_) => ReasonCode::SealingRequired,
            Self::InvalidSealed(_) => ReasonCode::InvalidSealed,
            Self::InvalidReceipt(_) => ReasonCode::InvalidReceipt,
            Self::InvalidRequest(_) => ReasonCode::InvalidRequest,
            Self::InvalidNotice(_) => ReasonCode::InvalidNotice,
        }
    }
}

type Result<T = ()> = std::result::Result<T, ValidationError>;

/// Checks every rule: header, times against `now`, body, and that confidential and
/// secret letters are sealed.
///
/// # Errors
/// The first rule the content breaks.
pub fn validate(content: &pb::SignedContent, policy: &Policy, now: Time) -> Result {
    validate_inner(content, policy, now, true)
}

/// Like [`validate`], but lets a confidential or secret letter through unsealed: for a
/// draft that will be sealed before it is signed.
///
/// # Errors
/// The first rule the content breaks.
pub fn validate_draft(content: &pb::SignedContent, policy: &Policy, now: Time) -> Result {
    validate_inner(content, policy, now, false)
}

fn validate_inner(content: &pb::SignedContent, policy: &Policy, now: Time, require_sealing: bool) -> Result {
    let header = content.header.as_ref().ok_or(ValidationError::MissingField("header"))?;
    let body = content.body.as_ref().ok_or(ValidationError::MissingField("body"))?;
    check_header(header, policy, now)?;
    check_parties(header, body)?;
    let limits = &policy.limits;
    match body {
        Body::Letter(letter) => {
            if require_sealing && must_be_sealed(header.classification()) {
                return Err(ValidationError::SealingRequired(classification_name(header.classification())));
            }
            validate_letter(letter, limits)
        }
        Body::Sealed(sealed) => check_sealed(header, sealed),
        Body::Receipt(receipt) => check_receipt(receipt, limits),
        Body::Request(request) => check_request(request),
        Body::Notice(notice) => check_notice(notice, limits),
    }
}

/// Whether letters of this classification travel sealed.
pub fn must_be_sealed(classification: pb::Classification) -> bool {
    matches!(classification, pb::Classification::Confidential | pb::Classification::Secret)
}

fn classification_name(classification: pb::Classification) -> &'static str {
    match classification {
        pb::Classification::Unspecified => "unspecified",
        pb::Classification::Unclassified => "unclassified",
        pb::Classification::Restricted => "restricted",
        pb::Classification::Confidential => "confidential",
        pb::Classification::Secret => "secret",
    }
}

/// The header rules, including the times measured against `now`.
///
/// # Errors
/// The first rule the header breaks.
pub fn check_header(header: &pb::Header, policy: &Policy, now: Time) -> Result {
    check_envelope_id("header.envelope_id", &header.envelope_id)?;
    check_code("header.sender", &header.sender)?;
    if header.recipients.is_empty() {
        return Err(ValidationError::NoRecipients);
    }
    check_limit("recipients", header.recipients.len(), policy.limits.max_recipients)?;
    let mut seen = HashSet::with_capacity(header.recipients.len());
    for recipient in &header.recipients {
        check_code("header.recipients.agency", &recipient.agency)?;
        if recipient.role() == pb::RecipientRole::Unspecified {
            return Err(invalid("header.recipients.role", "unspecified"));
        }
        if recipient.agency == header.sender {
            return Err(ValidationError::SenderIsRecipient(recipient.agency.clone()));
        }
        if !seen.insert(recipient.agency.as_str()) {
            return Err(ValidationError::DuplicateRecipient(recipient.agency.clone()));
        }
    }
    if header.classification() == pb::Classification::Unspecified {
        return Err(invalid("header.classification", "unspecified"));
    }
    if header.priority() == pb::Priority::Unspecified {
        return Err(invalid("header.priority", "unspecified"));
    }
    check_optional_id("header.thread_id", &header.thread_id)?;
    check_optional_id("header.in_reply_to", &header.in_reply_to)?;
    if !header.in_reply_to.is_empty() && header.in_reply_to == header.envelope_id {
        return Err(invalid("header.in_reply_to", "an envelope cannot answer itself"));
    }
    check_times(header, policy, now)
}

fn check_times(header: &pb::Header, policy: &Policy, now: Time) -> Result {
    let created_at = header.created_at.as_ref().ok_or(ValidationError::MissingField("header.created_at"))?;
    let created_at =
        from_timestamp(created_at).ok_or_else(|| invalid("header.created_at", "out of range"))?;
    let behind_limit = policy.max_age.max(policy.max_clock_skew);
    let offset = created_at.signed_duration_since(now);
    let within = match offset.to_std() {
        Ok(ahead) => ahead <= policy.max_clock_skew,
        Err(_) => (-offset).to_std().is_ok_and(|behind| behind <= behind_limit),
    };
    if !within {
        return Err(ValidationError::ClockSkew {
            created_at,
            now,
            ahead_secs: policy.max_clock_skew.as_secs(),
            behind_secs: behind_limit.as_secs(),
        });
    }
    if let Some(expires_at) = &header.expires_at {
        let expires_at =
            from_timestamp(expires_at).ok_or_else(|| invalid("header.expires_at", "out of range"))?;
        if expires_at <= created_at {
            return Err(ValidationError::InvalidTimes(format!(
                "expires_at {expires_at} is not after created_at {created_at}"
            )));
        }
        if expires_at <= now {
            return Err(ValidationError::Expired(expires_at));
        }
    }
    if let Some(reply_due) = &header.reply_due {
        let reply_due =
            from_timestamp(reply_due).ok_or_else(|| invalid("header.reply_due", "out of range"))?;
        if reply_due <= created_at {
            return Err(ValidationError::InvalidTimes(format!(
                "reply_due {reply_due} is not in the future of created_at {created_at}"
            )));
        }
    }
    Ok(())
}

/// Who may send what to whom: notices come only from the platform, requests go only to
/// it, and everything else is between agencies.
fn check_parties(header: &pb::Header, body: &Body) -> Result {
    let to_platform = header.recipients.iter().any(|r| r.agency == PLATFORM_CODE);
    let from_platform = header.sender == PLATFORM_CODE;
    match body {
        Body::Notice(_) => {
            if !from_platform {
                return Err(ValidationError::InvalidNotice(format!(
                    "only {PLATFORM_CODE} sends notices, not {}",
                    header.sender
                )));
            }
            if header.recipients.len() != 1 {
                return Err(ValidationError::InvalidNotice("a notice has exactly one recipient".into()));
            }
        }
        Body::Request(_) => {
            if from_platform || header.recipients.len() != 1 || !to_platform {
                return Err(ValidationError::InvalidRequest(format!(
                    "a request goes from an agency to {PLATFORM_CODE} alone"
                )));
            }
        }
        Body::Receipt(_) => {
            if from_platform || to_platform {
                return Err(ValidationError::InvalidReceipt(format!(
                    "receipts are between agencies, not {PLATFORM_CODE}"
                )));
            }
            if header.recipients.len() != 1 {
                return Err(ValidationError::InvalidReceipt(
                    "a receipt goes to the letter's sender alone".into(),
                ));
            }
        }
        Body::Letter(_) | Body::Sealed(_) => {
            if from_platform || to_platform {
                return Err(ValidationError::ReservedAgencyCode(PLATFORM_CODE));
            }
        }
    }
    Ok(())
}

/// The rules for a plain letter (also applied to a sealed letter once it is opened).
///
/// # Errors
/// The first rule the letter breaks.
pub fn validate_letter(letter: &pb::Letter, limits: &Limits) -> Result {
    if letter.subject.trim().is_empty() {
        return Err(ValidationError::EmptySubject);
    }
    check_limit("subject characters", letter.subject.chars().count(), limits.max_subject_chars)?;
    check_limit("body bytes", letter.body.len(), limits.max_body_bytes)?;
    for (field, value) in [
        ("letter.language", &letter.language),
        ("letter.outgoing_number", &letter.outgoing_number),
        ("letter.cover_note", &letter.cover_note),
    ] {
        check_limit(field, value.chars().count(), limits.max_field_chars)?;
    }
    check_optional_date("letter.outgoing_date", &letter.outgoing_date)?;
    check_limit("references", letter.references.len(), limits.max_references)?;
    for reference in &letter.references {
        if !reference.agency.is_empty() {
            check_code("letter.references.agency", &reference.agency)?;
        }
        check_limit("letter.references.number", reference.number.chars().count(), limits.max_field_chars)?;
        check_optional_date("letter.references.date", &reference.date)?;
        check_optional_id("letter.references.envelope_id", &reference.envelope_id)?;
    }
    check_limit("attachments", letter.attachments.len(), limits.max_attachments)?;
    let mut main_documents = 0;
    let mut names = HashSet::new();
    for attachment in &letter.attachments {
        check_attachment(attachment, limits)?;
        if !names.insert(attachment.name.as_str()) {
            return Err(attachment_problem(attachment, "name used twice"));
        }
        main_documents += usize::from(attachment.main_document);
    }
    if main_documents > 1 {
        return Err(ValidationError::InvalidField {
            field: "letter.attachments.main_document",
            problem: format!("{main_documents} attachments are marked main document; at most one may be"),
        });
    }
    Ok(())
}

fn check_attachment(attachment: &pb::Attachment, limits: &Limits) -> Result {
    let name = &attachment.name;
    if name.trim().is_empty() {
        return Err(attachment_problem(attachment, "no name"));
    }
    if name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
        return Err(attachment_problem(attachment, "the name must not contain a path"));
    }
    check_limit("attachment name characters", name.chars().count(), limits.max_field_chars)?;
    if !is_media_type(&attachment.media_type) {
        return Err(attachment_problem(
            attachment,
            &format!("media type {:?} is not of the form type/subtype", attachment.media_type),
        ));
    }
    check_limit("attachment bytes", attachment.content.len(), limits.max_attachment_bytes)?;
    if attachment.sha256.len() != 32 {
        return Err(attachment_problem(attachment, "sha256 must be 32 bytes"));
    }
    if crate::sha256(&attachment.content) != attachment.sha256[..] {
        return Err(ValidationError::AttachmentDigestMismatch { name: name.clone() });
    }
    Ok(())
}

fn attachment_problem(attachment: &pb::Attachment, problem: &str) -> ValidationError {
    ValidationError::InvalidAttachment { name: attachment.name.clone(), problem: problem.to_owned() }
}

fn is_media_type(media_type: &str) -> bool {
    let token =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    matches!(essence.split_once('/'), Some((kind, sub)) if token(kind) && token(sub))
        && media_type.len() <= 255
}

fn check_sealed(header: &pb::Header, sealed: &pb::Sealed) -> Result {
    let bad = |problem: &str| Err(ValidationError::InvalidSealed(problem.to_owned()));
    if sealed.cipher() != pb::ContentCipher::Aes256Gcm {
        return bad("unknown content cipher");
    }
    if sealed.nonce.len() != crate::seal::NONCE_LEN {
        return bad("the nonce must be 12 bytes");
    }
    if sealed.tag.len() != crate::seal::TAG_LEN {
        return bad("the tag must be 16 bytes");
    }
    if sealed.keys.len() != header.recipients.len() {
        return bad("there must be exactly one wrapped key per recipient");
    }
    for (key, recipient) in sealed.keys.iter().zip(&header.recipients) {
        if key.agency != recipient.agency {
            return Err(ValidationError::InvalidSealed(format!(
                "wrapped key for {:?} where recipient {} was expected",
                key.agency, recipient.agency
            )));
        }
        if key.certificate_sha256.len() != 32 {
            return bad("certificate_sha256 must be 32 bytes");
        }
        let shape_ok = match key.algorithm() {
            pb::KeyWrapAlgorithm::EcdhEsP256HkdfSha256 => {
                key.ephemeral_public_key.len() == crate::seal::P256_POINT_LEN
                    && key.wrapped_key.len() == crate::seal::ECDH_WRAPPED_LEN
            }
            pb::KeyWrapAlgorithm::RsaOaepSha256 => {
                key.ephemeral_public_key.is_empty() && key.wrapped_key.len() >= 256
            }
            pb::KeyWrapAlgorithm::Unspecified => false,
        };
        if !shape_ok {
            return Err(ValidationError::InvalidSealed(format!(
                "the wrapped key for {} is malformed",
                key.agency
            )));
        }
    }
    Ok(())
}

fn check_receipt(receipt: &pb::Receipt, limits: &Limits) -> Result {
    use pb::receipt::Status;
    let bad = |problem: String| Err(ValidationError::InvalidReceipt(problem));
    check_envelope_id("receipt.letter_id", &receipt.letter_id)?;
    if receipt.letter_digest.len() != 32 {
        return bad("letter_digest must be the 32-byte SHA-256 of the letter".into());
    }
    let texts: Vec<(&'static str, &str)> = match &receipt.status {
        None => return Err(ValidationError::MissingField("receipt.status")),
        Some(Status::Delivered(_)) => vec![],
        Some(Status::Registered(registered)) => {
            if registered.incoming_number.trim().is_empty() {
                return bad("registered needs the incoming number".into());
            }
            check_optional_date("receipt.registered.incoming_date", &registered.incoming_date)?;
            vec![("receipt.registered.incoming_number", &registered.incoming_number)]
        }
        Some(Status::Referred(referred)) => {
            if referred.department.trim().is_empty() {
                return bad("referred needs the department".into());
            }
            check_optional_date("receipt.referred.deadline", &referred.deadline)?;
            vec![
                ("receipt.referred.department", &referred.department),
                ("receipt.referred.note", &referred.note),
            ]
        }
        Some(Status::Answered(answered)) => {
            check_envelope_id("receipt.answered.reply_id", &answered.reply_id)?;
            vec![]
        }
        Some(Status::Closed(closed)) => vec![("receipt.closed.note", &closed.note)],
        Some(Status::Refused(refused)) => {
            if refused.reason() == pb::RefusalReason::Unspecified {
                return bad("refused needs a reason".into());
            }
            vec![("receipt.refused.text", &refused.text)]
        }
    };
    for (field, text) in texts {
        check_limit(field, text.chars().count(), limits.max_field_chars)?;
    }
    Ok(())
}

fn check_request(request: &pb::Request) -> Result {
    use pb::request::Kind;
    match &request.kind {
        None => Err(ValidationError::MissingField("request.kind")),
        Some(Kind::Directory(_)) => Ok(()),
        Some(Kind::Redelivery(r)) => check_envelope_id("request.redelivery.envelope_id", &r.envelope_id),
        Some(Kind::Recall(r)) => check_envelope_id("request.recall.envelope_id", &r.envelope_id),
    }
}

fn check_notice(notice: &pb::Notice, limits: &Limits) -> Result {
    use pb::notice::Kind;
    let bad = |problem: &str| Err(ValidationError::InvalidNotice(problem.to_owned()));
    check_optional_id("notice.subject_id", &notice.subject_id)?;
    if !notice.subject_digest.is_empty() && notice.subject_digest.len() != 32 {
        return bad("subject_digest must be empty or 32 bytes");
    }
    match &notice.kind {
        None => Err(ValidationError::MissingField("notice.kind")),
        Some(Kind::Accepted(accepted)) => {
            if accepted.router_time.is_none() || notice.subject_id.is_empty() {
                return bad("accepted needs the envelope id and the router time");
            }
            Ok(())
        }
        Some(Kind::Rejected(rejected)) => {
            if rejected.code() == ReasonCode::Unspecified {
                return bad("rejected needs a reason code");
            }
            check_limit("notice.rejected.text", rejected.text.chars().count(), limits.max_field_chars)
        }
        Some(Kind::Overdue(overdue)) => {
            if overdue.kind() == pb::OverdueKind::Unspecified || overdue.due.is_none() {
                return bad("overdue needs its kind and due time");
            }
            check_code("notice.overdue.agency", &overdue.agency)
        }
        Some(Kind::Directory(directory)) => {
            for entry in &directory.agencies {
                check_code("notice.directory.agencies.code", &entry.code)?;
            }
            Ok(())
        }
        Some(Kind::Retrieval(retrieval)) => {
            if retrieval.envelope.is_empty() {
                return bad("retrieval carries no envelope");
            }
            Ok(())
        }
    }
}

fn check_code(field: &'static str, value: &str) -> Result {
    if code::is_valid(value) {
        Ok(())
    } else {
        Err(ValidationError::InvalidAgencyCode { field, code: value.to_owned() })
    }
}

/// Checks that `value` is a UUIDv7 in canonical lower-case hyphenated form.
///
/// # Errors
/// [`ValidationError::InvalidEnvelopeId`] when it is not.
pub fn check_envelope_id(field: &'static str, value: &str) -> Result {
    match Uuid::parse_str(value) {
        Ok(id) if id.get_version_num() == 7 && id.hyphenated().to_string() == value => Ok(()),
        _ => Err(ValidationError::InvalidEnvelopeId { field, value: value.to_owned() }),
    }
}

fn check_optional_id(field: &'static str, value: &str) -> Result {
    if value.is_empty() { Ok(()) } else { check_envelope_id(field, value) }
}

fn check_optional_date(field: &'static str, value: &str) -> Result {
    if value.is_empty() || is_calendar_date(value) {
        Ok(())
    } else {
        Err(invalid(field, &format!("{value:?} is not a YYYY-MM-DD date")))
    }
}

fn check_limit(what: &'static str, actual: usize, limit: usize) -> Result {
    if actual > limit { Err(ValidationError::LimitExceeded { what, limit, actual }) } else { Ok(()) }
}

fn invalid(field: &'static str, problem: &str) -> ValidationError {
    ValidationError::InvalidField { field, problem: problem.to_owned() }
}
