//! The life of a letter at one recipient:
//! `accepted → queued → delivered → registered → referred* → answered → closed`, or
//! `refused` (by the recipient), `rejected`, `recalled`, `expired`.
//!
//! Receipts can be processed out of order (many are in flight at once), so a receipt
//! for an earlier step is recorded with its time but never moves the status back.
//! Terminal states accept nothing more.

use mirsal_envelope::pb::receipt::Status as ReceiptStatus;

use crate::records::{Status, TrackingRecord, Transition};

/// Position on the main line; terminal states have none.
fn rank(status: Status) -> Option<u8> {
    match status {
        Status::Unknown => Some(0),
        Status::Accepted => Some(1),
        Status::Queued => Some(2),
        Status::Delivered => Some(3),
        Status::Registered => Some(4),
        Status::Referred => Some(5),
        Status::Answered => Some(6),
        Status::Closed | Status::Rejected | Status::Refused | Status::Recalled | Status::Expired => None,
    }
}

/// A status that cannot follow the current one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{to} cannot follow {from}")]
pub struct InvalidTransition {
    pub from: &'static str,
    pub to: &'static str,
}

/// The tracking status a receipt reports, and what it says (incoming number, ...).
pub fn receipt_status(status: &ReceiptStatus) -> (Status, String) {
    match status {
        ReceiptStatus::Delivered(_) => (Status::Delivered, String::new()),
        ReceiptStatus::Registered(r) => {
            (Status::Registered, format!("{} {}", r.incoming_number, r.incoming_date).trim().to_owned())
        }
        ReceiptStatus::Referred(r) => {
            (Status::Referred, format!("{} {}", r.department, r.deadline).trim().to_owned())
        }
        ReceiptStatus::Answered(a) => (Status::Answered, a.reply_id.clone()),
        ReceiptStatus::Closed(c) => (Status::Closed, c.note.clone()),
        ReceiptStatus::Refused(r) => (Status::Refused, format!("{}: {}", r.reason().as_str_name(), r.text)),
    }
}

/// A new tracking row: accepted now.
pub fn new_row(letter_id: &str, sender: &str, recipient: &str, at_ms: i64) -> TrackingRecord {
    TrackingRecord {
        letter_id: letter_id.to_owned(),
        recipient: recipient.to_owned(),
        sender: sender.to_owned(),
        status: Status::Accepted as i32,
        transitions: vec![transition(Status::Accepted, at_ms, "", "")],
        ..TrackingRecord::default()
    }
}

fn transition(status: Status, at_ms: i64, receipt_id: &str, detail: &str) -> Transition {
    Transition { status: status as i32, at_ms, receipt_id: receipt_id.to_owned(), detail: detail.to_owned() }
}

/// Records `to` on `row` at `at_ms`.
///
/// # Errors
/// [`InvalidTransition`] when the row is in a terminal state, or `to` is a refusal after
/// the letter was registered.
pub fn apply(
    row: &mut TrackingRecord,
    to: Status,
    at_ms: i64,
    receipt_id: &str,
    detail: &str,
) -> Result<(), InvalidTransition> {
    let from = row.status();
    let invalid = || InvalidTransition { from: from.as_str(), to: to.as_str() };
    // Every receipt implies delivery, and receipts about one letter are processed
    // concurrently: a `delivered` that arrives after the final status is recorded, not
    // refused.
    if to == Status::Delivered && rank(from).is_none() && matches!(from, Status::Closed | Status::Refused) {
        row.transitions.push(transition(to, at_ms, receipt_id, detail));
        return Ok(());
    }
    let from_rank = rank(from).ok_or_else(invalid)?;
    match (to, rank(to)) {
        (Status::Refused, _) if from_rank >= 4 => return Err(invalid()),
        (Status::Refused | Status::Closed | Status::Recalled | Status::Expired | Status::Rejected, _) => {
            row.status = to as i32;
        }
        (_, Some(to_rank)) if to_rank > from_rank => row.status = to as i32,
        _ => {}
    }
    if to == Status::Registered && row.incoming_number.is_empty() {
        row.incoming_number = detail.split(' ').next().unwrap_or_default().to_owned();
    }
    row.transitions.push(transition(to, at_ms, receipt_id, detail));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> TrackingRecord {
        new_row("L", "A", "B", 1)
    }

    #[test]
    fn the_main_line_moves_forward() {
        let mut row = row();
        for (i, status) in [
            Status::Queued,
            Status::Delivered,
            Status::Registered,
            Status::Referred,
            Status::Answered,
            Status::Closed,
        ]
        .into_iter()
        .enumerate()
        {
            apply(&mut row, status, 10 + i as i64, "", "").unwrap();
            assert_eq!(row.status(), status);
        }
        assert_eq!(row.transitions.len(), 7);
        assert!(apply(&mut row, Status::Registered, 99, "", "").is_err(), "closed is terminal");
    }

    #[test]
    fn late_receipts_are_recorded_without_going_back() {
        let mut row = row();
        apply(&mut row, Status::Registered, 5, "r2", "IN/7 2026-12-04").unwrap();
        apply(&mut row, Status::Delivered, 4, "r1", "").unwrap();
        assert_eq!(row.status(), Status::Registered);
        assert_eq!(row.incoming_number, "IN/7");
        assert_eq!(row.transitions.iter().map(|t| t.status).collect::<Vec<_>>(), vec![1, 4, 3]);
    }

    #[test]
    fn a_late_delivered_after_the_final_status_is_recorded() {
        let mut row = row();
        apply(&mut row, Status::Refused, 3, "r2", "misaddressed").unwrap();
        apply(&mut row, Status::Delivered, 2, "r1", "").unwrap();
        assert_eq!(row.status(), Status::Refused);
        assert_eq!(row.transitions.len(), 3);
        assert!(apply(&mut row, Status::Registered, 4, "r3", "IN/1").is_err());
    }

    #[test]
    fn refusal_only_before_registration() {
        let mut row = row();
        apply(&mut row, Status::Delivered, 2, "", "").unwrap();
        apply(&mut row, Status::Refused, 3, "", "misaddressed").unwrap();
        assert_eq!(row.status(), Status::Refused);
        let mut registered = self::row();
        apply(&mut registered, Status::Registered, 2, "", "IN/1").unwrap();
        assert_eq!(
            apply(&mut registered, Status::Refused, 3, "", ""),
            Err(InvalidTransition { from: "registered", to: "refused" })
        );
    }
}
