//! The ingress pipeline: one task per delivery, many in flight.
//!
//! For each delivery, in order: verify (signature, chain, revocation, content rules) on
//! the bounded CPU pool; check that the AMQP user that published it is the signer;
//! authorize it against the directory; dedupe it by envelope id; persist the archive
//! record, the tracking rows and the audit event in one transaction and flush (group
//! commit); publish it to every recipient's inbox with confirms and `mandatory`, and
//! the signed `accepted` notice to the sender; only then acknowledge the delivery.
//!
//! Anything refused gets a signed `rejected` notice (when the publishing agency is
//! known), an audit event, and a copy in the dead-letter queue with the reason in its
//! headers, and is then acknowledged. A transient failure (storage, broker) is handed
//! back to the queue after a backoff; the quorum queue's delivery limit bounds retries.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use chrono::Utc;
use futures_util::future::join_all;
use mirsal_bus::{Incoming, Outgoing, PublishError, headers, topology};
use mirsal_envelope::{ReasonCode, Time, VerifiedEnvelope, VerifyError, pb, pb::signed_content::Body};
use prost::Message as _;

use crate::{
    Router,
    records::{EnvelopeRecord, Kind, Status},
    store::{Batch, DueEntry, DueKind, NewEvent, StoreError},
    tracking,
};

/// How long a publish may keep retrying across reconnects before the delivery is handed
/// back to the queue instead.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(20);

/// Why a delivery was not completed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad input: refuse it for good.
    Refused(Refusal),
    /// Try again later.
    Transient(String),
}

/// A refusal and what is known of the envelope.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) reason: ReasonCode,
    pub(crate) text: String,
}

pub(crate) fn refused(reason: ReasonCode, text: impl Into<String>) -> Failure {
    Failure::Refused(Refusal { reason, text: text.into() })
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Self::Transient(error.to_string())
    }
}

impl From<VerifyError> for Failure {
    fn from(error: VerifyError) -> Self {
        refused(error.reason(), error.to_string())
    }
}

pub(crate) fn publish_failure(error: PublishError) -> Failure {
    Failure::Transient(format!("publishing: {error}"))
}

/// Handles one delivery from the ingress queue, start to finish.
pub(crate) async fn handle(router: Arc<Router>, mut incoming: Incoming) {
    let body = incoming.take_body();
    let user = incoming.user_id().map(str::to_owned);
    let span = tracing::info_span!("envelope", trace_id = %peek(&body).map_or_else(String::new, |(id, _)| id), user = user.as_deref().unwrap_or(""));
    let _entered = span.enter();
    router.metrics.enter();
    router.metrics.received();
    let outcome = process(&router, body.clone(), user.as_deref(), Arrival::Published).await;
    let settled = match outcome {
        Ok(kind) => {
            // Accepted means the publishing user is the signer.
            router.metrics.accepted(kind, user.as_deref().unwrap_or_default());
            incoming.ack().await
        }
        Err(Failure::Refused(refusal)) => {
            tracing::info!(reason = refusal.reason as i32, text = %refusal.text, "refused");
            match refuse(&router, &body, user.as_deref(), &refusal).await {
                Ok(()) => {
                    router.metrics.rejected(refusal.reason);
                    router.metrics.dead_lettered(refusal.reason);
                    incoming.ack().await
                }
                Err(error) => back_off_and_requeue(&incoming, &error).await,
            }
        }
        Err(Failure::Transient(error)) => back_off_and_requeue(&incoming, &error).await,
    };
    router.metrics.leave();
    if let Err(error) = settled {
        // The channel died: the broker delivers the message again, and dedupe makes the
        // second pass finish whatever the first one did not.
        tracing::debug!(%error, "could not settle the delivery; it will come again");
    }
}

async fn back_off_and_requeue(incoming: &Incoming, error: &str) -> Result<(), mirsal_bus::BusError> {
    let count = incoming.delivery_count();
    let delay = mirsal_bus::Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(10) }
        .delay(u32::try_from(count).unwrap_or(u32::MAX));
    tracing::warn!(%error, deliveries = count + 1, retry_in_ms = delay.as_millis() as u64, "transient failure; handing the delivery back");
    tokio::time::sleep(delay).await;
    incoming.requeue().await
}

/// How an envelope reached the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// From `mirsal.ingress`, as its sender published it.
    Published,
    /// From the dead letters, replayed by the platform team: its time there is not the
    /// platform's latency, so it stays out of the latency figures.
    Replayed,
}

async fn process(
    router: &Arc<Router>,
    body: Bytes,
    user: Option<&str>,
    arrival: Arrival,
) -> Result<Kind, Failure> {
    if let Some(kind) = resume(router, &body, user, arrival).await? {
        return Ok(kind);
    }
    let now = Utc::now();
    let verified = verify(router, body.clone(), now).await?;
    check_origin(router, &verified, user)?;
    let directory = router.directory();
    let sender = directory.get(verified.signer.as_str()).ok_or_else(|| {
        refused(ReasonCode::UnknownSender, format!("{} is not in the directory", verified.signer))
    })?;
    if sender.status != crate::directory::AgencyStatus::Active {
        return Err(refused(ReasonCode::SenderSuspended, format!("{} is suspended", sender.code)));
    }
    match &verified.body {
        Body::Letter(_) | Body::Sealed(_) => {
            authorize_letter(&directory, &verified)?;
            route_letter(router, &verified, body, now, arrival).await
        }
        Body::Receipt(receipt) => route_receipt(router, &verified, receipt, body, now).await,
        Body::Request(request) => crate::requests::serve(router, &verified, request).await,
        Body::Notice(_) => Err(refused(ReasonCode::InvalidNotice, "only the platform sends notices")),
    }
}

/// A redelivery (or resubmission) of an envelope already accepted, byte for byte the
/// same content, from its own sender: it was verified when it was accepted, so only the
/// work still missing is done, on the archived bytes. Verifying it again could refuse
/// what was already accepted (a certificate revoked or a clock moved on since), which
/// would contradict the proof of submission the sender holds.
async fn resume(
    router: &Arc<Router>,
    body: &[u8],
    user: Option<&str>,
    arrival: Arrival,
) -> Result<Option<Kind>, Failure> {
    let Some((id, digest)) = peek(body) else { return Ok(None) };
    let Some(record) = router.store.envelope(&id)? else { return Ok(None) };
    let same_publisher = match user {
        Some(user) => user == record.sender,
        None => !router.config.policy.require_user_id,
    };
    if record.digest[..] != digest || !same_publisher {
        // Other content or another publisher: the full path refuses it with its reason.
        return Ok(None);
    }
    match record.kind() {
        Kind::Letter | Kind::Sealed => {
            let _guard = router.lock(&id).await;
            let record = router.store.envelope(&id)?.unwrap_or(record);
            finish_letter(router, &id, record, arrival).await.map(Some)
        }
        Kind::Receipt => {
            let _guard = router.lock(&record.about).await;
            let record = router.store.envelope(&id)?.unwrap_or(record);
            finish_receipt(router, &id, record).await.map(Some)
        }
        _ => Ok(None),
    }
}

/// Envelopes up to this size are verified on the task's own thread (well under a
/// millisecond of CPU: a hand-off to another thread costs more than it saves); larger
/// ones on the blocking pool, so that they do not hold up the other tasks.
const VERIFY_INLINE_BYTES: usize = 64 * 1024;

/// Verification, at most one per core at a time.
async fn verify(router: &Arc<Router>, body: Bytes, now: Time) -> Result<VerifiedEnvelope, Failure> {
    let verifier = router.verifier();
    let _permit = router.cpu.acquire().await.map_err(|e| Failure::Transient(e.to_string()))?;
    if body.len() <= VERIFY_INLINE_BYTES {
        return Ok(verifier.verify(body, now)?);
    }
    let result = tokio::task::spawn_blocking(move || verifier.verify(body, now))
        .await
        .map_err(|e| Failure::Transient(format!("verification task: {e}")))?;
    Ok(result?)
}

/// Header sender = certificate agency (checked by the verifier) = AMQP `user_id`.
fn check_origin(router: &Router, verified: &VerifiedEnvelope, user: Option<&str>) -> Result<(), Failure> {
    match user {
        Some(user) if user == verified.signer.as_str() => Ok(()),
        Some(user) => Err(refused(
            ReasonCode::OriginMismatch,
            format!("published by AMQP user {user} but signed by {}", verified.signer),
        )),
        None if router.config.policy.require_user_id => {
            Err(refused(ReasonCode::OriginMismatch, "published without an AMQP user_id"))
        }
        None => Ok(()),
    }
}

fn authorize_letter(
    directory: &crate::directory::Directory,
    verified: &VerifiedEnvelope,
) -> Result<(), Failure> {
    let classification = verified.header.classification();
    let sender = directory.get(verified.signer.as_str());
    if !sender.is_some_and(|s| s.max_classification.allows(classification)) {
        return Err(refused(
            ReasonCode::ClassificationNotAllowed,
            format!("{} may not send {} letters", verified.signer, classification.as_str_name()),
        ));
    }
    for recipient in &verified.header.recipients {
        let entry = directory.get(&recipient.agency).ok_or_else(|| {
            refused(ReasonCode::UnknownRecipient, format!("{} is not in the directory", recipient.agency))
        })?;
        if entry.status != crate::directory::AgencyStatus::Active {
            return Err(refused(
                ReasonCode::RecipientSuspended,
                format!("{} is suspended", recipient.agency),
            ));
        }
        if !entry.max_classification.allows(classification) {
            return Err(refused(
                ReasonCode::ClassificationNotAllowed,
                format!("{} may not receive {} letters", recipient.agency, classification.as_str_name()),
            ));
        }
    }
    Ok(())
}

fn millis(time: Option<&pbjson_types::Timestamp>) -> i64 {
    time.and_then(mirsal_envelope::time::from_timestamp).map_or(0, |t| t.timestamp_millis())
}

async fn route_letter(
    router: &Arc<Router>,
    verified: &VerifiedEnvelope,
    body: Bytes,
    now: Time,
    arrival: Arrival,
) -> Result<Kind, Failure> {
    let id = verified.id();
    let kind = Kind::of(Some(&verified.body));
    let _guard = router.lock(id).await;
    let record = match router.store.envelope(id)? {
        Some(existing) if existing.digest[..] == verified.digest => existing,
        Some(_) => {
            return Err(refused(
                ReasonCode::ReplayConflict,
                format!("envelope id {id} was already used for other content"),
            ));
        }
        None => accept_letter(router, verified, kind, body, now).await?,
    };
    finish_letter(router, id, record, arrival).await
}

/// Completes whatever is missing for an accepted letter: the fan-out to every recipient
/// not yet queued, then the accepted notice. Publishes the archived bytes, so a
/// resubmission can never change what recipients get. The caller holds the letter's
/// lock.
async fn finish_letter(
    router: &Arc<Router>,
    id: &str,
    record: EnvelopeRecord,
    arrival: Arrival,
) -> Result<Kind, Failure> {
    let kind = record.kind();
    let pending: Vec<_> =
        router.store.tracking(id)?.into_iter().filter(|row| row.status() == Status::Accepted).collect();
    let properties = delivery_properties(id, &record.sender, kind);
    let publishes = pending
        .iter()
        .map(|row| deliver(router, &row.recipient, record.envelope.clone(), properties.clone()));
    let results = join_all(publishes).await;
    let now_ms = Utc::now().timestamp_millis();
    let mut batch = Batch::default();
    let mut failure = None;
    for (mut row, result) in pending.into_iter().zip(results) {
        let recipient = row.recipient.clone();
        let recipient = recipient.as_str();
        match result {
            Ok(()) => {
                let _ = tracking::apply(&mut row, Status::Queued, now_ms, "", "");
                batch.put_tracking(&row);
                batch.undelivered(recipient, now_ms, id, record.priority);
                if arrival == Arrival::Published {
                    router.metrics.submit_to_queued(seconds_between(record.created_at_ms, now_ms));
                }
                batch.event(event("queued", id, recipient, String::new(), now_ms));
            }
            Err(error) => failure = Some(publish_failure(error)),
        }
    }
    if !batch.is_empty() {
        router.store.commit(batch)?;
    }
    // One flush per letter: the acceptance and the fan-out become durable together,
    // before the proof of submission goes out and before the delivery is acknowledged.
    // (A crash before it means a redelivery that publishes again to recipients, who
    // dedupe by envelope id.)
    router.store.flush().await?;
    if let Some(failure) = failure {
        return Err(failure);
    }

    if !record.completed {
        let accepted_at = Time::from_timestamp_millis(record.accepted_at_ms).unwrap_or_else(Utc::now);
        let digest: [u8; 32] = record
            .digest
            .as_slice()
            .try_into()
            .map_err(|_| Failure::Transient(format!("archived digest of {id} is not 32 bytes")))?;
        let notice = router
            .notary
            .accepted(&record.sender, (id, digest), accepted_at, record.audit_sequence, Utc::now())
            .map_err(|e| Failure::Transient(e.to_string()))?;
        publish_notice(router, &record.sender, &notice).await.map_err(publish_failure)?;
        // Durable before the ack: the ack ends all redeliveries, so a mark lost in a crash
        // after it would leave the letter unfinished for good. (A crash before the flush
        // means a redelivery that sends the notice once more.)
        let mut batch = Batch::default();
        batch.mark_completed(id);
        router.store.commit(batch)?;
        router.store.flush().await?;
    }
    Ok(kind)
}

/// Archives a new letter with its tracking rows, agenda and audit event, durably.
async fn accept_letter(
    router: &Router,
    verified: &VerifiedEnvelope,
    kind: Kind,
    body: Bytes,
    now: Time,
) -> Result<EnvelopeRecord, Failure> {
    let header = &verified.header;
    let id = verified.id();
    let now_ms = now.timestamp_millis();
    let outgoing_number = match &verified.body {
        Body::Letter(letter) => letter.outgoing_number.clone(),
        _ => String::new(),
    };
    let record = EnvelopeRecord {
        envelope: body,
        digest: verified.digest.to_vec(),
        sender: header.sender.clone(),
        kind: kind as i32,
        recipients: header.recipients.iter().map(|r| r.agency.clone()).collect(),
        accepted_at_ms: now_ms,
        audit_sequence: 0,
        thread_id: header.thread_id.clone(),
        about: String::new(),
        created_at_ms: millis(header.created_at.as_ref()),
        priority: header.priority,
        classification: header.classification,
        reply_due_ms: millis(header.reply_due.as_ref()),
        completed: false,
        outgoing_number,
    };
    let mut batch = Batch::default();
    for recipient in &header.recipients {
        batch.put_tracking(&tracking::new_row(id, &header.sender, &recipient.agency, now_ms));
        for due in agenda(router, id, &record, &recipient.agency, recipient.role()) {
            batch.schedule(&due);
        }
    }
    if !header.thread_id.is_empty() {
        batch.index_thread(&header.thread_id, id);
    }
    batch.index_time(now_ms, id);
    batch.index_agency(&header.sender, now_ms, id, true);
    for recipient in &header.recipients {
        batch.index_agency(&recipient.agency, now_ms, id, false);
    }
    if !record.outgoing_number.is_empty() {
        batch.index_number(&record.outgoing_number, id);
    }
    let recipients = record.recipients.join(",");
    let accepted = event("accepted", id, &header.sender, recipients, now_ms);
    batch.put_envelope_with_event(id, record.clone(), accepted);
    let sequences = router.store.commit(batch)?;
    Ok(EnvelopeRecord { audit_sequence: sequences.first().copied().unwrap_or(0), ..record })
}

/// What the overdue checker must look at for this letter and recipient.
pub(crate) fn agenda(
    router: &Router,
    letter_id: &str,
    record: &EnvelopeRecord,
    recipient: &str,
    role: pb::RecipientRole,
) -> Vec<DueEntry> {
    let sla = &router.config.overdue.delivery_sla;
    let delivery_sla = match pb::Priority::try_from(record.priority).unwrap_or(pb::Priority::Normal) {
        pb::Priority::Immediate => sla.immediate,
        pb::Priority::Urgent => sla.urgent,
        pb::Priority::Normal | pb::Priority::Unspecified => sla.normal,
    };
    let entry = |due_ms, kind| DueEntry {
        due_ms,
        letter_id: letter_id.to_owned(),
        recipient: recipient.to_owned(),
        kind,
    };
    let delivery_due =
        record.accepted_at_ms.saturating_add(i64::try_from(delivery_sla.as_millis()).unwrap_or(i64::MAX));
    let mut due = vec![entry(delivery_due, DueKind::Delivery)];
    if record.reply_due_ms > 0 && role == pb::RecipientRole::Action {
        due.push(entry(record.reply_due_ms, DueKind::Reply));
    }
    due
}

async fn route_receipt(
    router: &Arc<Router>,
    verified: &VerifiedEnvelope,
    receipt: &pb::Receipt,
    body: Bytes,
    now: Time,
) -> Result<Kind, Failure> {
    let id = verified.id();
    let letter_id = receipt.letter_id.as_str();
    let _guard = router.lock(letter_id).await;
    let sender = verified.signer.as_str();
    let record = match router.store.envelope(id)? {
        Some(existing) if existing.digest[..] == verified.digest => existing,
        Some(_) => {
            return Err(refused(
                ReasonCode::ReplayConflict,
                format!("envelope id {id} was already used for other content"),
            ));
        }
        None => {
            let letter =
                router.store.envelope(letter_id)?.filter(|letter| letter.kind().is_letter()).ok_or_else(
                    || refused(ReasonCode::UnknownEnvelope, format!("no letter {letter_id} on the platform")),
                )?;
            if letter.digest[..] != receipt.letter_digest[..] {
                return Err(refused(
                    ReasonCode::ReceiptDigestMismatch,
                    format!("the receipt's digest is not that of letter {letter_id}"),
                ));
            }
            if !letter.recipients.iter().any(|r| r == sender) {
                return Err(refused(
                    ReasonCode::NotARecipient,
                    format!("letter {letter_id} was not addressed to {sender}"),
                ));
            }
            let addressee = verified.header.recipients.first().map(|r| r.agency.as_str()).unwrap_or_default();
            if addressee != letter.sender {
                return Err(refused(
                    ReasonCode::InvalidReceipt,
                    format!(
                        "a receipt for {letter_id} goes to its sender {}, not {addressee}",
                        letter.sender
                    ),
                ));
            }
            let status = receipt
                .status
                .as_ref()
                .ok_or_else(|| refused(ReasonCode::InvalidReceipt, "the receipt has no status"))?;
            let (status, detail) = tracking::receipt_status(status);
            let mut row = router.store.tracking_row(letter_id, sender)?.ok_or_else(|| {
                Failure::Transient(format!("tracking row of {letter_id} for {sender} is missing"))
            })?;
            let now_ms = now.timestamp_millis();
            tracking::apply(&mut row, status, now_ms, id, &detail).map_err(|e| {
                refused(ReasonCode::InvalidTransition, format!("letter {letter_id} at {sender}: {e}"))
            })?;
            let mut batch = Batch::default();
            // Any receipt shows the letter reached the recipient's system.
            if let Some(queued) = row.transitions.iter().find(|t| t.status() == Status::Queued) {
                batch.delivered(sender, queued.at_ms, letter_id);
            }
            if status == Status::Registered && !row.incoming_number.is_empty() {
                batch.index_number(&row.incoming_number, letter_id);
            }
            let earlier =
                |wanted: Status| row.transitions.iter().find(|t| t.status() == wanted).map(|t| t.at_ms);
            match status {
                Status::Delivered => {
                    if let Some(queued) = earlier(Status::Queued) {
                        router.metrics.queued_to_delivered(seconds_between(queued, now_ms));
                    }
                }
                Status::Registered => {
                    if let Some(delivered) = earlier(Status::Delivered) {
                        router.metrics.delivered_to_registered(seconds_between(delivered, now_ms));
                    }
                }
                _ => {}
            }
            router.metrics.receipt(sender, status.as_str());
            for due in agenda(router, letter_id, &letter, sender, pb::RecipientRole::Action) {
                // Any receipt shows the letter was delivered; only these end the wait
                // for an answer.
                let satisfied = match due.kind {
                    DueKind::Delivery => true,
                    DueKind::Reply => matches!(status, Status::Answered | Status::Closed | Status::Refused),
                };
                if satisfied {
                    batch.unschedule(&due);
                }
            }
            batch.put_tracking(&row);
            let receipt_record = EnvelopeRecord {
                envelope: body.clone(),
                digest: verified.digest.to_vec(),
                sender: sender.to_owned(),
                kind: Kind::Receipt as i32,
                recipients: vec![letter.sender.clone()],
                accepted_at_ms: now_ms,
                thread_id: verified.header.thread_id.clone(),
                about: letter_id.to_owned(),
                created_at_ms: millis(verified.header.created_at.as_ref()),
                ..EnvelopeRecord::default()
            };
            let detail = format!("{letter_id} {} {detail}", status.as_str());
            let event = event("receipt", id, sender, detail.trim().to_owned(), now_ms);
            batch.put_envelope_with_event(id, receipt_record.clone(), event);
            let sequences = router.store.commit(batch)?;
            EnvelopeRecord { audit_sequence: sequences.first().copied().unwrap_or(0), ..receipt_record }
        }
    };
    finish_receipt(router, id, record).await
}

/// Forwards an accepted receipt to the letter's sender if that was not confirmed yet.
/// The caller holds the letter's lock.
async fn finish_receipt(router: &Arc<Router>, id: &str, record: EnvelopeRecord) -> Result<Kind, Failure> {
    if !record.completed {
        let to = record.recipients.first().map_or("", String::as_str);
        let properties = delivery_properties(id, &record.sender, Kind::Receipt);
        deliver(router, to, record.envelope.clone(), properties).await.map_err(publish_failure)?;
        let mut batch = Batch::default();
        batch.mark_completed(id);
        router.store.commit(batch)?;
    }
    // The tracking update and the archive become durable before the ack. (Forwarded
    // first: after a crash in between, the redelivery forwards the receipt once more,
    // which the letter's sender dedupes by envelope id.)
    router.store.flush().await?;
    Ok(Kind::Receipt)
}

fn seconds_between(from_ms: i64, to_ms: i64) -> f64 {
    (to_ms - from_ms) as f64 / 1000.0
}

pub(crate) fn event(
    kind: &'static str,
    envelope_id: &str,
    agency: &str,
    detail: String,
    at_ms: i64,
) -> NewEvent {
    NewEvent { kind, envelope_id: envelope_id.to_owned(), agency: agency.to_owned(), detail, at_ms }
}

fn delivery_properties(id: &str, origin: &str, kind: Kind) -> mirsal_bus::lapin::BasicProperties {
    delivery_properties_named(id, origin, kind.as_str())
}

fn delivery_properties_named(id: &str, origin: &str, kind: &str) -> mirsal_bus::lapin::BasicProperties {
    let properties = headers::envelope_properties(id);
    let properties = headers::with_header(properties, headers::ORIGIN, origin);
    let properties = headers::with_header(properties, headers::KIND, kind);
    headers::with_header(properties, headers::TRACE_ID, id)
}

/// Publishes `payload` to agency `to`'s inbox, confirmed.
///
/// # Errors
/// The publish failed (a nack, no such inbox, the broker away for too long).
async fn deliver(
    router: &Router,
    to: &str,
    payload: Bytes,
    properties: mirsal_bus::lapin::BasicProperties,
) -> Result<(), PublishError> {
    let message = Outgoing {
        exchange: topology::DELIVER_EXCHANGE.to_owned(),
        routing_key: to.to_owned(),
        payload,
        properties,
        mandatory: true,
    };
    router.publisher.publish_reliably(&message, PUBLISH_PATIENCE).await
}

/// Publishes `body`, a copy that died in agency `to`'s inbox, to that inbox again, with
/// the headers the router gave it the first time.
///
/// # Errors
/// As [`deliver`].
pub(crate) async fn redeliver(
    router: &Router,
    to: &str,
    body: Bytes,
    id: &str,
    origin: &str,
    kind: &str,
) -> Result<(), PublishError> {
    deliver(router, to, body, delivery_properties_named(id, origin, kind)).await
}

pub(crate) async fn publish_notice(
    router: &Router,
    to: &str,
    notice: &crate::notices::SignedNotice,
) -> Result<(), PublishError> {
    let properties = delivery_properties(&notice.id, mirsal_envelope::PLATFORM_CODE, Kind::Notice);
    deliver(router, to, notice.bytes.clone(), properties).await
}

/// The envelope id and content digest of bytes that may not verify, for notices and
/// logs only: never trusted for anything else.
pub(crate) fn peek(body: &[u8]) -> Option<(String, [u8; 32])> {
    let envelope = pb::Envelope::decode(body).ok()?;
    let content = pb::SignedContent::decode(envelope.signed_content.clone()).ok()?;
    let id = content.header?.envelope_id;
    mirsal_envelope::validate::check_envelope_id("id", &id).ok()?;
    Some((id, mirsal_envelope::sha256(&envelope.signed_content)))
}

/// The refusal path: notice to the publishing agency, audit event, dead-letter copy.
async fn refuse(router: &Router, body: &Bytes, user: Option<&str>, refusal: &Refusal) -> Result<(), String> {
    let now = Utc::now();
    let about = peek(body);
    let about_ref = about.as_ref().map(|(id, digest)| (id.as_str(), *digest));
    let directory = router.directory();
    let notify = user
        .filter(|u| directory.get(u).is_some_and(|a| a.status != crate::directory::AgencyStatus::Removed));
    if let Some(agency) = notify {
        let notice = router
            .notary
            .rejected(agency, about_ref, refusal.reason, &refusal.text, now)
            .map_err(|e| e.to_string())?;
        match publish_notice(router, agency, &notice).await {
            Ok(()) => {}
            // An agency without an inbox cannot be told; the dead letter still records it.
            Err(PublishError::Returned { .. }) => {
                tracing::warn!(%agency, "no inbox to send the rejected notice to")
            }
            Err(error) => return Err(error.to_string()),
        }
    }
    let id = about.as_ref().map(|(id, _)| id.clone()).unwrap_or_default();
    let detail = format!("{} {}: {}", refusal.reason as i32, refusal.reason.as_str_name(), refusal.text);
    let mut batch = Batch::default();
    batch.event(event("rejected", &id, user.unwrap_or(""), detail, now.timestamp_millis()));
    router.store.commit(batch).map_err(|e| e.to_string())?;
    router.store.flush().await.map_err(|e| e.to_string())?;

    let mut properties = headers::envelope_properties(&id);
    for (name, value) in [
        (headers::REASON_CODE, (refusal.reason as i32).to_string()),
        (headers::REASON, format!("{}: {}", refusal.reason.as_str_name(), refusal.text)),
        (headers::ORIGIN, user.unwrap_or("").to_owned()),
        (headers::QUEUE, topology::INGRESS_QUEUE.to_owned()),
    ] {
        properties = headers::with_header(properties, name, &value);
    }
    let dead_letter = Outgoing {
        exchange: topology::DEAD_LETTER_EXCHANGE.to_owned(),
        routing_key: topology::INGRESS_QUEUE.to_owned(),
        payload: body.clone(),
        properties,
        mandatory: true,
    };
    router.publisher.publish_reliably(&dead_letter, PUBLISH_PATIENCE).await.map_err(|e| e.to_string())
}

/// Runs a dead letter through the pipeline again as if `origin` had just published it;
/// see [`crate::deadletters`]. The caller fills in the dead letter's id.
pub(crate) async fn replay(
    router: &Arc<Router>,
    body: Bytes,
    origin: Option<&str>,
) -> crate::deadletters::Replayed {
    let about = peek(&body).map(|(id, _)| id).unwrap_or_default();
    let replayed = |outcome, reason_code, detail| crate::deadletters::Replayed {
        id: String::new(),
        outcome,
        reason_code,
        detail,
    };
    match process(router, body.clone(), origin, Arrival::Replayed).await {
        Ok(kind) => {
            router.metrics.accepted(kind, origin.unwrap_or_default());
            let recorded =
                record_event(router, "dead-letter-replayed", &about, origin.unwrap_or(""), "accepted".into())
                    .await;
            replayed("accepted", None, recorded.err())
        }
        Err(Failure::Refused(refusal)) => match refuse(router, &body, origin, &refusal).await {
            Ok(()) => {
                router.metrics.rejected(refusal.reason);
                router.metrics.dead_lettered(refusal.reason);
                replayed("refused", Some(refusal.reason as i32), Some(refusal.text))
            }
            Err(error) => replayed("kept", Some(refusal.reason as i32), Some(error)),
        },
        Err(Failure::Transient(error)) => replayed("kept", None, Some(error)),
    }
}

/// Appends one audit event and makes it durable.
///
/// # Errors
/// Storage failures, as text.
pub(crate) async fn record_event(
    router: &Router,
    kind: &'static str,
    envelope_id: &str,
    agency: &str,
    detail: String,
) -> Result<(), String> {
    let mut batch = Batch::default();
    batch.event(event(kind, envelope_id, agency, detail, Utc::now().timestamp_millis()));
    router.store.commit(batch).map_err(|e| e.to_string())?;
    router.store.flush().await.map_err(|e| e.to_string())
}
