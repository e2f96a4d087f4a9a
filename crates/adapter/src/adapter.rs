//! [`Adapter`]: the SDK itself. See the crate documentation for its contract.

use std::{
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use bytes::Bytes;
use chrono::Utc;
use mirsal_bus::{Bus, BusConfig, Outgoing, PublishError, TlsConfig, headers, topology};
use mirsal_envelope::{
    AgencyCode, Draft, HeaderDraft, Policy, ReasonCode, SealingKey, SigningIdentity, Time, TrustStore,
    Verifier, pb, pb::signed_content::Body, time::from_timestamp, validate::must_be_sealed,
};
use openssl::x509::X509;
use prost::Message as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    config::AdapterConfig,
    crash,
    items::{Item, ItemBody, RecipientTracking, Rejection, SentTracking, StatusUpdate, Step},
    store::{
        Batch, InboxRecord, ItemState, Kind, OutboxEntry, SentRecipient, SentRecord, SentStep, Store,
        StoreError,
    },
};

/// How long `send` waits for the platform's directory when a recipient's sealing
/// certificate is not known yet.
const DIRECTORY_WAIT: Duration = Duration::from_secs(30);
/// How often the directory (and with it the CRL) is refreshed.
const DIRECTORY_REFRESH: Duration = Duration::from_secs(3600);
/// Outbox entries published per confirm window.
const OUTBOX_WINDOW: usize = 256;
/// How long the outbox waits before trying again an envelope the broker refused.
const REFUSED_RETRY: Duration = Duration::from_secs(60);
/// How old an incoming envelope may be: letters can wait a long time in an inbox.
const MAX_AGE: Duration = Duration::from_secs(366 * 24 * 3600);

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("bad key or certificate: {0}")]
    Credentials(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The letter breaks a rule of the contract (its reason code says which).
    #[error("{message}")]
    Invalid { message: String, reason: ReasonCode },
    #[error("no sealing certificate for {0} in the platform's directory")]
    NoSealingCertificate(String),
    #[error("no item {0}")]
    UnknownItem(String),
    #[error("{0} is not a letter this agency received")]
    NotALetter(String),
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error("shutting down")]
    ShuttingDown,
}

impl AdapterError {
    fn invalid(error: impl std::fmt::Display, reason: ReasonCode) -> Self {
        Self::Invalid { message: error.to_string(), reason }
    }

    /// The reason code, for errors that are refusals of the contract.
    pub fn reason(&self) -> Option<ReasonCode> {
        match self {
            Self::Invalid { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

type Result<T, E = AdapterError> = std::result::Result<T, E>;

struct Inner {
    code: AgencyCode,
    config: AdapterConfig,
    store: Store,
    bus: Bus,
    signer: SigningIdentity,
    sealing: SealingKey,
    ca_pem: Vec<u8>,
    verifier: RwLock<Arc<Verifier>>,
    policy: Policy,
    outbox_wake: Notify,
    items_wake: Notify,
    directory_wake: Notify,
    /// The last pending item handed out by `next_item` in this process.
    cursor: Mutex<Option<u64>>,
    /// Serializes sends with the same idempotency key (striped by the key's hash), so
    /// concurrent retries cannot each create a letter.
    key_locks: Vec<tokio::sync::Mutex<()>>,
    shutdown: CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The agency's connection to Mirsal. Cheap to clone.
#[derive(Clone)]
pub struct Adapter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapter").field("agency", &self.inner.code).field("bus", &self.inner.bus).finish()
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| AdapterError::Read { path: path.display().to_string(), source })
}

impl Adapter {
    /// Opens the durable store, loads the keys, connects to the broker (in the
    /// background, reconnecting as needed) and starts publishing the outbox and
    /// receiving the inbox.
    ///
    /// # Errors
    /// Unreadable keys or certificates, a key that is not the agency's, a store that
    /// cannot be opened (another adapter process holds it).
    pub async fn open(config: AdapterConfig) -> Result<Self> {
        let code =
            AgencyCode::new(config.agency.as_str()).map_err(|e| AdapterError::Credentials(e.to_string()))?;
        let pki = &config.pki;
        let signer = SigningIdentity::from_pem(&read(&pki.signing_key)?, &read(&pki.signing_certificate)?)
            .map_err(|e| AdapterError::Credentials(format!("signing key: {e}")))?;
        let sealing = SealingKey::from_pem(&read(&pki.sealing_key)?, &read(&pki.sealing_certificate)?)
            .map_err(|e| AdapterError::Credentials(format!("sealing key: {e}")))?;
        for (what, agency) in [("signing", signer.agency()), ("sealing", sealing.agency())] {
            if *agency != code {
                return Err(AdapterError::Credentials(format!(
                    "the {what} certificate is for {agency}, not {code}"
                )));
            }
        }
        let ca_pem = read(&pki.ca)?;
        let crl_pem = newest_crl(&config).map_or_else(|| read(&pki.crl), Ok)?;
        let policy = Policy { max_age: MAX_AGE, ..Policy::default() };
        let verifier = verifier(&ca_pem, &crl_pem, &policy)?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| AdapterError::Read { path: config.data_dir.display().to_string(), source })?;
        let store = Store::open(&config.data_dir)?;
        let bus = Bus::start_plain(bus_config(&config, &code)?);
        let adapter = Self {
            inner: Arc::new(Inner {
                code,
                store,
                bus,
                signer,
                sealing,
                ca_pem,
                verifier: RwLock::new(Arc::new(verifier)),
                policy,
                outbox_wake: Notify::new(),
                items_wake: Notify::new(),
                directory_wake: Notify::new(),
                cursor: Mutex::new(None),
                key_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
                shutdown: CancellationToken::new(),
                tasks: Mutex::new(Vec::new()),
                config,
            }),
        };
        let tasks = vec![
            tokio::spawn(publish_outbox(adapter.clone())),
            tokio::spawn(receive_inbox(adapter.clone())),
            tokio::spawn(refresh_directory(adapter.clone())),
        ];
        if let Ok(mut slot) = adapter.inner.tasks.lock() {
            *slot = tasks;
        }
        Ok(adapter)
    }

    /// The agency this adapter speaks for.
    pub fn agency(&self) -> &AgencyCode {
        &self.inner.code
    }

    /// A header for a new letter from this agency; add recipients and send it.
    pub fn header(&self) -> HeaderDraft {
        HeaderDraft::new(self.inner.code.as_str())
    }

    /// Whether the broker connection is up.
    pub fn is_connected(&self) -> bool {
        self.inner.bus.is_connected()
    }

    /// Envelopes in the outbox, not yet confirmed by the broker.
    pub fn outbox_len(&self) -> usize {
        self.inner.store.outbox_len()
    }

    /// Items received and not yet acknowledged by the application.
    pub fn pending_len(&self) -> usize {
        self.inner.store.pending_len()
    }

    /// Signs `letter` (sealing it for its recipients when its classification requires
    /// it), writes it to the durable outbox and returns its envelope id. The outbox is
    /// published in the background and an entry is removed only once the broker confirms
    /// it, so once this returns the letter survives crashes and broker outages.
    ///
    /// With an `idempotency_key` (the application's own reference for the letter), a
    /// second call with the same key returns the first call's envelope id and sends
    /// nothing: an application that crashed before it learned the id can safely retry.
    ///
    /// # Errors
    /// A letter that breaks the contract ([`AdapterError::Invalid`] with its reason
    /// code), a recipient whose sealing certificate is unknown, storage failures.
    pub async fn send(
        &self,
        header: HeaderDraft,
        letter: pb::Letter,
        idempotency_key: Option<&str>,
    ) -> Result<String> {
        let inner = &self.inner;
        let _same_key = match idempotency_key {
            Some(key) => {
                let stripe = key.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
                Some(inner.key_locks[stripe % inner.key_locks.len()].lock().await)
            }
            None => None,
        };
        if let Some(key) = idempotency_key
            && let Some(id) = inner.store.key(key)?
        {
            return Ok(id);
        }
        let header = HeaderDraft { sender: inner.code.to_string(), ..header };
        let classification = header.classification;
        let recipients: Vec<String> = header.recipients.iter().map(|r| r.agency.clone()).collect();
        let subject = letter.subject.clone();
        let letter = with_digests(letter);
        let draft = Draft::letter(header, letter);
        let now = Utc::now();
        let content = if must_be_sealed(classification) {
            let certificates = self.sealing_certificates(&recipients).await?;
            let verifier = self.verifier();
            draft
                .build_sealed(&inner.policy, now, &certificates, verifier.trust())
                .map_err(|e| AdapterError::invalid(&e, e.reason()))?
        } else {
            draft.build(&inner.policy, now).map_err(|e| AdapterError::invalid(&e, e.reason()))?
        };
        let id = content.header.as_ref().map(|h| h.envelope_id.clone()).unwrap_or_default();
        let envelope = inner.signer.sign(&content).map_err(|e| AdapterError::Sign(e.to_string()))?;
        let mut batch = Batch::default();
        let kind = if must_be_sealed(classification) { Kind::Sealed } else { Kind::Letter };
        self.queue(&mut batch, &id, Bytes::from(envelope.encode_to_vec()), kind)?;
        batch.put_sent(&SentRecord {
            id: id.clone(),
            subject,
            created_at_ms: now.timestamp_millis(),
            state: "queued".into(),
            classification: classification.as_str_name().to_owned(),
            recipients: recipients
                .iter()
                .map(|agency| SentRecipient {
                    agency: agency.clone(),
                    status: "queued".into(),
                    steps: Vec::new(),
                })
                .collect(),
            ..SentRecord::default()
        });
        if let Some(key) = idempotency_key {
            batch.put_key(key, &id);
        }
        inner.store.commit(&batch)?;
        inner.store.flush().await?;
        crash::point(crash::OUTBOX_WRITTEN);
        inner.outbox_wake.notify_one();
        tracing::info!(envelope_id = %id, trace_id = %id, recipients = recipients.join(","), "letter queued");
        Ok(id)
    }

    fn queue(&self, batch: &mut Batch, id: &str, envelope: Bytes, kind: Kind) -> Result<()> {
        let sequence = self.inner.store.next_sequence()?;
        batch.queue(
            sequence,
            &OutboxEntry {
                id: id.to_owned(),
                envelope,
                kind: kind as i32,
                queued_at_ms: Utc::now().timestamp_millis(),
            },
        );
        Ok(())
    }

    /// The next item the application has not acknowledged and this process has not
    /// handed out yet, waiting for one to arrive. After a restart, unacknowledged items
    /// are handed out again (see the crash-point table).
    ///
    /// # Errors
    /// Shutdown, storage failures.
    pub async fn next_item(&self) -> Result<Item> {
        loop {
            let woken = self.inner.items_wake.notified();
            let after = self.inner.cursor.lock().map(|c| *c).unwrap_or(None);
            if let Some(record) = self.inner.store.pending(after, 1)?.into_iter().next() {
                if let Ok(mut cursor) = self.inner.cursor.lock() {
                    *cursor = Some(record.sequence);
                }
                let item = self.to_item(&record);
                crash::point(crash::HANDED_NOT_ACKED);
                return item;
            }
            tokio::select! {
                () = woken => {}
                () = self.inner.shutdown.cancelled() => return Err(AdapterError::ShuttingDown),
            }
        }
    }

    /// Up to `limit` items not yet acknowledged, oldest first (whether or not handed out
    /// before).
    ///
    /// # Errors
    /// Storage failures.
    pub fn pending_items(&self, limit: usize) -> Result<Vec<Item>> {
        self.inner.store.pending(None, limit)?.iter().map(|record| self.to_item(record)).collect()
    }

    /// Item `id`, acknowledged or not.
    ///
    /// # Errors
    /// Storage failures.
    pub fn item(&self, id: &str) -> Result<Option<Item>> {
        self.inner
            .store
            .item(id)?
            .filter(|r| r.state != ItemState::Internal as i32)
            .map(|r| self.to_item(&r))
            .transpose()
    }

    /// The application has stored item `id`. For a letter, the SDK then sends the
    /// signed `delivered` receipt (durably queued together with the acknowledgement).
    /// Acknowledging twice is harmless.
    ///
    /// # Errors
    /// An unknown item, storage or signing failures.
    pub async fn ack(&self, id: &str) -> Result<()> {
        let inner = &self.inner;
        let mut record = inner.store.item(id)?.ok_or_else(|| AdapterError::UnknownItem(id.to_owned()))?;
        if record.state != ItemState::Pending as i32 {
            return Ok(());
        }
        let mut batch = Batch::default();
        if record.kind().is_letter() {
            self.queue_receipt(
                &mut batch,
                &mut record,
                pb::receipt::Status::Delivered(pb::Delivered {}),
                "delivered",
            )?;
        }
        record.state = ItemState::Acked as i32;
        record.acked_at_ms = Utc::now().timestamp_millis();
        batch.put_item(&record);
        inner.store.commit(&batch)?;
        inner.store.flush().await?;
        crash::point(crash::ACKED_NOT_RECEIPTED);
        inner.outbox_wake.notify_one();
        Ok(())
    }

    /// Reports a status of letter `letter_id` (received by this agency) to its sender
    /// with a signed receipt; returns the receipt's envelope id. A letter not yet
    /// acknowledged is acknowledged first (its `delivered` receipt goes out before).
    ///
    /// # Errors
    /// An unknown id or one that is not a letter, an invalid status (empty incoming
    /// number, ...), storage or signing failures.
    pub async fn set_status(&self, letter_id: &str, update: StatusUpdate) -> Result<String> {
        let inner = &self.inner;
        let record =
            inner.store.item(letter_id)?.ok_or_else(|| AdapterError::UnknownItem(letter_id.to_owned()))?;
        if !record.kind().is_letter() {
            return Err(AdapterError::NotALetter(letter_id.to_owned()));
        }
        if record.state == ItemState::Pending as i32 {
            self.ack(letter_id).await?;
        }
        let mut record =
            inner.store.item(letter_id)?.ok_or_else(|| AdapterError::UnknownItem(letter_id.to_owned()))?;
        let today = Utc::now().format("%Y-%m-%d").to_string();
        let mut batch = Batch::default();
        let id = self.queue_receipt(&mut batch, &mut record, update.to_wire(&today), update.name())?;
        batch.put_item(&record);
        inner.store.commit(&batch)?;
        inner.store.flush().await?;
        inner.outbox_wake.notify_one();
        Ok(id)
    }

    fn queue_receipt(
        &self,
        batch: &mut Batch,
        record: &mut InboxRecord,
        status: pb::receipt::Status,
        name: &str,
    ) -> Result<String> {
        let (header, digest) = header_of(&record.envelope)?;
        let content = Draft::receipt(self.inner.code.as_str(), &header, digest, status)
            .build(&self.inner.policy, Utc::now())
            .map_err(|e| AdapterError::invalid(&e, e.reason()))?;
        let id = content.header.as_ref().map(|h| h.envelope_id.clone()).unwrap_or_default();
        let envelope = self.inner.signer.sign(&content).map_err(|e| AdapterError::Sign(e.to_string()))?;
        self.queue(batch, &id, Bytes::from(envelope.encode_to_vec()), Kind::Receipt)?;
        record.reported.push(name.to_owned());
        Ok(id)
    }

    /// The tracking view of letter `id` this agency sent: its acceptance by the platform
    /// and every recipient's timeline, from the notices and receipts received.
    ///
    /// # Errors
    /// Storage failures.
    pub fn sent(&self, id: &str) -> Result<Option<SentTracking>> {
        Ok(self.inner.store.sent(id)?.map(tracking_view))
    }

    /// Asks the platform for the directory (agencies, their certificates, the CRL);
    /// the answer updates the adapter's copy. Returns the request's envelope id.
    ///
    /// # Errors
    /// Storage or signing failures.
    pub async fn request_directory(&self) -> Result<String> {
        self.request(pb::request::Kind::Directory(pb::DirectoryRequest {})).await
    }

    /// Asks the platform to deliver again archived envelope `envelope_id` (one this
    /// agency sent or received); it arrives as a notice item holding the original
    /// envelope. Returns the request's envelope id.
    ///
    /// # Errors
    /// Storage or signing failures.
    pub async fn request_redelivery(&self, envelope_id: &str) -> Result<String> {
        self.request(pb::request::Kind::Redelivery(pb::RedeliveryRequest {
            envelope_id: envelope_id.to_owned(),
        }))
        .await
    }

    async fn request(&self, kind: pb::request::Kind) -> Result<String> {
        let content = Draft::request(self.inner.code.as_str(), kind)
            .build(&self.inner.policy, Utc::now())
            .map_err(|e| AdapterError::invalid(&e, e.reason()))?;
        let id = content.header.as_ref().map(|h| h.envelope_id.clone()).unwrap_or_default();
        let envelope = self.inner.signer.sign(&content).map_err(|e| AdapterError::Sign(e.to_string()))?;
        let mut batch = Batch::default();
        self.queue(&mut batch, &id, Bytes::from(envelope.encode_to_vec()), Kind::Request)?;
        self.inner.store.commit(&batch)?;
        self.inner.store.flush().await?;
        self.inner.outbox_wake.notify_one();
        Ok(id)
    }

    /// Stops receiving and publishing and closes the connection. What is in the outbox
    /// stays there for the next start.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let tasks = self.inner.tasks.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
        self.inner.bus.shutdown().await;
        let _ = self.inner.store.flush().await;
    }

    fn verifier(&self) -> Arc<Verifier> {
        self.inner.verifier.read().map_or_else(|p| Arc::clone(&p.into_inner()), |v| Arc::clone(&v))
    }

    async fn sealing_certificates(&self, recipients: &[String]) -> Result<Vec<X509>> {
        let deadline = tokio::time::Instant::now() + DIRECTORY_WAIT;
        let mut asked = false;
        loop {
            let woken = self.inner.directory_wake.notified();
            let mut certificates = Vec::new();
            let mut missing = None;
            for code in recipients {
                match self.inner.store.directory_entry(code)?.filter(|e| !e.sealing_certificate.is_empty()) {
                    Some(entry) => {
                        certificates.push(X509::from_der(&entry.sealing_certificate).map_err(|e| {
                            AdapterError::Credentials(format!("sealing certificate of {code}: {e}"))
                        })?)
                    }
                    None => {
                        missing = Some(code.clone());
                        break;
                    }
                }
            }
            let Some(missing) = missing else { return Ok(certificates) };
            if !asked {
                self.request_directory().await?;
                asked = true;
            }
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep_until(deadline) => return Err(AdapterError::NoSealingCertificate(missing)),
                () = self.inner.shutdown.cancelled() => return Err(AdapterError::ShuttingDown),
            }
        }
    }

    fn to_item(&self, record: &InboxRecord) -> Result<Item> {
        let envelope = pb::Envelope::decode(record.envelope.clone())
            .map_err(|e| AdapterError::invalid(e, ReasonCode::MalformedEnvelope))?;
        let content = pb::SignedContent::decode(envelope.signed_content.clone())
            .map_err(|e| AdapterError::invalid(e, ReasonCode::MalformedContent))?;
        let header = content.header.clone().unwrap_or_default();
        let body = match content.body {
            Some(Body::Letter(letter)) => ItemBody::Letter(letter),
            Some(Body::Sealed(sealed)) => {
                match self.inner.sealing.open(&header, &sealed, &self.inner.policy.limits) {
                    Ok(letter) => ItemBody::Letter(letter),
                    Err(error) => {
                        ItemBody::Unreadable { reason: error.to_string(), reason_code: error.reason() as i32 }
                    }
                }
            }
            Some(Body::Receipt(receipt)) => ItemBody::Receipt(receipt),
            Some(Body::Notice(notice)) => ItemBody::Notice(notice),
            Some(Body::Request(_)) | None => {
                return Err(AdapterError::invalid("not an item for an agency", ReasonCode::InvalidField));
            }
        };
        Ok(Item {
            id: record.id.clone(),
            kind: record.kind().as_str(),
            sender: header.sender.clone(),
            received_at: Time::from_timestamp_millis(record.received_at_ms).unwrap_or_default(),
            acknowledged: record.state == ItemState::Acked as i32,
            header,
            body,
            digest: hex::encode(mirsal_envelope::sha256(&envelope.signed_content)),
            envelope: record.envelope.clone(),
        })
    }
}

fn verifier(ca_pem: &[u8], crl_pem: &[u8], policy: &Policy) -> Result<Verifier> {
    let trust =
        TrustStore::from_pem(ca_pem, &[crl_pem]).map_err(|e| AdapterError::Credentials(e.to_string()))?;
    Ok(Verifier::new(trust, policy.clone()))
}

fn bus_config(config: &AdapterConfig, code: &AgencyCode) -> Result<BusConfig> {
    let optional = |path: &Option<std::path::PathBuf>| path.as_deref().map(read).transpose();
    let tls = TlsConfig {
        ca_pem: optional(&config.broker.tls_ca)?.map(|b| String::from_utf8_lossy(&b).into_owned()),
        client_certificate_pem: optional(&config.broker.tls_certificate)?,
        client_key_pem: optional(&config.broker.tls_key)?,
    };
    Ok(BusConfig { tls, ..BusConfig::new(config.broker.url.clone(), format!("mirsal-adapter {code}")) })
}

/// Fills in missing attachment digests, so callers (and the HTTP bridge) can leave them
/// out; digests that are given are checked by validation.
fn with_digests(mut letter: pb::Letter) -> pb::Letter {
    for attachment in &mut letter.attachments {
        if attachment.sha256.is_empty() {
            attachment.sha256 = Bytes::copy_from_slice(&mirsal_envelope::sha256(&attachment.content));
        }
    }
    letter
}

/// The header and content digest of stored envelope bytes.
fn header_of(envelope: &Bytes) -> Result<(pb::Header, [u8; 32])> {
    let envelope = pb::Envelope::decode(envelope.clone())
        .map_err(|e| AdapterError::invalid(e, ReasonCode::MalformedEnvelope))?;
    let content = pb::SignedContent::decode(envelope.signed_content.clone())
        .map_err(|e| AdapterError::invalid(e, ReasonCode::MalformedContent))?;
    Ok((content.header.unwrap_or_default(), mirsal_envelope::sha256(&envelope.signed_content)))
}

fn millis_time(ms: i64) -> Option<Time> {
    (ms > 0).then(|| Time::from_timestamp_millis(ms)).flatten()
}

fn tracking_view(record: SentRecord) -> SentTracking {
    let rejection = (record.rejected_code != 0 || !record.rejected_text.is_empty()).then(|| Rejection {
        code: record.rejected_code,
        reason: ReasonCode::try_from(record.rejected_code).map_or("UNKNOWN", |r| r.as_str_name()).to_owned(),
        text: record.rejected_text.clone(),
    });
    SentTracking {
        id: record.id,
        subject: record.subject,
        classification: record.classification,
        created_at: millis_time(record.created_at_ms),
        state: record.state,
        published_at: millis_time(record.published_at_ms),
        accepted_at: millis_time(record.accepted_at_ms),
        audit_sequence: (record.audit_sequence > 0).then_some(record.audit_sequence),
        rejection,
        recipients: record
            .recipients
            .into_iter()
            .map(|r| RecipientTracking {
                agency: r.agency,
                status: r.status,
                timeline: r
                    .steps
                    .into_iter()
                    .map(|s| Step { status: s.status, at: millis_time(s.at_ms), detail: s.detail })
                    .collect(),
            })
            .collect(),
    }
}

/// Position of a recipient status on the main line, to never move a status back when
/// receipts arrive out of order.
fn rank(status: &str) -> u8 {
    match status {
        "queued" => 1,
        "delivered" => 2,
        "registered" => 3,
        "referred" => 4,
        "answered" => 5,
        "closed" | "refused" => 6,
        _ => 0,
    }
}

/// Background: publishes the outbox, a window of confirms at a time, and removes each
/// entry once the broker confirmed it.
async fn publish_outbox(adapter: Adapter) {
    let inner = &adapter.inner;
    let publisher = inner.bus.publisher();
    let mut failures = 0u32;
    while !inner.shutdown.is_cancelled() {
        let woken = inner.outbox_wake.notified();
        let entries = match inner.store.outbox(OUTBOX_WINDOW) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::error!(%error, "cannot read the outbox");
                Vec::new()
            }
        };
        if entries.is_empty() {
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = inner.shutdown.cancelled() => return,
            }
            continue;
        }
        let mut pending = Vec::with_capacity(entries.len());
        let mut trouble = None;
        for (sequence, entry) in entries {
            let message = Outgoing {
                exchange: topology::SUBMIT_EXCHANGE.to_owned(),
                routing_key: String::new(),
                properties: headers::with_header(
                    headers::envelope_properties(&entry.id).with_user_id(inner.code.as_str().into()),
                    headers::TRACE_ID,
                    &entry.id,
                ),
                payload: entry.envelope.clone(),
                mandatory: true,
            };
            let started = tokio::select! {
                started = publisher.start(&message) => started,
                () = inner.shutdown.cancelled() => return,
            };
            match started {
                Ok(confirm) => {
                    crash::point_for(crash::PUBLISHED_UNCONFIRMED, entry.kind());
                    pending.push((sequence, entry, confirm));
                }
                Err(error) => {
                    trouble = Some(error);
                    break;
                }
            }
        }
        let mut batch = Batch::default();
        let mut refused = false;
        for (sequence, entry, confirm) in pending {
            match confirm.wait().await {
                Ok(()) => {
                    crash::point_for(crash::CONFIRMED_NOT_CLEARED, entry.kind());
                    batch.unqueue(sequence);
                    if let Err(error) = mark_sent(&adapter, &mut batch, &entry.id, |r| {
                        if r.state == "queued" || r.state == "failing" {
                            r.state = "published".into();
                            r.rejected_text.clear();
                        }
                        r.published_at_ms = Utc::now().timestamp_millis();
                    }) {
                        tracing::warn!(%error, "cannot update the tracking view");
                    }
                }
                Err(error) if !error.is_transient() => {
                    // Refused (no permission) or unroutable (the platform's ingress queue
                    // is missing): nothing this adapter can fix, but nothing to drop either.
                    // The entry stays in the outbox, the tracking view says why, and it is
                    // tried again after the longest backoff.
                    tracing::error!(envelope_id = %entry.id, %error, "the broker refused the envelope; keeping it in the outbox");
                    let text = error.to_string();
                    let _ = mark_sent(&adapter, &mut batch, &entry.id, |r| {
                        if r.state == "queued" || r.state == "failing" {
                            r.state = "failing".into();
                        }
                        r.rejected_text = text.clone();
                    });
                    refused = true;
                    trouble = Some(error);
                }
                Err(error) => trouble = Some(error),
            }
        }
        if let Err(error) = inner.store.commit(&batch) {
            tracing::error!(%error, "cannot clear confirmed outbox entries; they will be published again");
        }
        if let Some(error) = trouble {
            failures = if refused { u32::MAX } else { failures.saturating_add(1) };
            let delay = mirsal_bus::Backoff { initial: Duration::from_millis(200), max: REFUSED_RETRY }
                .delay(failures);
            if !matches!(error, PublishError::ShuttingDown) {
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "outbox publishing interrupted");
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = inner.shutdown.cancelled() => return,
            }
        } else {
            failures = 0;
        }
    }
}

fn mark_sent(
    adapter: &Adapter,
    batch: &mut Batch,
    id: &str,
    change: impl FnOnce(&mut SentRecord),
) -> Result<()> {
    if let Some(mut record) = adapter.inner.store.sent(id)? {
        change(&mut record);
        batch.put_sent(&record);
    }
    Ok(())
}

/// Background: receives the inbox. Each delivery is verified, stored durably (unless
/// it is a duplicate) and only then acknowledged to the broker.
async fn receive_inbox(adapter: Adapter) {
    let inner = &adapter.inner;
    let queue = topology::inbox_queue(inner.code.as_str());
    let mut deliveries = inner.bus.consume(&queue, inner.config.broker.prefetch, "mirsal-adapter");
    loop {
        let incoming = tokio::select! {
            incoming = deliveries.next() => incoming,
            () = inner.shutdown.cancelled() => return,
        };
        let Some(mut incoming) = incoming else { return };
        let bytes = incoming.take_body();
        let kind = kind_of(&bytes);
        crash::point_for(crash::RECEIVED_NOT_STORED, kind);
        let outcome = loop {
            match receive(&adapter, &bytes).await {
                Err(Receive::Later(reason)) => {
                    // A problem on this side (a stale CRL, storage): keep the delivery
                    // unacknowledged and try again, rather than lose or dead-letter it.
                    tracing::error!(%reason, "cannot take in a delivery yet; retrying in 30 s");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(30)) => continue,
                        () = inner.shutdown.cancelled() => return,
                    }
                }
                other => break other,
            }
        };
        let settled = match outcome {
            Ok(()) => {
                crash::point_for(crash::STORED_NOT_ACKED, kind);
                incoming.ack().await
            }
            Err(Receive::Refuse(reason)) => {
                tracing::error!(%reason, "refusing a delivery that does not verify; it goes to the dead letters");
                incoming.reject().await
            }
            Err(Receive::Later(_)) => continue,
        };
        if let Err(error) = settled {
            tracing::debug!(%error, "could not settle the delivery; it will come again and be recognised");
        }
    }
}

/// What an incoming envelope holds, read without verifying (for crash points only).
fn kind_of(bytes: &Bytes) -> Kind {
    let content = pb::Envelope::decode(bytes.clone())
        .ok()
        .and_then(|envelope| pb::SignedContent::decode(envelope.signed_content).ok());
    Kind::of(content.and_then(|c| c.body).as_ref())
}

enum Receive {
    /// The delivery is not genuine: dead-letter it.
    Refuse(String),
    /// A local problem: keep it and try again.
    Later(String),
}

async fn receive(adapter: &Adapter, bytes: &Bytes) -> Result<(), Receive> {
    let inner = &adapter.inner;
    // Certificates are checked as of the envelope's creation: a letter signed before its
    // sender's certificate expired or was revoked keeps its signature (the router
    // checked the time when it accepted it).
    let (header, _) = header_of(bytes).map_err(|e| Receive::Refuse(e.to_string()))?;
    let now = Utc::now();
    let at = header.created_at.as_ref().and_then(from_timestamp).map_or(now, |created| created.min(now));
    let verified = match adapter.verifier().verify(bytes.clone(), at) {
        Ok(verified) => verified,
        Err(error) if error.reason() == ReasonCode::RevocationUnavailable => {
            reload_crl(adapter);
            return Err(Receive::Later(error.to_string()));
        }
        Err(error) => return Err(Receive::Refuse(error.to_string())),
    };
    let id = verified.id().to_owned();
    let store_error = |e: StoreError| Receive::Later(e.to_string());
    if inner.store.item(&id).map_err(store_error)?.is_some() {
        return Ok(());
    }
    let mut batch = Batch::default();
    let (kind, state) = match &verified.body {
        Body::Letter(_) => (Kind::Letter, ItemState::Pending),
        Body::Sealed(_) => (Kind::Sealed, ItemState::Pending),
        Body::Receipt(receipt) => {
            record_receipt(adapter, &mut batch, &verified, receipt)
                .map_err(|e| Receive::Later(e.to_string()))?;
            (Kind::Receipt, ItemState::Pending)
        }
        Body::Notice(notice) => {
            let internal =
                record_notice(adapter, &mut batch, notice).map_err(|e| Receive::Later(e.to_string()))?;
            (Kind::Notice, if internal { ItemState::Internal } else { ItemState::Pending })
        }
        Body::Request(_) => return Err(Receive::Refuse("a request in an agency's inbox".into())),
    };
    let sequence = inner.store.next_sequence().map_err(store_error)?;
    batch.put_item(&InboxRecord {
        id: id.clone(),
        envelope: bytes.clone(),
        kind: kind as i32,
        state: state as i32,
        received_at_ms: now.timestamp_millis(),
        sequence,
        ..InboxRecord::default()
    });
    inner.store.commit(&batch).map_err(store_error)?;
    inner.store.flush().await.map_err(store_error)?;
    tracing::info!(envelope_id = %id, trace_id = %id, kind = kind.as_str(), from = %verified.signer, "received");
    inner.items_wake.notify_waiters();
    Ok(())
}

/// A recipient's receipt about a letter this agency sent: its tracking view moves on.
fn record_receipt(
    adapter: &Adapter,
    batch: &mut Batch,
    verified: &mirsal_envelope::VerifiedEnvelope,
    receipt: &pb::Receipt,
) -> Result<()> {
    use pb::receipt::Status;
    let (status, detail) = match &receipt.status {
        Some(Status::Delivered(_)) => ("delivered", String::new()),
        Some(Status::Registered(r)) => {
            ("registered", format!("{} {}", r.incoming_number, r.incoming_date).trim().to_owned())
        }
        Some(Status::Referred(r)) => {
            ("referred", format!("{} {}", r.department, r.deadline).trim().to_owned())
        }
        Some(Status::Answered(a)) => ("answered", a.reply_id.clone()),
        Some(Status::Closed(c)) => ("closed", c.note.clone()),
        Some(Status::Refused(r)) => ("refused", format!("{}: {}", r.reason().as_str_name(), r.text)),
        None => return Ok(()),
    };
    let agency = verified.signer.to_string();
    let at = verified.header.created_at.as_ref().and_then(from_timestamp).map_or(0, |t| t.timestamp_millis());
    mark_sent(adapter, batch, &receipt.letter_id, |record| {
        if let Some(recipient) = record.recipients.iter_mut().find(|r| r.agency == agency) {
            // Receipts can arrive out of order: keep the timeline in the order they were
            // signed.
            let position = recipient.steps.partition_point(|step| step.at_ms <= at);
            recipient.steps.insert(position, SentStep { status: status.to_owned(), at_ms: at, detail });
            if rank(status) > rank(&recipient.status) || status == "referred" {
                recipient.status = status.to_owned();
            }
        }
    })
}

/// A notice from the platform. Returns whether it is internal to the adapter (a
/// directory snapshot it asked for) rather than an item for the application.
fn record_notice(adapter: &Adapter, batch: &mut Batch, notice: &pb::Notice) -> Result<bool> {
    use pb::notice::Kind as NoticeKind;
    let now_ms = Utc::now().timestamp_millis();
    match &notice.kind {
        Some(NoticeKind::Accepted(accepted)) => {
            let at = accepted
                .router_time
                .as_ref()
                .and_then(from_timestamp)
                .map_or(now_ms, |t| t.timestamp_millis());
            mark_sent(adapter, batch, &notice.subject_id, |record| {
                record.state = "accepted".into();
                record.accepted_at_ms = at;
                record.audit_sequence = accepted.audit_sequence;
                for recipient in &mut record.recipients {
                    recipient.steps.push(SentStep {
                        status: "accepted".into(),
                        at_ms: at,
                        detail: String::new(),
                    });
                }
            })?;
        }
        Some(NoticeKind::Rejected(rejected)) => {
            mark_sent(adapter, batch, &notice.subject_id, |record| {
                record.state = "rejected".into();
                record.rejected_code = rejected.code;
                record.rejected_text = rejected.text.clone();
            })?;
        }
        Some(NoticeKind::Overdue(overdue)) => {
            let what = match overdue.kind() {
                pb::OverdueKind::Reply => "overdue-reply",
                _ => "overdue-delivery",
            };
            mark_sent(adapter, batch, &notice.subject_id, |record| {
                if let Some(recipient) = record.recipients.iter_mut().find(|r| r.agency == overdue.agency) {
                    recipient.steps.push(SentStep {
                        status: what.into(),
                        at_ms: now_ms,
                        detail: String::new(),
                    });
                }
            })?;
        }
        Some(NoticeKind::Directory(snapshot)) => {
            for entry in &snapshot.agencies {
                batch.put_directory(&entry.code, entry);
            }
            update_crl(adapter, &snapshot.crl);
            adapter.inner.directory_wake.notify_waiters();
            return Ok(true);
        }
        Some(NoticeKind::Retrieval(_)) | None => {}
    }
    Ok(false)
}

/// Where a CRL received from the platform is kept: the data folder, since the bundle
/// may be read-only.
fn saved_crl_path(config: &AdapterConfig) -> std::path::PathBuf {
    config.data_dir.join("crl.pem")
}

/// The newer of the bundle's CRL and the one last received from the platform.
fn newest_crl(config: &AdapterConfig) -> Option<Vec<u8>> {
    let parse = |path: &std::path::Path| {
        let pem = std::fs::read(path).ok()?;
        let crl = openssl::x509::X509Crl::from_pem(&pem).ok()?;
        Some((pem, crl))
    };
    match (parse(&config.pki.crl), parse(&saved_crl_path(config))) {
        (Some((bundle, b)), Some((saved, s))) => {
            Some(if s.last_update() > b.last_update() { saved } else { bundle })
        }
        (Some((pem, _)), None) | (None, Some((pem, _))) => Some(pem),
        (None, None) => None,
    }
}

/// Installs the CRL from a directory snapshot when it is valid and newer than ours.
fn update_crl(adapter: &Adapter, der: &[u8]) {
    let Ok(crl) = openssl::x509::X509Crl::from_der(der) else { return };
    let Ok(pem) = crl.to_pem() else { return };
    let path = saved_crl_path(&adapter.inner.config);
    let newer = newest_crl(&adapter.inner.config)
        .and_then(|current| openssl::x509::X509Crl::from_pem(&current).ok())
        .is_none_or(|current| crl.last_update() > current.last_update());
    if !newer {
        return;
    }
    match verifier(&adapter.inner.ca_pem, &pem, &adapter.inner.policy) {
        Ok(fresh) => {
            if let Ok(mut slot) = adapter.inner.verifier.write() {
                *slot = Arc::new(fresh);
            }
            if let Err(error) = write_atomic(&path, &pem) {
                tracing::warn!(%error, "using the new CRL but cannot save it");
            }
            tracing::info!("CRL updated from the platform's directory");
        }
        Err(error) => tracing::warn!(%error, "ignoring a CRL that does not verify against the platform CA"),
    }
}

fn reload_crl(adapter: &Adapter) {
    if let Some(pem) = newest_crl(&adapter.inner.config)
        && let Ok(fresh) = verifier(&adapter.inner.ca_pem, &pem, &adapter.inner.policy)
        && let Ok(mut slot) = adapter.inner.verifier.write()
    {
        *slot = Arc::new(fresh);
    }
}

fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(temporary, path)
}

/// Background: asks for the directory at start (when none is known) and every hour.
async fn refresh_directory(adapter: Adapter) {
    let inner = &adapter.inner;
    if inner.store.directory_len() > 0 {
        tokio::select! {
            () = tokio::time::sleep(DIRECTORY_REFRESH) => {}
            () = inner.shutdown.cancelled() => return,
        }
    }
    loop {
        if let Err(error) = adapter.request_directory().await {
            tracing::warn!(%error, "cannot ask for the directory");
        }
        tokio::select! {
            () = tokio::time::sleep(DIRECTORY_REFRESH) => {}
            () = inner.shutdown.cancelled() => return,
        }
    }
}
