//! Builders for everything an agency or the platform signs.
//!
//! A [`Draft`] is a header draft plus a body. [`Draft::build`] gives it a fresh UUIDv7
//! envelope id and `created_at`, and runs every rule in [`crate::validate`], so what
//! comes out is content the router will accept on its form.
//!
//! ```
//! use mirsal_envelope::{Draft, HeaderDraft, Policy, attachment, pb};
//!
//! let letter = pb::Letter {
//!     subject: "Budget circular 2027".into(),
//!     body: "Please find the circular attached.".into(),
//!     language: "en".into(),
//!     attachments: vec![attachment("circular.pdf", "application/pdf", b"%PDF-1.7 ...".to_vec())],
//!     ..Default::default()
//! };
//! let header = HeaderDraft::new("MOF").action("MOH").copy("MOE");
//! let content = Draft::letter(header, letter).build(&Policy::default(), chrono::Utc::now())?;
//! assert_eq!(content.header.unwrap().recipients.len(), 2);
//! # Ok::<(), mirsal_envelope::ValidationError>(())
//! ```

use bytes::Bytes;
use openssl::x509::X509;
use uuid::Uuid;

use crate::{
    PLATFORM_CODE,
    pb::{self, signed_content::Body},
    policy::Policy,
    seal::{self, SealError},
    time::{Time, to_timestamp},
    trust::TrustStore,
    validate::{self, ValidationError},
};

/// The header of an envelope before it has an id and a creation time.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderDraft {
    pub sender: String,
    pub recipients: Vec<pb::Recipient>,
    pub classification: pb::Classification,
    pub priority: pb::Priority,
    /// Empty: the envelope opens a new thread and its own id becomes the thread id.
    pub thread_id: String,
    pub in_reply_to: String,
    pub reply_due: Option<Time>,
    pub expires_at: Option<Time>,
}

impl HeaderDraft {
    /// An unclassified, normal-priority header from `sender`, with no recipients yet.
    pub fn new(sender: impl Into<String>) -> Self {
        Self {
            sender: sender.into(),
            recipients: Vec::new(),
            classification: pb::Classification::Unclassified,
            priority: pb::Priority::Normal,
            thread_id: String::new(),
            in_reply_to: String::new(),
            reply_due: None,
            expires_at: None,
        }
    }

    /// Adds a recipient with `role`.
    #[must_use]
    pub fn to(mut self, agency: impl Into<String>, role: pb::RecipientRole) -> Self {
        self.recipients.push(pb::Recipient { agency: agency.into(), role: role as i32 });
        self
    }

    /// Adds a recipient expected to act on the letter.
    #[must_use]
    pub fn action(self, agency: impl Into<String>) -> Self {
        self.to(agency, pb::RecipientRole::Action)
    }

    /// Adds a recipient that gets a copy.
    #[must_use]
    pub fn copy(self, agency: impl Into<String>) -> Self {
        self.to(agency, pb::RecipientRole::Copy)
    }

    /// Adds a recipient for information.
    #[must_use]
    pub fn information(self, agency: impl Into<String>) -> Self {
        self.to(agency, pb::RecipientRole::Information)
    }

    #[must_use]
    pub fn classification(mut self, classification: pb::Classification) -> Self {
        self.classification = classification;
        self
    }

    #[must_use]
    pub fn priority(mut self, priority: pb::Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Places the envelope in an existing thread.
    #[must_use]
    pub fn thread(mut self, thread_id: impl Into<String>) -> Self {
        self.thread_id = thread_id.into();
        self
    }

    #[must_use]
    pub fn in_reply_to(mut self, envelope_id: impl Into<String>) -> Self {
        self.in_reply_to = envelope_id.into();
        self
    }

    #[must_use]
    pub fn reply_due(mut self, due: Time) -> Self {
        self.reply_due = Some(due);
        self
    }

    #[must_use]
    pub fn expires_at(mut self, at: Time) -> Self {
        self.expires_at = Some(at);
        self
    }

    fn into_header(self, envelope_id: String, now: Time) -> pb::Header {
        let thread_id = if self.thread_id.is_empty() { envelope_id.clone() } else { self.thread_id };
        pb::Header {
            envelope_id,
            sender: self.sender,
            recipients: self.recipients,
            created_at: Some(to_timestamp(now)),
            classification: self.classification as i32,
            priority: self.priority as i32,
            thread_id,
            in_reply_to: self.in_reply_to,
            reply_due: self.reply_due.map(to_timestamp),
            expires_at: self.expires_at.map(to_timestamp),
        }
    }
}

/// An envelope's content before it is built: a header draft and a body.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    header: HeaderDraft,
    body: Body,
}

impl Draft {
    /// A letter. Confidential and secret letters must go through
    /// [`build_sealed`](Self::build_sealed).
    pub fn letter(header: HeaderDraft, letter: pb::Letter) -> Self {
        Self { header, body: Body::Letter(letter) }
    }

    /// A receipt from `sender` (a recipient of the letter) about the letter whose
    /// header is `letter` and whose `signed_content` has SHA-256 `letter_digest`. It goes
    /// to the letter's sender, in the letter's thread.
    pub fn receipt(
        sender: impl Into<String>,
        letter: &pb::Header,
        letter_digest: [u8; 32],
        status: pb::receipt::Status,
    ) -> Self {
        let thread = if letter.thread_id.is_empty() { &letter.envelope_id } else { &letter.thread_id };
        let header = HeaderDraft {
            classification: letter.classification(),
            priority: letter.priority(),
            ..HeaderDraft::new(sender)
        }
        .action(letter.sender.clone())
        .thread(thread.clone())
        .in_reply_to(letter.envelope_id.clone());
        let receipt = pb::Receipt {
            letter_id: letter.envelope_id.clone(),
            letter_digest: Bytes::copy_from_slice(&letter_digest),
            status: Some(status),
        };
        Self { header, body: Body::Receipt(receipt) }
    }

    /// A request from `sender` to the platform.
    pub fn request(sender: impl Into<String>, kind: pb::request::Kind) -> Self {
        let header = HeaderDraft::new(sender).action(PLATFORM_CODE);
        Self { header, body: Body::Request(pb::Request { kind: Some(kind) }) }
    }

    /// A notice from the platform to `recipient`, about the envelope `about` (its id and
    /// the SHA-256 of its `signed_content`) when there is one.
    pub fn notice(
        recipient: impl Into<String>,
        about: Option<(&str, [u8; 32])>,
        kind: pb::notice::Kind,
    ) -> Self {
        let mut header = HeaderDraft::new(PLATFORM_CODE).action(recipient);
        let (subject_id, subject_digest) = match about {
            Some((id, digest)) => {
                header = header.in_reply_to(id);
                (id.to_owned(), Bytes::copy_from_slice(&digest))
            }
            None => (String::new(), Bytes::new()),
        };
        let notice = pb::Notice { subject_id, subject_digest, kind: Some(kind) };
        Self { header, body: Body::Notice(notice) }
    }

    /// The header draft, to adjust before building.
    pub fn header_mut(&mut self) -> &mut HeaderDraft {
        &mut self.header
    }

    /// Gives the draft a new envelope id and `created_at = now`, and checks every rule.
    ///
    /// # Errors
    /// The first rule the content breaks, including
    /// [`ValidationError::SealingRequired`] for an unsealed confidential or secret letter.
    pub fn build(self, policy: &Policy, now: Time) -> Result<pb::SignedContent, ValidationError> {
        let content = self.assemble(now);
        validate::validate(&content, policy, now)?;
        Ok(content)
    }

    /// Like [`build`](Self::build) but lets a confidential letter through unsealed, for
    /// tools that seal in a later step ([`seal::seal_content`]).
    ///
    /// # Errors
    /// The first rule the content breaks.
    pub fn build_unsealed(self, policy: &Policy, now: Time) -> Result<pb::SignedContent, ValidationError> {
        let content = self.assemble(now);
        validate::validate_draft(&content, policy, now)?;
        Ok(content)
    }

    /// Builds a letter and seals it for its recipients' sealing certificates (each
    /// checked against `trust`), whatever its classification.
    ///
    /// # Errors
    /// A broken content rule, or a recipient whose certificate is missing or invalid.
    pub fn build_sealed(
        self,
        policy: &Policy,
        now: Time,
        sealing_certificates: &[X509],
        trust: &TrustStore,
    ) -> Result<pb::SignedContent, SealError> {
        let content = self.build_unsealed(policy, now)?;
        seal::seal_content(content, sealing_certificates, trust, policy, now)
    }

    fn assemble(self, now: Time) -> pb::SignedContent {
        let envelope_id = Uuid::now_v7().hyphenated().to_string();
        pb::SignedContent { header: Some(self.header.into_header(envelope_id, now)), body: Some(self.body) }
    }
}

/// An attachment with its SHA-256 computed from `content`.
pub fn attachment(
    name: impl Into<String>,
    media_type: impl Into<String>,
    content: impl Into<Bytes>,
) -> pb::Attachment {
    let content = content.into();
    pb::Attachment {
        name: name.into(),
        media_type: media_type.into(),
        sha256: Bytes::copy_from_slice(&crate::sha256(&content)),
        content,
        main_document: false,
    }
}
