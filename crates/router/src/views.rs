//! What the operators' API shows: envelopes with their tracking, search results,
//! agencies with their queues, recent rejections and overdue letters. Sealed letters
//! show their header only; nothing here decrypts anything.

use std::collections::BTreeMap;

use chrono::{TimeZone as _, Utc};
use mirsal_envelope::{Time, pb, pb::signed_content::Body, time::from_timestamp};
use prost::Message as _;
use serde::{Deserialize, Serialize};

use crate::{
    Router,
    directory::{AgencyEntry, AgencyStatus},
    records::{EnvelopeRecord, Kind, Status, TrackingRecord},
    store::StoreError,
};

fn at(ms: i64) -> Option<Time> {
    (ms > 0).then(|| Time::from_timestamp_millis(ms)).flatten()
}

fn timestamp(ts: Option<&pbjson_types::Timestamp>) -> Option<Time> {
    ts.and_then(from_timestamp)
}

#[derive(Debug, Clone, Serialize)]
pub struct RecipientView {
    pub agency: String,
    pub role: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttachmentView {
    pub name: String,
    pub media_type: String,
    pub size: usize,
    pub main_document: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub status: String,
    pub at: Option<Time>,
    pub receipt_id: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrackingView {
    pub agency: String,
    pub status: String,
    pub incoming_number: String,
    pub delivery_overdue: bool,
    pub reply_overdue: bool,
    pub timeline: Vec<StepView>,
}

/// One archived envelope: its header, what the router may show of a plain letter, and
/// each recipient's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct EnvelopeView {
    pub id: String,
    pub kind: &'static str,
    pub sender: String,
    pub recipients: Vec<RecipientView>,
    pub classification: String,
    pub priority: String,
    pub created_at: Option<Time>,
    pub accepted_at: Option<Time>,
    pub audit_sequence: u64,
    /// Everything the router owes for it is done: a letter's accepted notice reached
    /// the sender's inbox, a receipt was forwarded to the letter's sender (confirmed by
    /// the broker).
    pub completed: bool,
    pub thread_id: String,
    pub in_reply_to: String,
    pub reply_due: Option<Time>,
    pub expires_at: Option<Time>,
    /// Plain letters only: a sealed letter's subject is not the router's to read.
    pub subject: Option<String>,
    pub outgoing_number: Option<String>,
    pub attachments: Vec<AttachmentView>,
    pub sealed: bool,
    /// For receipts: the letter they are about.
    pub about: Option<String>,
    pub digest: String,
    pub size: usize,
    pub tracking: Vec<TrackingView>,
}

fn tracking_view(row: &TrackingRecord) -> TrackingView {
    TrackingView {
        agency: row.recipient.clone(),
        status: row.status().as_str().to_owned(),
        incoming_number: row.incoming_number.clone(),
        delivery_overdue: row.delivery_overdue_notified,
        reply_overdue: row.reply_overdue_notified,
        timeline: row
            .transitions
            .iter()
            .map(|t| StepView {
                status: t.status().as_str().to_owned(),
                at: at(t.at_ms),
                receipt_id: t.receipt_id.clone(),
                detail: t.detail.clone(),
            })
            .collect(),
    }
}

fn role_name(role: pb::RecipientRole) -> String {
    match role {
        pb::RecipientRole::Action => "action",
        pb::RecipientRole::Copy => "copy",
        pb::RecipientRole::Information => "information",
        pb::RecipientRole::Unspecified => "unspecified",
    }
    .to_owned()
}

fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_lowercase()
}

/// The view of archived envelope `id`, or `None`.
///
/// # Errors
/// Storage failures.
pub(crate) fn envelope(router: &Router, id: &str) -> Result<Option<EnvelopeView>, StoreError> {
    let Some(record) = router.store.envelope(id)? else { return Ok(None) };
    let tracking = if record.kind().is_letter() { router.store.tracking(id)? } else { Vec::new() };
    Ok(Some(view(id, &record, &tracking)))
}

fn view(id: &str, record: &EnvelopeRecord, tracking: &[TrackingRecord]) -> EnvelopeView {
    let content = pb::Envelope::decode(record.envelope.clone())
        .ok()
        .and_then(|envelope| pb::SignedContent::decode(envelope.signed_content).ok())
        .unwrap_or_default();
    let header = content.header.unwrap_or_default();
    let (subject, outgoing_number, attachments) = match &content.body {
        Some(Body::Letter(letter)) => (
            Some(letter.subject.clone()),
            Some(letter.outgoing_number.clone()),
            letter
                .attachments
                .iter()
                .map(|a| AttachmentView {
                    name: a.name.clone(),
                    media_type: a.media_type.clone(),
                    size: a.content.len(),
                    main_document: a.main_document,
                })
                .collect(),
        ),
        _ => (None, None, Vec::new()),
    };
    EnvelopeView {
        id: id.to_owned(),
        kind: record.kind().as_str(),
        sender: record.sender.clone(),
        recipients: header
            .recipients
            .iter()
            .map(|r| RecipientView { agency: r.agency.clone(), role: role_name(r.role()) })
            .collect(),
        classification: short(header.classification().as_str_name(), "CLASSIFICATION_"),
        priority: short(header.priority().as_str_name(), "PRIORITY_"),
        created_at: timestamp(header.created_at.as_ref()),
        accepted_at: at(record.accepted_at_ms),
        audit_sequence: record.audit_sequence,
        completed: record.completed,
        thread_id: header.thread_id.clone(),
        in_reply_to: header.in_reply_to.clone(),
        reply_due: timestamp(header.reply_due.as_ref()),
        expires_at: timestamp(header.expires_at.as_ref()),
        subject,
        outgoing_number,
        attachments,
        sealed: record.kind() == Kind::Sealed,
        about: (!record.about.is_empty()).then(|| record.about.clone()),
        digest: hex::encode(&record.digest),
        size: record.envelope.len(),
        tracking: tracking.iter().map(tracking_view).collect(),
    }
}

/// Search criteria; every one is optional and they combine with "and".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// An agency that sent or received the letter.
    pub agency: Option<String>,
    /// With `agency`: `sent`, `received` or `any` (default).
    pub direction: Option<String>,
    pub thread: Option<String>,
    /// Accepted at or after (RFC 3339).
    pub from: Option<Time>,
    /// Accepted before (RFC 3339).
    pub to: Option<Time>,
    pub outgoing_number: Option<String>,
    pub incoming_number: Option<String>,
    /// Some recipient's status (`queued`, `delivered`, `registered`, …).
    pub status: Option<String>,
    /// `normal`, `urgent` or `immediate`.
    pub priority: Option<String>,
    /// Only letters reported overdue (true) or never reported (false).
    pub overdue: Option<bool>,
    /// Results per page (default 50, at most 500).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub agency: String,
    pub status: String,
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct LetterSummary {
    pub id: String,
    pub kind: &'static str,
    pub sender: String,
    pub recipients: Vec<String>,
    pub subject: Option<String>,
    pub classification: String,
    pub priority: String,
    pub accepted_at: Option<Time>,
    pub statuses: Vec<StatusView>,
    pub overdue: bool,
}

/// A page of results.
#[derive(Debug, Clone, Serialize)]
pub struct SearchPage {
    pub items: Vec<LetterSummary>,
    /// Pass it as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// A search request that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    let (at, id) = cursor.split_once('_')?;
    Some((at.parse().ok()?, id.to_owned()))
}

/// Runs `query`.
///
/// # Errors
/// Bad criteria ([`SearchError::Bad`]) or storage failures.
pub(crate) fn search(router: &Router, query: &SearchQuery) -> Result<SearchPage, SearchError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let from_ms = query.from.map_or(0, |t| t.timestamp_millis());
    let to_ms = query.to.map_or(i64::MAX / 2, |t| t.timestamp_millis());
    let cursor = match &query.cursor {
        Some(text) => Some(
            parse_cursor(text)
                .ok_or_else(|| SearchError::Bad(format!("cursor {text:?} is not one this API returned")))?,
        ),
        None => None,
    };
    let direction = match query.direction.as_deref() {
        None | Some("any") => None,
        Some("sent") => Some(true),
        Some("received") => Some(false),
        Some(other) => {
            return Err(SearchError::Bad(format!("direction {other:?}: expected sent, received or any")));
        }
    };
    if direction.is_some() && query.agency.is_none() {
        return Err(SearchError::Bad("direction needs an agency".into()));
    }
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(
            [
                Status::Accepted,
                Status::Queued,
                Status::Delivered,
                Status::Registered,
                Status::Referred,
                Status::Answered,
                Status::Closed,
                Status::Refused,
            ]
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| SearchError::Bad(format!("status {text:?} is not a tracking status")))?,
        ),
    };
    let priority = match query.priority.as_deref() {
        None => None,
        Some(text) => Some(
            pb::Priority::from_str_name(&format!("PRIORITY_{}", text.to_uppercase()))
                .filter(|p| *p != pb::Priority::Unspecified)
                .ok_or_else(|| {
                    SearchError::Bad(format!("priority {text:?}: expected normal, urgent or immediate"))
                })?,
        ),
    };

    // Candidates, newest first, from the most selective index.
    let candidates: Box<dyn Iterator<Item = Result<(i64, String), StoreError>> + '_> =
        if let Some(thread) = &query.thread {
            Box::new(timed(router, router.store.thread(thread)?))
        } else if let Some(number) = query.outgoing_number.as_ref().or(query.incoming_number.as_ref()) {
            Box::new(timed(router, router.store.letters_numbered(number)?))
        } else if let Some(agency) = &query.agency {
            Box::new(
                router
                    .store
                    .letters_of(agency, from_ms, to_ms, cursor.clone())
                    .filter(move |item| match (item, direction) {
                        (Ok((_, _, sent)), Some(wanted)) => *sent == wanted,
                        _ => true,
                    })
                    .map(|item| item.map(|(at, id, _)| (at, id))),
            )
        } else {
            Box::new(router.store.letters_by_time(from_ms, to_ms, cursor.clone()))
        };

    let mut items = Vec::new();
    let mut next_cursor = None;
    for candidate in candidates {
        let (accepted_ms, id) = candidate?;
        if accepted_ms < from_ms || accepted_ms >= to_ms {
            continue;
        }
        if let Some((cursor_at, cursor_id)) = &cursor
            && (accepted_ms, id.as_str()) >= (*cursor_at, cursor_id.as_str())
        {
            continue;
        }
        let Some(record) = router.store.envelope(&id)? else { continue };
        if !record.kind().is_letter() {
            continue;
        }
        let rows = router.store.tracking(&id)?;
        if let Some(agency) = &query.agency {
            let sent = record.sender == *agency;
            let received = record.recipients.iter().any(|r| r == agency);
            let wanted = match direction {
                Some(true) => sent,
                Some(false) => received,
                None => sent || received,
            };
            if !wanted {
                continue;
            }
        }
        if let Some(number) = &query.outgoing_number
            && record.outgoing_number != *number
        {
            continue;
        }
        if let Some(number) = &query.incoming_number
            && !rows.iter().any(|r| r.incoming_number == *number)
        {
            continue;
        }
        if status.is_some_and(|wanted| !rows.iter().any(|r| r.status() == wanted)) {
            continue;
        }
        if priority.is_some_and(|wanted| record.priority != wanted as i32) {
            continue;
        }
        let overdue = rows.iter().any(|r| r.delivery_overdue_notified || r.reply_overdue_notified);
        if query.overdue.is_some_and(|wanted| wanted != overdue) {
            continue;
        }
        if items.len() == limit {
            next_cursor = items.last().map(|last: &LetterSummary| {
                format!("{}_{}", last.accepted_at.map_or(0, |t| t.timestamp_millis()), last.id)
            });
            break;
        }
        let full = view(&id, &record, &rows);
        items.push(LetterSummary {
            id,
            kind: full.kind,
            sender: full.sender,
            recipients: full.recipients.into_iter().map(|r| r.agency).collect(),
            subject: full.subject,
            classification: full.classification,
            priority: full.priority,
            accepted_at: full.accepted_at,
            statuses: rows
                .iter()
                .map(|r| StatusView { agency: r.recipient.clone(), status: r.status().as_str().to_owned() })
                .collect(),
            overdue,
        });
    }
    Ok(SearchPage { items, next_cursor })
}

/// Ids from an unordered index, with their acceptance times, newest first.
fn timed(router: &Router, ids: Vec<String>) -> impl Iterator<Item = Result<(i64, String), StoreError>> {
    let mut timed: Vec<(i64, String)> = ids
        .into_iter()
        .filter_map(|id| match router.store.envelope(&id) {
            Ok(Some(record)) => Some((record.accepted_at_ms, id)),
            _ => None,
        })
        .collect();
    timed.sort_by(|a, b| b.cmp(a));
    timed.into_iter().map(Ok)
}

/// A queue as the management API last reported it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueView {
    pub name: String,
    pub messages: Option<u64>,
    pub ready: Option<u64>,
    pub unacknowledged: Option<u64>,
    pub consumers: Option<u64>,
}

/// One agency with its health.
#[derive(Debug, Clone, Serialize)]
pub struct AgencyView {
    pub code: String,
    pub name_en: String,
    pub name_ar: String,
    pub status: AgencyStatus,
    pub clearance: crate::directory::Clearance,
    /// The inbox queue; `None` figures when the management API is not configured or
    /// did not answer.
    pub inbox: QueueView,
    /// Letters waiting for this agency's `delivered` receipt.
    pub undelivered: usize,
    /// How long the oldest of them has been waiting, in seconds.
    pub oldest_pending_seconds: Option<i64>,
    /// Of those, how many are past their priority's delivery SLA.
    pub overdue: usize,
    pub sent_today: usize,
    pub received_today: usize,
    /// `ok`, `suspended`, `removed`, `no-consumer`, `backlog` or `overdue`: what the
    /// dashboard colours.
    pub health: &'static str,
}

/// A backlog the dashboard flags: this many letters in the inbox…
const BACKLOG_MESSAGES: u64 = 1000;
/// …or the oldest undelivered one waiting this long.
const BACKLOG_AGE_SECONDS: i64 = 15 * 60;

/// Every agency of the directory with its queue figures and tracking counts.
///
/// # Errors
/// Storage failures.
pub(crate) fn agencies(router: &Router) -> Result<Vec<AgencyView>, StoreError> {
    let directory = router.directory();
    let queues = router.queues();
    let now = Utc::now();
    let midnight =
        Utc.from_utc_datetime(&now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default()).timestamp_millis();
    let sla = router.config.overdue.delivery_sla;
    directory
        .agencies()
        .map(|agency: &AgencyEntry| {
            let queue_name = mirsal_bus::topology::inbox_queue(&agency.code);
            let inbox = queues
                .get(&queue_name)
                .cloned()
                .unwrap_or(QueueView { name: queue_name, ..QueueView::default() });
            let (undelivered, oldest) = router.store.undelivered_of(&agency.code)?;
            let oldest_pending_seconds = oldest.map(|ms| (now.timestamp_millis() - ms) / 1000);
            let mut overdue = 0;
            for entry in router.store.undelivered_entries(&agency.code) {
                let (queued_ms, priority) = entry?;
                let sla = match pb::Priority::try_from(priority).unwrap_or(pb::Priority::Normal) {
                    pb::Priority::Immediate => sla.immediate,
                    pb::Priority::Urgent => sla.urgent,
                    pb::Priority::Normal | pb::Priority::Unspecified => sla.normal,
                };
                let waited = now.timestamp_millis() - queued_ms;
                if waited > i64::try_from(sla.as_millis()).unwrap_or(i64::MAX) {
                    overdue += 1;
                }
            }
            let mut sent_today = 0;
            let mut received_today = 0;
            for item in router.store.letters_of(&agency.code, midnight, i64::MAX / 2, None) {
                if item?.2 {
                    sent_today += 1;
                } else {
                    received_today += 1;
                }
            }
            let health = match agency.status {
                AgencyStatus::Suspended => "suspended",
                AgencyStatus::Removed => "removed",
                AgencyStatus::Active if inbox.consumers == Some(0) => "no-consumer",
                AgencyStatus::Active if overdue > 0 => "overdue",
                AgencyStatus::Active
                    if inbox.messages.is_some_and(|m| m >= BACKLOG_MESSAGES)
                        || oldest_pending_seconds.is_some_and(|s| s >= BACKLOG_AGE_SECONDS) =>
                {
                    "backlog"
                }
                AgencyStatus::Active => "ok",
            };
            Ok(AgencyView {
                code: agency.code.clone(),
                name_en: agency.name_en.clone(),
                name_ar: agency.name_ar.clone(),
                status: agency.status,
                clearance: agency.max_classification,
                inbox,
                undelivered,
                oldest_pending_seconds,
                overdue,
                sent_today,
                received_today,
                health,
            })
        })
        .collect()
}

/// One event from the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub sequence: u64,
    pub at: Option<Time>,
    pub kind: String,
    pub envelope_id: String,
    pub agency: String,
    pub detail: String,
    /// Rejections: the reason code.
    pub reason_code: Option<i32>,
}

/// The newest `limit` audit events whose kind starts with `prefix`.
///
/// # Errors
/// Storage failures.
pub(crate) fn recent_events(
    router: &Router,
    prefix: &str,
    limit: usize,
) -> Result<Vec<EventView>, StoreError> {
    let mut events = Vec::new();
    for event in router.store.audit_events_rev() {
        let event = event?;
        if !event.kind.starts_with(prefix) {
            continue;
        }
        let reason_code = (event.kind == "rejected")
            .then(|| event.detail.split(' ').next().and_then(|code| code.parse().ok()))
            .flatten();
        events.push(EventView {
            sequence: event.sequence,
            at: at(event.at_ms),
            kind: event.kind,
            envelope_id: event.envelope_id,
            agency: event.agency,
            detail: event.detail,
            reason_code,
        });
        if events.len() == limit {
            break;
        }
    }
    Ok(events)
}

/// The dashboard's live figures.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub at: Time,
    pub accepted_letters: i64,
    pub rejected: i64,
    pub receipts: i64,
    pub in_flight: i64,
    /// Submit → queued over the last minute, seconds.
    pub latency_p50: Option<f64>,
    pub latency_p99: Option<f64>,
    pub latency_samples: usize,
    pub ready: bool,
    /// Dead letters the router keeps (moved out of `mirsal.dead-letters` as they arrive).
    pub dead_letters: usize,
    pub queues: BTreeMap<String, Option<u64>>,
}

/// The figures of [`Summary`].
pub(crate) fn summary(router: &Router) -> Summary {
    let (accepted_letters, rejected, receipts) = router.metrics.totals();
    let (latency_p50, latency_p99, latency_samples) = router.metrics.recent_latency(60_000);
    let queues = router.queues().into_iter().map(|(name, q)| (name, q.messages)).collect();
    Summary {
        at: Utc::now(),
        accepted_letters,
        rejected,
        receipts,
        in_flight: router.metrics.in_flight(),
        latency_p50,
        latency_p99,
        latency_samples,
        ready: router.is_ready(),
        dead_letters: router.dead_letters.count(),
        queues,
    }
}
