//! The dead letters, for the platform team: kept, listed, inspected, replayed, discarded.
//!
//! `mirsal.dead-letters` receives what the router refused (a copy with the reason code in
//! its headers) and what a queue gave up on after its delivery limit (with RabbitMQ's
//! `x-death` headers). The router moves each one into its store as it arrives
//! ([`keep`]): written and flushed first, acknowledged after, so a dead letter is never
//! lost. Looking at them then never touches the broker. (Reading a queue means taking
//! its messages and handing them back, which a quorum queue counts as a delivery each
//! time: from RabbitMQ 4.0 it drops a message past 20 of them by default, and the
//! messages are away from every other reader meanwhile.)
//!
//! A dead letter is named by the first 16 hex digits of the SHA-256 of its body; the same
//! bytes dying again update the one record (its latest reason, how often it died).
//!
//! Replaying a message that died on its way in (the router refused it, or `mirsal.ingress`
//! gave up on it) runs it through the pipeline again in this process, as if it had just
//! arrived from the agency that published it (its AMQP `user_id`, or the origin the router
//! recorded), and removes it from the dead letters once it is accepted (fanned out,
//! exactly once thanks to dedupe). Refused again, it stays: the new refusal comes back
//! through the dead-letter queue and updates it. A copy that died in an agency's inbox
//! (its adapter rejected it, or it passed the inbox's delivery limit) was accepted long
//! ago: replaying it publishes it to that inbox again (`redelivered`; the adapter dedupes
//! by envelope id) and then removes it. A transient failure leaves it where it is.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use mirsal_bus::{
    Backoff, Incoming,
    headers::{self, header_str},
    lapin::types::{AMQPValue, FieldTable},
    topology,
};
use serde::Serialize;
use serde_json::Value;

use crate::{
    Router, pipeline,
    records::DeadLetterRecord,
    store::{Batch, Store, StoreError},
};

/// How many dead letters the broker hands the router at once.
const PREFETCH: u16 = 16;

/// The dead letters' lock and count, beside the records in the store.
#[derive(Debug)]
pub(crate) struct DeadLetters {
    /// Held while a dead letter is written, replayed or discarded.
    lock: tokio::sync::Mutex<()>,
    count: AtomicUsize,
}

impl DeadLetters {
    /// Counts the dead letters kept in `store`.
    ///
    /// # Errors
    /// sled failures.
    pub(crate) fn open(store: &Store) -> Result<Self, StoreError> {
        let count = store.dead_letter_ids().try_fold(0, |n, id| id.map(|_| n + 1))?;
        Ok(Self { lock: tokio::sync::Mutex::new(()), count: AtomicUsize::new(count) })
    }

    /// How many dead letters are kept.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

/// One dead letter as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: String,
    pub message_id: Option<String>,
    pub reason_code: Option<i32>,
    pub reason: Option<String>,
    /// The agency that published it (as RabbitMQ authenticated it).
    pub origin: Option<String>,
    /// The queue it died in.
    pub queue: Option<String>,
    /// `refused` (by the router), or RabbitMQ's reason: `rejected`, `delivery_limit`, …
    pub death: String,
    pub size: usize,
    /// When it first reached the dead letters.
    pub received_at: Option<DateTime<Utc>>,
    /// When it reached them last.
    pub last_died_at: Option<DateTime<Utc>>,
    /// How many times these bytes reached the dead letters.
    pub deaths: u32,
}

impl From<&DeadLetterRecord> for DeadLetter {
    fn from(record: &DeadLetterRecord) -> Self {
        Self {
            id: record.id.clone(),
            message_id: record.message_id.clone(),
            reason_code: record.reason_code,
            reason: record.reason.clone(),
            origin: record.origin.clone(),
            queue: record.queue.clone(),
            death: record.death.clone(),
            size: record.body.len(),
            received_at: DateTime::from_timestamp_millis(record.received_at_ms),
            last_died_at: DateTime::from_timestamp_millis(record.last_died_at_ms),
            deaths: record.deaths,
        }
    }
}

/// A dead letter with its envelope, for inspection.
#[derive(Debug, Clone, Serialize)]
pub struct Inspected {
    #[serde(flatten)]
    pub dead_letter: DeadLetter,
    /// The envelope's JSON view when the body is one, without what the letter says (see
    /// [`without_content`]; sealed letters stay sealed).
    pub envelope: Option<Value>,
}

/// `view` with a plain letter's text and attachment contents replaced by their sizes:
/// the platform team sees who sent what to whom and why it died, as in the envelope
/// view, never the correspondence itself.
fn without_content(mut view: Value) -> Value {
    let Some(letter) = view.pointer_mut("/content/letter").and_then(Value::as_object_mut) else {
        return view;
    };
    if let Some(body) = letter.get_mut("body") {
        let characters = body.as_str().map_or(0, |text| text.chars().count());
        *body = Value::String(format!("({characters} characters withheld)"));
    }
    for attachment in letter.get_mut("attachments").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(content) = attachment.get_mut("content") {
            // Base64 in the JSON view: three bytes for every four characters.
            let bytes = content.as_str().map_or(0, |b64| b64.trim_end_matches('=').len() * 3 / 4);
            *content = Value::String(format!("({bytes} bytes withheld)"));
        }
    }
    view
}

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub id: String,
    /// `accepted`, `refused` (with the new reason), `redelivered` (a copy put back into
    /// the inbox it died in) or `kept` (a transient failure).
    pub outcome: &'static str,
    pub reason_code: Option<i32>,
    pub detail: Option<String>,
}

/// Dead-letter operations that failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("no dead letter {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn id_of(body: &[u8]) -> String {
    hex::encode(&mirsal_envelope::sha256(body)[..8])
}

fn long_string(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(value) => Some(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        _ => None,
    }
}

/// The record for dead letter `incoming`, which died at `now_ms`.
fn record_of(incoming: &Incoming, now_ms: i64) -> DeadLetterRecord {
    let properties = incoming.properties();
    let table = properties.headers().as_ref();
    let text = |name| header_str(table, name).map(str::to_owned);
    let reason_code = text(headers::REASON_CODE);
    let death = if reason_code.is_some() {
        "refused".to_owned()
    } else {
        long_string(table, "x-first-death-reason").unwrap_or_else(|| "unknown".to_owned())
    };
    let body = bytes::Bytes::copy_from_slice(incoming.body());
    DeadLetterRecord {
        id: id_of(&body),
        message_id: incoming.message_id().map(str::to_owned).filter(|m| !m.is_empty()),
        reason_code: reason_code.and_then(|c| c.parse().ok()),
        reason: text(headers::REASON),
        origin: incoming
            .user_id()
            .map(str::to_owned)
            .or_else(|| text(headers::ORIGIN))
            .filter(|o| !o.is_empty()),
        queue: text(headers::QUEUE).or_else(|| long_string(table, "x-first-death-queue")),
        death,
        received_at_ms: now_ms,
        last_died_at_ms: now_ms,
        deaths: 1,
        kind: text(headers::KIND),
        body,
    }
}

/// Moves every message of `mirsal.dead-letters` into the store, for as long as the
/// router runs.
pub(crate) async fn keep(router: Arc<Router>) {
    let mut deliveries =
        router.bus.consume(topology::DEAD_LETTER_QUEUE, PREFETCH, "mirsal-router-dead-letters");
    while let Some(incoming) = deliveries.next().await {
        let record = record_of(&incoming, Utc::now().timestamp_millis());
        let id = record.id.clone();
        // Never handed back on a storage failure (that would count as a delivery):
        // tried again here until it is kept, or until the router stops and the broker
        // gives it to the next one.
        let mut attempt = 0;
        while let Err(error) = store(&router, record.clone(), incoming.redelivered()).await {
            let delay = Backoff::default().delay(attempt);
            tracing::warn!(%error, dead_letter = %id, retry_in_ms = delay.as_millis() as u64, "could not keep a dead letter");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
        if let Err(error) = incoming.ack().await {
            // It comes again and updates the same record.
            tracing::debug!(%error, dead_letter = %id, "could not acknowledge a kept dead letter");
        }
    }
}

/// Writes dead letter `record`, or updates the one with its id: a death counts once,
/// however often the broker delivers it (`redelivered`: it may have been kept already).
async fn store(router: &Router, mut record: DeadLetterRecord, redelivered: bool) -> Result<(), StoreError> {
    let dead_letters = &router.dead_letters;
    let _serial = dead_letters.lock.lock().await;
    let existing = router.store.dead_letter(&record.id)?;
    if let Some(existing) = &existing {
        record.received_at_ms = existing.received_at_ms;
        record.deaths = if redelivered { existing.deaths.max(1) } else { existing.deaths + 1 };
    }
    let mut batch = Batch::default();
    batch.put_dead_letter(&record);
    router.store.commit(batch)?;
    router.store.flush().await?;
    if existing.is_none() {
        let count = dead_letters.count.fetch_add(1, Ordering::Relaxed) + 1;
        router.metrics.dead_letters_kept(count);
        tracing::info!(dead_letter = %record.id, death = %record.death, reason_code = ?record.reason_code, "dead letter kept");
    }
    Ok(())
}

/// Removes dead letter `record` and appends audit event `event` with it.
async fn remove(
    router: &Router,
    record: &DeadLetterRecord,
    event: Option<crate::store::NewEvent>,
) -> Result<(), StoreError> {
    let mut batch = Batch::default();
    batch.remove_dead_letter(record);
    if let Some(event) = event {
        batch.event(event);
    }
    router.store.commit(batch)?;
    router.store.flush().await?;
    let count = router.dead_letters.count.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
    router.metrics.dead_letters_kept(count);
    Ok(())
}

fn found(router: &Router, id: &str) -> Result<DeadLetterRecord, DeadLetterError> {
    router.store.dead_letter(id)?.ok_or_else(|| DeadLetterError::NotFound(id.to_owned()))
}

/// Up to `limit` dead letters, oldest first.
///
/// # Errors
/// Storage failures.
pub(crate) fn list(router: &Router, limit: usize) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let mut listed = Vec::new();
    for id in router.store.dead_letter_ids().take(limit) {
        // One replayed or discarded since the index was read is simply left out.
        if let Some(record) = router.store.dead_letter(&id?)? {
            listed.push(DeadLetter::from(&record));
        }
    }
    Ok(listed)
}

/// Dead letter `id` with its content.
///
/// # Errors
/// [`DeadLetterError::NotFound`], storage failures.
pub(crate) fn inspect(router: &Router, id: &str) -> Result<Inspected, DeadLetterError> {
    let record = found(router, id)?;
    let envelope = mirsal_envelope::json::envelope_view_bytes(&record.body).ok().map(without_content);
    Ok(Inspected { dead_letter: DeadLetter::from(&record), envelope })
}

/// Removes dead letter `id` for good (recorded in the audit log).
///
/// # Errors
/// [`DeadLetterError::NotFound`], storage failures.
pub(crate) async fn discard(router: &Router, id: &str) -> Result<DeadLetter, DeadLetterError> {
    let _serial = router.dead_letters.lock.lock().await;
    let record = found(router, id)?;
    let event = pipeline::event(
        "dead-letter-discarded",
        record.message_id.as_deref().unwrap_or(""),
        record.origin.as_deref().unwrap_or(""),
        format!("dead letter {id}"),
        Utc::now().timestamp_millis(),
    );
    remove(router, &record, Some(event)).await?;
    Ok(DeadLetter::from(&record))
}

/// Replays dead letter `id`, or every dead letter when `id` is `None`, at most
/// `per_second` a second.
///
/// # Errors
/// [`DeadLetterError::NotFound`] for an unknown `id`, storage failures.
pub(crate) async fn replay(
    router: &Arc<Router>,
    id: Option<&str>,
    per_second: u32,
) -> Result<Vec<Replayed>, DeadLetterError> {
    let Some(id) = id else {
        let pause = Duration::from_secs(1) / per_second.max(1);
        let ids = router.store.dead_letter_ids().collect::<Result<Vec<_>, _>>()?;
        let mut results = Vec::with_capacity(ids.len());
        for (index, id) in ids.iter().enumerate() {
            if index > 0 {
                tokio::time::sleep(pause).await;
            }
            match replay_one(router, id).await {
                Ok(replayed) => results.push(replayed),
                // Discarded (or replayed by another call) meanwhile.
                Err(DeadLetterError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        return Ok(results);
    };
    replay_one(router, id).await.map(|replayed| vec![replayed])
}

async fn replay_one(router: &Arc<Router>, id: &str) -> Result<Replayed, DeadLetterError> {
    let _serial = router.dead_letters.lock.lock().await;
    let record = found(router, id)?;
    if let Some(agency) = died_in_inbox(&record) {
        return redeliver(router, &record, agency).await;
    }
    let outcome = pipeline::replay(router, record.body.clone(), record.origin.as_deref()).await;
    if outcome.outcome == "accepted" {
        remove(router, &record, None).await?;
    }
    Ok(Replayed { id: id.to_owned(), ..outcome })
}

/// The agency whose inbox `record` died in, unless the router refused it.
fn died_in_inbox(record: &DeadLetterRecord) -> Option<&str> {
    if record.reason_code.is_some() {
        return None;
    }
    record.queue.as_deref()?.strip_prefix(topology::INBOX_PREFIX).filter(|code| !code.is_empty())
}

/// Publishes dead letter `record` to agency `agency`'s inbox again; removes it (with an
/// audit event) once the broker confirmed.
async fn redeliver(
    router: &Router,
    record: &DeadLetterRecord,
    agency: &str,
) -> Result<Replayed, DeadLetterError> {
    let message_id = record.message_id.as_deref().unwrap_or_default();
    let published = pipeline::redeliver(
        router,
        agency,
        record.body.clone(),
        message_id,
        record.origin.as_deref().unwrap_or_default(),
        record.kind.as_deref().unwrap_or("unknown"),
    )
    .await;
    let replayed = |outcome, detail| Replayed { id: record.id.clone(), outcome, reason_code: None, detail };
    if let Err(error) = published {
        return Ok(replayed(
            "kept",
            Some(format!("publishing to {}: {error}", topology::inbox_queue(agency))),
        ));
    }
    let event = pipeline::event(
        "dead-letter-redelivered",
        message_id,
        agency,
        format!("dead letter {} to {}", record.id, topology::inbox_queue(agency)),
        Utc::now().timestamp_millis(),
    );
    remove(router, record, Some(event)).await?;
    Ok(replayed("redelivered", None))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn the_inspected_view_withholds_what_a_plain_letter_says() {
        let view = json!({
            "content": {
                "header": { "envelopeId": "E", "subject": "بشأن الميزانية" },
                "letter": {
                    "subject": "بشأن الميزانية",
                    "body": "تحية طيبة",
                    "attachments": [
                        { "fileName": "a.pdf", "size": 5, "content": "aGVsbG8=" },
                        { "fileName": "b.txt", "content": "YWJj" },
                    ],
                },
            },
        });
        let shown = without_content(view);
        let letter = &shown["content"]["letter"];
        assert_eq!(letter["body"], "(9 characters withheld)");
        assert_eq!(letter["attachments"][0]["content"], "(5 bytes withheld)");
        assert_eq!(letter["attachments"][1]["content"], "(3 bytes withheld)");
        assert_eq!(letter["attachments"][0]["fileName"], "a.pdf", "the rest stays");
        assert_eq!(letter["subject"], "بشأن الميزانية");
        assert_eq!(shown["content"]["header"]["envelopeId"], "E");
    }

    #[test]
    fn a_view_without_a_plain_letter_is_unchanged() {
        let sealed =
            json!({ "content": { "header": { "envelopeId": "E" }, "sealed": { "ciphertext": "AAAA" } } });
        assert_eq!(without_content(sealed.clone()), sealed);
        assert_eq!(without_content(json!("garbage")), json!("garbage"));
    }

    #[tokio::test]
    async fn dead_letters_are_kept_updated_listed_oldest_first_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let record = |body: &'static [u8], at: i64| DeadLetterRecord {
            id: id_of(body),
            body: bytes::Bytes::from_static(body),
            death: "refused".into(),
            received_at_ms: at,
            last_died_at_ms: at,
            deaths: 1,
            ..DeadLetterRecord::default()
        };
        let (late, early) = (record(b"late", 2_000), record(b"early", 1_000));
        let mut batch = Batch::default();
        batch.put_dead_letter(&late);
        batch.put_dead_letter(&early);
        store.commit(batch).unwrap();
        let ids = || store.dead_letter_ids().collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(ids(), [early.id.clone(), late.id.clone()]);
        assert_eq!(DeadLetters::open(&store).unwrap().count(), 2);

        let again = DeadLetterRecord { last_died_at_ms: 3_000, deaths: 2, ..early.clone() };
        let mut batch = Batch::default();
        batch.put_dead_letter(&again);
        store.commit(batch).unwrap();
        assert_eq!(store.dead_letter(&early.id).unwrap(), Some(again.clone()));
        assert_eq!(ids(), [early.id.clone(), late.id.clone()], "an update keeps its place");

        let mut batch = Batch::default();
        batch.remove_dead_letter(&again);
        store.commit(batch).unwrap();
        assert_eq!(store.dead_letter(&early.id).unwrap(), None);
        assert_eq!(ids(), vec![late.id]);
        assert_eq!(DeadLetters::open(&store).unwrap().count(), 1);
    }
}
