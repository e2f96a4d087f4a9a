//! `mirsal envelope`: craft and check envelopes by hand, on files.
//!
//! The flow is `new` (a JSON draft of the content) → `seal` (for confidential letters)
//! → `sign` (the binary envelope, the wire format) → `verify` / `open` / `inspect` on
//! the receiving side. Drafts are the proto3 JSON form of `SignedContent`, so they can
//! be written or edited by hand; `sign` encodes the draft once and signs those bytes.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use mirsal_envelope::{
    AgencyCode, Draft, HeaderDraft, Policy, ReasonCode, SealingKey, SigningIdentity, Time, TrustStore,
    Verifier, attachment, json, pb, pb::signed_content::Body, seal::seal_content, validate,
};
use openssl::x509::X509;
use prost::Message as _;

use crate::{files, pki::PkiDir, pki::PkiDirArgs};

/// An envelope or draft that the contract refuses, with its reason code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Refused {
    pub(crate) message: String,
    pub(crate) reason: ReasonCode,
}

fn refused(what: &str, error: impl std::fmt::Display, reason: ReasonCode) -> anyhow::Error {
    Refused { message: format!("{what}: {error}"), reason }.into()
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub(crate) enum EnvelopeCommand {
    /// Write a JSON draft of a new letter.
    New(NewArgs),
    /// Seal a draft letter for its recipients' sealing certificates.
    Seal(SealArgs),
    /// Sign a draft into a binary envelope.
    Sign(SignArgs),
    /// Verify an envelope: signature, certificate, revocation and content rules.
    Verify(VerifyArgs),
    /// Verify an envelope and print the letter inside, opening it if it is sealed.
    Open(OpenArgs),
    /// Print an envelope as JSON, without verifying it.
    Inspect(InspectArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct TrustArgs {
    #[command(flatten)]
    pki: PkiDirArgs,
    /// The platform CA certificate(s), PEM [default: PKI_DIR/ca.pem].
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The current CRL, PEM [default: PKI_DIR/crl.pem].
    #[arg(long)]
    crl: Option<PathBuf>,
}

impl TrustArgs {
    fn load(&self) -> Result<TrustStore> {
        let dir = PkiDir::new(&self.pki.pki_dir);
        let ca = files::read(self.ca.as_deref().unwrap_or(&dir.ca_certificate()))?;
        let crl = files::read(self.crl.as_deref().unwrap_or(&dir.crl()))?;
        TrustStore::from_pem(&ca, &[&crl]).context("cannot load the trust store")
    }

    fn pki_dir(&self) -> PkiDir {
        PkiDir::new(&self.pki.pki_dir)
    }
}

/// Which key to use: an agency's from the PKI directory, or explicit files.
#[derive(Debug, Clone, Args)]
pub(crate) struct KeySource {
    /// Use the agency's key and certificate from the PKI directory.
    #[arg(long, conflicts_with_all = ["key", "cert"])]
    agency: Option<String>,
    /// Private key, PEM.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Certificate (chain), PEM.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
}

impl KeySource {
    /// Reads `(key, certificate)` PEM for `usage` (`signing` or `sealing`).
    fn read(&self, pki: &PkiDir, usage: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let (key, cert) = match (&self.agency, &self.key, &self.cert) {
            (Some(code), _, _) => pki.credentials(&AgencyCode::new(code.as_str())?, usage),
            (None, Some(key), Some(cert)) => (key.clone(), cert.clone()),
            _ => bail!("say whose key to use: --agency CODE, or --key FILE --cert FILE"),
        };
        Ok((files::read(&key)?, files::read(&cert)?))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Classification {
    Unclassified,
    Restricted,
    Confidential,
    Secret,
}

impl From<Classification> for pb::Classification {
    fn from(value: Classification) -> Self {
        match value {
            Classification::Unclassified => Self::Unclassified,
            Classification::Restricted => Self::Restricted,
            Classification::Confidential => Self::Confidential,
            Classification::Secret => Self::Secret,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Priority {
    Normal,
    Urgent,
    Immediate,
}

impl From<Priority> for pb::Priority {
    fn from(value: Priority) -> Self {
        match value {
            Priority::Normal => Self::Normal,
            Priority::Urgent => Self::Urgent,
            Priority::Immediate => Self::Immediate,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// Sender agency code.
    #[arg(long)]
    from: String,
    /// Recipient expected to act (repeatable).
    #[arg(long)]
    to: Vec<String>,
    /// Recipient of a copy (repeatable).
    #[arg(long)]
    copy: Vec<String>,
    /// Recipient for information (repeatable).
    #[arg(long)]
    info: Vec<String>,
    #[arg(long)]
    subject: String,
    /// The letter's text.
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// Read the letter's text from a file.
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// BCP 47 language tag of subject and body, e.g. ar or en.
    #[arg(long, default_value = "ar")]
    language: String,
    /// The sender's outgoing registry number.
    #[arg(long)]
    outgoing_number: Option<String>,
    /// The outgoing date, YYYY-MM-DD [default: today].
    #[arg(long)]
    outgoing_date: Option<String>,
    #[arg(long)]
    cover_note: Option<String>,
    /// Attach a file (repeatable); the media type is guessed from its extension.
    #[arg(long)]
    attach: Vec<PathBuf>,
    /// Attach a file as the letter's main document.
    #[arg(long)]
    main: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "unclassified")]
    classification: Classification,
    #[arg(long, value_enum, default_value = "normal")]
    priority: Priority,
    /// Envelope id of the thread this letter belongs to.
    #[arg(long)]
    thread: Option<String>,
    /// Envelope id of the letter this one answers.
    #[arg(long)]
    in_reply_to: Option<String>,
    /// When an answer is due (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    reply_due: Option<Time>,
    /// When the letter expires undelivered (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    expires_at: Option<Time>,
    /// Where to write the JSON draft [default: standard output].
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct SealArgs {
    /// The draft to seal (JSON or binary SignedContent).
    draft: PathBuf,
    /// A recipient's sealing certificate (repeatable) [default: each recipient's from
    /// the PKI directory].
    #[arg(long = "for")]
    recipient_certificates: Vec<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
    /// Where to write the sealed draft [default: standard output].
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// The draft to sign (JSON or binary SignedContent).
    draft: PathBuf,
    #[command(flatten)]
    key: KeySource,
    #[command(flatten)]
    pki: PkiDirArgs,
    /// Where to write the binary envelope.
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The binary envelope.
    envelope: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    /// Verify as of this time (RFC 3339) [default: now].
    #[arg(long, value_parser = parse_time)]
    at: Option<Time>,
}

#[derive(Debug, Args)]
pub(crate) struct OpenArgs {
    /// The binary envelope.
    envelope: PathBuf,
    #[command(flatten)]
    key: KeySource,
    #[command(flatten)]
    trust: TrustArgs,
    /// Verify as of this time (RFC 3339) [default: now].
    #[arg(long, value_parser = parse_time)]
    at: Option<Time>,
    /// Save the attachments into this directory.
    #[arg(long)]
    save_attachments: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The binary envelope.
    envelope: PathBuf,
}

fn parse_time(text: &str) -> Result<Time, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 time such as 2026-12-31T12:00:00Z: {e}"))
}

pub(crate) fn run(command: EnvelopeCommand) -> Result<()> {
    let now = Utc::now();
    let policy = Policy::default();
    match command {
        EnvelopeCommand::New(args) => new(args, &policy, now),
        EnvelopeCommand::Seal(args) => {
            let content = read_draft(&args.draft)?;
            let trust = args.trust.load()?;
            let certificates = sealing_certificates(&args, &content)?;
            let sealed = seal_content(content, &certificates, &trust, &policy, now)
                .map_err(|e| refused("cannot seal", &e, e.reason()))?;
            write_draft(&sealed, args.output.as_deref())
        }
        EnvelopeCommand::Sign(args) => {
            let content = read_draft(&args.draft)?;
            validate::validate(&content, &policy, now).map_err(|e| refused("cannot sign", &e, e.reason()))?;
            let (key, cert) = args.key.read(&PkiDir::new(&args.pki.pki_dir), "signing")?;
            let identity = SigningIdentity::from_pem(&key, &cert)?;
            let envelope = identity.sign(&content)?;
            files::write_public(&args.output, &envelope.encode_to_vec())?;
            let id = content.header.map(|h| h.envelope_id).unwrap_or_default();
            println!("signed {id} as {} into {}", identity.agency(), args.output.display());
            Ok(())
        }
        EnvelopeCommand::Verify(args) => {
            let verifier = Verifier::new(args.trust.load()?, policy);
            let verified = verify(&verifier, &args.envelope, args.at.unwrap_or(now))?;
            let header = &verified.header;
            let recipients: Vec<&str> = header.recipients.iter().map(|r| r.agency.as_str()).collect();
            println!(
                "verified {}: {} from {} to {}, signed by {} (sha256 {})",
                header.envelope_id,
                body_kind(&verified.body),
                header.sender,
                recipients.join(", "),
                verified.signer,
                hex::encode(verified.digest),
            );
            Ok(())
        }
        EnvelopeCommand::Open(args) => {
            let verifier = Verifier::new(args.trust.load()?, policy);
            let verified = verify(&verifier, &args.envelope, args.at.unwrap_or(now))?;
            let letter = match &verified.body {
                Body::Letter(letter) => letter.clone(),
                Body::Sealed(sealed) => {
                    let (key, cert) = args.key.read(&args.trust.pki_dir(), "sealing")?;
                    let sealing_key = SealingKey::from_pem(&key, &cert)?;
                    sealing_key
                        .open(&verified.header, sealed, &verifier.policy().limits)
                        .map_err(|e| refused("cannot open", &e, e.reason()))?
                }
                other => bail!("the envelope holds a {}, not a letter", body_kind(other)),
            };
            if let Some(dir) = &args.save_attachments {
                save_attachments(&letter, dir)?;
            }
            println!("{}", serde_json::to_string_pretty(&letter)?);
            Ok(())
        }
        EnvelopeCommand::Inspect(args) => {
            let bytes = files::read(&args.envelope)?;
            let view = json::envelope_view_bytes(&bytes).map_err(|e| {
                refused(
                    &format!("{} is not an envelope", args.envelope.display()),
                    e,
                    ReasonCode::MalformedEnvelope,
                )
            })?;
            println!("{}", serde_json::to_string_pretty(&view)?);
            Ok(())
        }
    }
}

fn new(args: NewArgs, policy: &Policy, now: Time) -> Result<()> {
    let mut header =
        HeaderDraft::new(args.from).classification(args.classification.into()).priority(args.priority.into());
    for code in args.to {
        header = header.action(code);
    }
    for code in args.copy {
        header = header.copy(code);
    }
    for code in args.info {
        header = header.information(code);
    }
    header.thread_id = args.thread.unwrap_or_default();
    header.in_reply_to = args.in_reply_to.unwrap_or_default();
    header.reply_due = args.reply_due;
    header.expires_at = args.expires_at;
    let body = match (args.body, args.body_file) {
        (Some(body), _) => body,
        (None, Some(path)) => String::from_utf8(files::read(&path)?)
            .with_context(|| format!("{} is not UTF-8 text", path.display()))?,
        (None, None) => String::new(),
    };
    let mut attachments = Vec::new();
    for path in args.attach.iter().chain(&args.main) {
        let mut item = read_attachment(path)?;
        item.main_document = args.main.as_ref() == Some(path);
        attachments.push(item);
    }
    let letter = pb::Letter {
        subject: args.subject,
        body,
        language: args.language,
        outgoing_number: args.outgoing_number.unwrap_or_default(),
        outgoing_date: args.outgoing_date.unwrap_or_else(|| now.format("%Y-%m-%d").to_string()),
        cover_note: args.cover_note.unwrap_or_default(),
        attachments,
        ..Default::default()
    };
    let content = Draft::letter(header, letter)
        .build_unsealed(policy, now)
        .map_err(|e| refused("invalid letter", &e, e.reason()))?;
    if let Some(header) = &content.header
        && validate::must_be_sealed(header.classification())
    {
        eprintln!(
            "note: this letter is {}; seal it with `mirsal envelope seal` before signing",
            header.classification().as_str_name()
        );
    }
    write_draft(&content, args.output.as_deref())
}

fn read_attachment(path: &Path) -> Result<pb::Attachment> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no usable file name", path.display()))?;
    let media_type = mime_guess::from_path(path).first_or_octet_stream().essence_str().to_owned();
    Ok(attachment(name, media_type, files::read(path)?))
}

fn save_attachments(letter: &pb::Letter, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for item in &letter.attachments {
        // Names were validated (no path separators), so this stays inside `dir`.
        files::write_public(&dir.join(&item.name), &item.content)?;
    }
    Ok(())
}

fn sealing_certificates(args: &SealArgs, content: &pb::SignedContent) -> Result<Vec<X509>> {
    let paths: Vec<PathBuf> = if args.recipient_certificates.is_empty() {
        let pki = args.trust.pki_dir();
        let recipients = content.header.as_ref().map(|h| h.recipients.as_slice()).unwrap_or_default();
        recipients
            .iter()
            .map(|r| Ok(pki.credentials(&AgencyCode::new(r.agency.as_str())?, "sealing").1))
            .collect::<Result<_>>()?
    } else {
        args.recipient_certificates.clone()
    };
    paths
        .iter()
        .map(|path| {
            X509::from_pem(&files::read(path)?)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))
        })
        .collect()
}

fn verify(verifier: &Verifier, path: &Path, at: Time) -> Result<mirsal_envelope::VerifiedEnvelope> {
    let bytes = files::read(path)?;
    verifier.verify(bytes, at).map_err(|e| refused("refused", &e, e.reason()))
}

/// Reads a draft: proto3 JSON of `SignedContent`, or its binary encoding.
fn read_draft(path: &Path) -> Result<pb::SignedContent> {
    let bytes = files::read(path)?;
    let is_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let content = if is_json {
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not a JSON draft", path.display()))?
    } else {
        pb::SignedContent::decode(Bytes::from(bytes)).map_err(|e| {
            refused(&format!("{} is not a draft", path.display()), e, ReasonCode::MalformedContent)
        })?
    };
    Ok(content)
}

fn write_draft(content: &pb::SignedContent, output: Option<&Path>) -> Result<()> {
    let mut json = serde_json::to_string_pretty(content)?;
    json.push('\n');
    match output {
        Some(path) => files::write_public(path, json.as_bytes()),
        None => {
            print!("{json}");
            Ok(())
        }
    }
}

fn body_kind(body: &Body) -> &'static str {
    match body {
        Body::Letter(_) => "letter",
        Body::Sealed(_) => "sealed letter",
        Body::Receipt(_) => "receipt",
        Body::Request(_) => "request",
        Body::Notice(_) => "notice",
    }
}
