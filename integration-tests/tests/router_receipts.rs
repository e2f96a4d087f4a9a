//! Receipts are checked against the letter they are about, duplicates are handled
//! once, and overdue letters are reported to their sender exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{Duration, Utc};
use mirsal_envelope::{
    Draft, ReasonCode,
    pb::{self, notice::Kind, receipt::Status as ReceiptStatus},
};
use mirsal_integration_tests::platform::Platform;

fn delivered() -> ReceiptStatus {
    ReceiptStatus::Delivered(pb::Delivered {})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_must_come_from_a_recipient_about_the_exact_letter_and_in_order() {
    let mut platform = Platform::new(&["A", "B", "C"]).await;
    platform.start_router().await;
    let verifier = platform.verifier();
    let mut a = platform.agency("A").inbox(verifier.clone());
    let mut b = platform.agency("B").inbox(verifier.clone());
    let mut c = platform.agency("C").inbox(verifier.clone());

    let (id, bytes) = platform.sign("A", platform.letter("A", &["B"], "to B only"));
    platform.agency("A").submit(bytes.clone()).await;
    let letter = b.next().await;

    // The same envelope again (same content): accepted once, handed over once.
    platform.agency("A").submit(bytes.clone()).await;
    let (marker, marker_bytes) = platform.sign("A", platform.letter("A", &["B"], "marker"));
    platform.agency("A").submit(marker_bytes).await;
    assert_eq!(
        b.next().await.message_id.as_deref(),
        Some(marker.as_str()),
        "the duplicate was delivered again"
    );
    let notices: Vec<String> =
        [a.next().await, a.next().await].iter().map(|r| r.notice().unwrap().subject_id.clone()).collect();
    assert_eq!(notices, vec![id.clone(), marker.clone()], "one accepted notice per letter");

    // C was not addressed.
    let (_, from_c) = platform.sign(
        "C",
        Draft::receipt(platform.code("C"), &letter.verified.header, letter.verified.digest, delivered()),
    );
    platform.agency("C").submit(from_c).await;
    let refused = c.next_matching("C's rejected notice", |r| r.rejected_code().is_some()).await;
    assert_eq!(refused.rejected_code(), Some(ReasonCode::NotARecipient));

    // B commits to other bytes than it received.
    let (_, wrong_digest) =
        platform.sign("B", Draft::receipt(platform.code("B"), &letter.verified.header, [9; 32], delivered()));
    platform.agency("B").submit(wrong_digest).await;
    let refused = b.next_matching("B's rejected notice", |r| r.rejected_code().is_some()).await;
    assert_eq!(refused.rejected_code(), Some(ReasonCode::ReceiptDigestMismatch));

    // A receipt about a letter the platform never carried.
    let phantom = platform
        .letter("A", &["B"], "never sent")
        .build(&mirsal_envelope::Policy::default(), Utc::now())
        .unwrap();
    let (_, unknown) = platform.sign(
        "B",
        Draft::receipt(platform.code("B"), phantom.header.as_ref().unwrap(), [1; 32], delivered()),
    );
    platform.agency("B").submit(unknown).await;
    let refused = b.next_matching("B's rejected notice", |r| r.rejected_code().is_some()).await;
    assert_eq!(refused.rejected_code(), Some(ReasonCode::UnknownEnvelope));

    // Closed is final.
    let closed = ReceiptStatus::Closed(pb::Closed { note: "done".into() });
    let (_, closing) = platform.receipt("B", &letter.verified, closed);
    platform.agency("B").submit(closing.clone()).await;
    let forwarded = a.next_matching("the closing receipt", |r| r.kind.as_deref() == Some("receipt")).await;
    assert_eq!(forwarded.bytes, closing);
    let late = ReceiptStatus::Registered(pb::Registered {
        incoming_number: "B/9".into(),
        incoming_date: String::new(),
    });
    let (_, late) = platform.receipt("B", &letter.verified, late);
    platform.agency("B").submit(late).await;
    let refused = b.next_matching("B's rejected notice", |r| r.rejected_code().is_some()).await;
    assert_eq!(refused.rejected_code(), Some(ReasonCode::InvalidTransition));
    platform.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_letters_are_reported_to_their_sender_once() {
    let mut platform = Platform::new(&["A", "B"]).await;
    platform.config_overrides.insert(
        "overdue",
        vec!["delivery_sla = { normal = \"1s\", urgent = \"1h\", immediate = \"1h\" }".into()],
    );
    platform.start_router().await;
    let verifier = platform.verifier();
    let mut a = platform.agency("A").inbox(verifier.clone());
    let mut b = platform.agency("B").inbox(verifier.clone());

    // Never delivered: a delivery overdue notice.
    let (undelivered, bytes) = platform.sign("A", platform.letter("A", &["B"], "nobody reads this"));
    platform.agency("A").submit(bytes).await;
    let _ = b.next().await;
    // Delivered but not answered by its reply_due: a reply overdue notice. (Urgent, so
    // its delivery SLA is an hour and only the reply can be late.)
    let mut draft = platform.letter("A", &["B"], "please answer");
    draft.header_mut().priority = pb::Priority::Urgent;
    draft.header_mut().reply_due = Some(Utc::now() + Duration::milliseconds(1500));
    let (unanswered, bytes) = platform.sign("A", draft);
    platform.agency("A").submit(bytes).await;
    let letter = b.next().await;
    let (_, receipt) = platform.receipt("B", &letter.verified, delivered());
    platform.agency("B").submit(receipt).await;

    let overdue = |r: &mirsal_integration_tests::platform::Received| {
        matches!(r.notice().and_then(|n| n.kind.as_ref()), Some(Kind::Overdue(_)))
    };
    let mut reports = Vec::new();
    for _ in 0..2 {
        let notice = a.next_matching("an overdue notice", overdue).await;
        let n = notice.notice().unwrap();
        let Some(Kind::Overdue(o)) = &n.kind else { unreachable!() };
        assert_eq!(o.agency, platform.code("B"));
        reports.push((n.subject_id.clone(), o.kind()));
    }
    reports.sort();
    let mut expected =
        vec![(undelivered.clone(), pb::OverdueKind::Delivery), (unanswered.clone(), pb::OverdueKind::Reply)];
    expected.sort();
    assert_eq!(reports, expected);

    platform.stop_router().await;
    let store = platform.store();
    let overdue_events: Vec<(String, String)> = store
        .audit_events()
        .map(|e| e.unwrap().1)
        .filter(|e| e.kind.starts_with("overdue"))
        .map(|e| (e.envelope_id, e.kind))
        .collect();
    assert_eq!(overdue_events.len(), 2, "each overdue letter is reported once: {overdue_events:?}");
    assert!(store.tracking_row(&undelivered, platform.code("B")).unwrap().unwrap().delivery_overdue_notified);
    assert!(store.tracking_row(&unanswered, platform.code("B")).unwrap().unwrap().reply_overdue_notified);
    assert!(store.due_before(i64::MAX, 10).unwrap().is_empty(), "nothing is left on the agenda");
    store.close().await.unwrap();
    platform.cleanup().await;
}
