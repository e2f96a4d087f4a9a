//! The SDK end to end through the router: A sends, B receives and registers the letter
//! with an incoming number, and A sees it delivered and registered; confidential letters
//! arrive sealed and open only for their recipients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mirsal_adapter::{Adapter, ItemBody, StatusUpdate};
use mirsal_envelope::{attachment, pb};
use mirsal_integration_tests::{
    eventually,
    platform::{PATIENCE, Platform},
};

async fn next_letter(adapter: &Adapter) -> mirsal_adapter::Item {
    loop {
        let item =
            tokio::time::timeout(PATIENCE, adapter.next_item()).await.expect("an item in time").unwrap();
        if matches!(item.body, ItemBody::Letter(_) | ItemBody::Unreadable { .. }) {
            return item;
        }
        adapter.ack(&item.id).await.unwrap();
    }
}

async fn sent_status(
    adapter: &Adapter,
    id: &str,
    recipient: &str,
    wanted: &str,
) -> mirsal_adapter::SentTracking {
    eventually(PATIENCE, &format!("{recipient} {wanted} in the sender's tracking"), || async {
        let tracking = adapter.sent(id).unwrap()?;
        tracking.recipients.iter().any(|r| r.agency == recipient && r.status == wanted).then_some(tracking)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_is_sent_received_registered_and_tracked_through_the_sdk() {
    let mut platform = Platform::new(&["A", "B"]).await;
    platform.start_router().await;
    let (a, _) = platform.adapter("A").await;
    let (b, _) = platform.adapter("B").await;
    let b_code = platform.code("B").to_owned();

    let scan = vec![0x25u8; 4096];
    let letter = pb::Letter {
        subject: "طلب بيانات الموازنة".into(),
        body: "نرجو التكرم بتزويدنا بالبيانات".into(),
        language: "ar".into(),
        outgoing_number: "A/2026/55".into(),
        attachments: vec![pb::Attachment {
            main_document: true,
            ..attachment("scan.pdf", "application/pdf", scan.clone())
        }],
        ..Default::default()
    };
    let id = a.send(a.header().action(b_code.as_str()), letter.clone(), Some("ref-55")).await.unwrap();
    assert_eq!(
        a.send(a.header().action(b_code.as_str()), letter, Some("ref-55")).await.unwrap(),
        id,
        "same key, same letter"
    );

    let item = next_letter(&b).await;
    assert_eq!(item.id, id);
    assert_eq!(item.sender, platform.code("A"));
    let ItemBody::Letter(received) = &item.body else { panic!("{:?}", item.body) };
    assert_eq!(received.subject, "طلب بيانات الموازنة");
    assert_eq!(received.attachments[0].content[..], scan[..]);
    b.ack(&item.id).await.unwrap();
    let tracking = sent_status(&a, &id, &b_code, "delivered").await;
    assert_eq!(tracking.state, "accepted", "the platform's proof of submission arrived");
    assert!(tracking.audit_sequence.is_some_and(|s| s > 0));

    let registered = StatusUpdate::Registered {
        incoming_number: "B/IN/2026/901".into(),
        incoming_date: "2026-12-04".into(),
    };
    b.set_status(&id, registered).await.unwrap();
    let tracking = sent_status(&a, &id, &b_code, "registered").await;
    let timeline: Vec<&str> = tracking.recipients[0].timeline.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(timeline, vec!["accepted", "delivered", "registered"]);
    assert_eq!(tracking.recipients[0].timeline[2].detail, "B/IN/2026/901 2026-12-04");

    // A also got the receipts as items, and nothing was handed to B twice.
    let mut kinds = Vec::new();
    while a.pending_len() > 0 {
        let item = a.next_item().await.unwrap();
        kinds.push(item.kind);
        a.ack(&item.id).await.unwrap();
    }
    assert_eq!(kinds.iter().filter(|k| **k == "receipt").count(), 2, "{kinds:?}");
    assert_eq!(b.pending_len(), 0);

    a.shutdown().await;
    b.shutdown().await;
    platform.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confidential_letter_arrives_sealed_and_only_its_recipients_can_open_it() {
    let mut platform = Platform::new(&["A", "B", "C", "D"]).await;
    platform.start_router().await;
    let (a, _) = platform.adapter("A").await;
    let (b, _) = platform.adapter("B").await;
    let (c, _) = platform.adapter("C").await;
    let (d, _) = platform.adapter("D").await;

    let letter = pb::Letter {
        subject: "خطة سرية".into(), body: "للاطلاع فقط".into(), ..Default::default()
    };
    let header = a
        .header()
        .action(platform.code("B"))
        .copy(platform.code("C"))
        .classification(pb::Classification::Confidential);
    let id = a.send(header, letter, None).await.unwrap();

    for recipient in [&b, &c] {
        let item = next_letter(recipient).await;
        assert_eq!((item.id.as_str(), item.kind), (id.as_str(), "sealed"));
        let ItemBody::Letter(opened) = &item.body else { panic!("{:?}", item.body) };
        assert_eq!(opened.subject, "خطة سرية");
        assert!(
            !item.envelope.windows("خطة سرية".len()).any(|w| w == "خطة سرية".as_bytes()),
            "the envelope is sealed"
        );
        recipient.ack(&item.id).await.unwrap();
    }
    // D is not a recipient and gets nothing of it; asked for it, the platform refuses.
    let request = d.request_redelivery(&id).await.unwrap();
    let refusal = tokio::time::timeout(PATIENCE, d.next_item()).await.unwrap().unwrap();
    let ItemBody::Notice(notice) = &refusal.body else { panic!("{:?}", refusal.body) };
    assert_eq!(notice.subject_id, request);
    assert!(
        matches!(&notice.kind, Some(pb::notice::Kind::Rejected(r)) if r.code() == mirsal_envelope::ReasonCode::NotAuthorized)
    );
    // And even with the bytes, D cannot open it.
    let (b_item, d_key) = (b.item(&id).unwrap().unwrap(), platform.agency("D").sealing_key());
    let envelope = <pb::Envelope as prost::Message>::decode(b_item.envelope.clone()).unwrap();
    let content = <pb::SignedContent as prost::Message>::decode(envelope.signed_content).unwrap();
    let error = d_key.open_content(&content, &mirsal_envelope::Limits::default()).unwrap_err();
    assert_eq!(error.reason(), mirsal_envelope::ReasonCode::NotSealedForRecipient);

    for adapter in [a, b, c, d] {
        adapter.shutdown().await;
    }
    platform.cleanup().await;
}
