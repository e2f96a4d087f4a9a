//! A → B, C through the router: both inboxes get the identical bytes once, A gets the
//! signed proof of submission and the receipts, and tracking records every transition
//! with its time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mirsal_envelope::pb::{self, notice::Kind, receipt::Status as ReceiptStatus};
use mirsal_integration_tests::platform::Platform;
use mirsal_router::records::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_reaches_both_recipients_once_and_its_receipts_come_back() {
    let mut platform = Platform::new(&["A", "B", "C"]).await;
    platform.start_router().await;
    let verifier = platform.verifier();
    let (mut a_inbox, mut b_inbox, mut c_inbox) = (
        platform.agency("A").inbox(verifier.clone()),
        platform.agency("B").inbox(verifier.clone()),
        platform.agency("C").inbox(verifier.clone()),
    );

    let (id, bytes) = platform.sign("A", platform.letter("A", &["B", "C"], "ميزانية 2027"));
    platform.agency("A").submit(bytes.clone()).await;

    let mut letters = Vec::new();
    for inbox in [&mut b_inbox, &mut c_inbox] {
        let letter = inbox.next().await;
        assert_eq!(letter.bytes, bytes, "the recipient gets the bytes the sender signed");
        assert_eq!(letter.message_id.as_deref(), Some(id.as_str()));
        assert_eq!(letter.kind.as_deref(), Some("letter"));
        assert_eq!(letter.origin.as_deref(), Some(platform.code("A")));
        letters.push(letter);
    }

    let accepted = a_inbox.next().await;
    assert_eq!(accepted.verified.signer.as_str(), mirsal_envelope::PLATFORM_CODE);
    let notice = accepted.notice().expect("a notice");
    assert_eq!(notice.subject_id, id);
    assert_eq!(notice.subject_digest[..], letters[0].verified.digest);
    let Some(Kind::Accepted(proof)) = &notice.kind else { panic!("not an accepted notice: {notice:?}") };
    assert!(proof.audit_sequence > 0 && proof.router_time.is_some());

    let delivered = || ReceiptStatus::Delivered(pb::Delivered {});
    let (b_delivered_id, b_delivered) = platform.receipt("B", &letters[0].verified, delivered());
    platform.agency("B").submit(b_delivered.clone()).await;
    let (_, c_delivered) = platform.receipt("C", &letters[1].verified, delivered());
    platform.agency("C").submit(c_delivered.clone()).await;
    let registered = ReceiptStatus::Registered(pb::Registered {
        incoming_number: "B/IN/2026/77".into(),
        incoming_date: "2026-12-04".into(),
    });
    let (_, b_registered) = platform.receipt("B", &letters[0].verified, registered);
    platform.agency("B").submit(b_registered.clone()).await;

    let mut receipts = Vec::new();
    for _ in 0..3 {
        let receipt = a_inbox.next().await;
        assert_eq!(receipt.kind.as_deref(), Some("receipt"));
        receipts.push(receipt.bytes);
    }
    receipts.sort();
    let mut expected = vec![b_delivered, c_delivered, b_registered];
    expected.sort();
    assert_eq!(receipts, expected, "A gets each receipt, byte for byte");

    // Nothing was handed over twice: a second letter is the next thing B sees.
    let (second_id, second) = platform.sign("A", platform.letter("A", &["B"], "second"));
    platform.agency("A").submit(second).await;
    assert_eq!(b_inbox.next().await.message_id.as_deref(), Some(second_id.as_str()));
    a_inbox
        .next_matching("the second accepted notice", |r| {
            r.notice().is_some_and(|n| n.subject_id == second_id)
        })
        .await;

    platform.stop_router().await;
    let store = platform.store();
    let b_row = store.tracking_row(&id, platform.code("B")).unwrap().unwrap();
    let statuses: Vec<Status> = b_row.transitions.iter().map(|t| t.status()).collect();
    assert_eq!(statuses, vec![Status::Accepted, Status::Queued, Status::Delivered, Status::Registered]);
    assert_eq!(b_row.status(), Status::Registered);
    assert_eq!(b_row.incoming_number, "B/IN/2026/77");
    assert_eq!(b_row.transitions[2].receipt_id, b_delivered_id);
    assert!(b_row.transitions.windows(2).all(|w| w[0].at_ms <= w[1].at_ms && w[0].at_ms > 0), "{b_row:?}");
    let c_row = store.tracking_row(&id, platform.code("C")).unwrap().unwrap();
    let statuses: Vec<Status> = c_row.transitions.iter().map(|t| t.status()).collect();
    assert_eq!(statuses, vec![Status::Accepted, Status::Queued, Status::Delivered]);
    let record = store.envelope(&id).unwrap().unwrap();
    assert_eq!(record.envelope, bytes, "the archive keeps the bytes as they were signed");
    assert_eq!(record.audit_sequence, proof.audit_sequence);
    drop(store);
    platform.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_that_waited_out_an_outage_is_still_accepted() {
    let mut platform = Platform::new(&["A", "B"]).await;
    platform.start_router().await;
    let mut b_inbox = platform.agency("B").inbox(platform.verifier());
    // Signed ten minutes ago, longer than the clock skew: it sat in the ingress queue
    // while the router was down. Replays are caught by envelope id, not by age.
    let mut content = platform
        .letter("A", &["B"], "written before the outage")
        .build(&mirsal_envelope::Policy::default(), chrono::Utc::now())
        .unwrap();
    content.header.as_mut().unwrap().created_at =
        Some(mirsal_envelope::time::to_timestamp(chrono::Utc::now() - chrono::Duration::minutes(10)));
    let (id, bytes) = platform.sign_content("A", &content);
    platform.agency("A").submit(bytes.clone()).await;
    let letter = b_inbox.next().await;
    assert_eq!((letter.message_id.as_deref(), letter.bytes), (Some(id.as_str()), bytes));
    platform.cleanup().await;
}
