//! The overdue checker: walks the agenda (`due` tree) and, for every letter whose
//! delivery SLA or `reply_due` has passed without the `delivered` (or `answered`)
//! receipt, sends the sender one signed `overdue` notice, records it in the audit log,
//! and marks the tracking row so the notice is never sent twice.

use std::sync::Arc;

use chrono::Utc;
use mirsal_envelope::{Time, pb};

use crate::{
    Router,
    pipeline::publish_notice,
    records::Status,
    store::{Batch, DueKind, NewEvent, StoreError},
};

/// Agenda entries handled per pass.
const BATCH: usize = 500;

/// One pass over everything due by now. Returns how many notices were sent.
///
/// # Errors
/// Storage or publishing failures; what was not handled stays on the agenda.
pub(crate) async fn check(router: &Arc<Router>) -> Result<usize, String> {
    let now = Utc::now();
    let due = router.store.due_before(now.timestamp_millis(), BATCH).map_err(|e| e.to_string())?;
    let mut sent = 0;
    for entry in due {
        let _guard = router.lock(&entry.letter_id).await;
        let mut batch = Batch::default();
        batch.unschedule(&entry);
        let row = router.store.tracking_row(&entry.letter_id, &entry.recipient).map_err(|e| e.to_string())?;
        let letter = router.store.envelope(&entry.letter_id).map_err(|e| e.to_string())?;
        if let (Some(mut row), Some(letter)) = (row, letter) {
            let status = row.status();
            let late = match entry.kind {
                DueKind::Delivery => {
                    !row.delivery_overdue_notified && matches!(status, Status::Accepted | Status::Queued)
                }
                DueKind::Reply => {
                    !row.reply_overdue_notified
                        && matches!(
                            status,
                            Status::Queued | Status::Delivered | Status::Registered | Status::Referred
                        )
                }
            };
            if late {
                let kind = match entry.kind {
                    DueKind::Delivery => pb::OverdueKind::Delivery,
                    DueKind::Reply => pb::OverdueKind::Reply,
                };
                let digest: [u8; 32] = letter.digest.as_slice().try_into().unwrap_or([0; 32]);
                let due = Time::from_timestamp_millis(entry.due_ms).unwrap_or(now);
                let notice = router
                    .notary
                    .overdue(&letter.sender, (&entry.letter_id, digest), kind, &entry.recipient, due, now)
                    .map_err(|e| e.to_string())?;
                publish_notice(router, &letter.sender, &notice).await.map_err(|e| e.to_string())?;
                match entry.kind {
                    DueKind::Delivery => row.delivery_overdue_notified = true,
                    DueKind::Reply => row.reply_overdue_notified = true,
                }
                batch.put_tracking(&row);
                let what = if entry.kind == DueKind::Delivery { "overdue-delivery" } else { "overdue-reply" };
                batch.event(NewEvent {
                    kind: what,
                    envelope_id: entry.letter_id.clone(),
                    agency: entry.recipient.clone(),
                    detail: format!("due {}", due.to_rfc3339()),
                    at_ms: now.timestamp_millis(),
                });
                router.metrics.overdue(if entry.kind == DueKind::Delivery { "delivery" } else { "reply" });
                sent += 1;
            }
        }
        router.store.commit(batch).map_err(|e: StoreError| e.to_string())?;
    }
    router.store.flush().await.map_err(|e| e.to_string())?;
    Ok(sent)
}
