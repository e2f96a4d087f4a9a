//! Requests over the bus: the directory snapshot, and the re-delivery of an archived
//! envelope to its sender or recipient (byte for byte, so it still verifies), refused
//! for anyone else.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mirsal_envelope::{Draft, ReasonCode, pb, pb::notice::Kind};
use mirsal_integration_tests::platform::{Inbox, Platform, Received};

async fn ask(platform: &Platform, inbox: &mut Inbox, who: &str, kind: pb::request::Kind) -> Received {
    let (id, bytes) = platform.sign(who, Draft::request(platform.code(who), kind));
    platform.agency(who).submit(bytes).await;
    inbox.next_matching("the answer", |r| r.notice().is_some_and(|n| n.subject_id == id)).await
}

fn redelivery(id: &str) -> pb::request::Kind {
    pb::request::Kind::Redelivery(pb::RedeliveryRequest { envelope_id: id.to_owned() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_and_archived_envelopes_are_served_to_those_entitled() {
    let mut platform = Platform::new(&["A", "B", "C"]).await;
    platform.start_router().await;
    let verifier = platform.verifier();
    let mut a = platform.agency("A").inbox(verifier.clone());
    let mut b = platform.agency("B").inbox(verifier.clone());
    let mut c = platform.agency("C").inbox(verifier.clone());

    let answer = ask(&platform, &mut a, "A", pb::request::Kind::Directory(pb::DirectoryRequest {})).await;
    let Some(Kind::Directory(snapshot)) = &answer.notice().unwrap().kind else { panic!("{answer:?}") };
    let mut codes: Vec<&str> = snapshot.agencies.iter().map(|e| e.code.as_str()).collect();
    codes.sort_unstable();
    let mut expected: Vec<&str> = ["A", "B", "C"].iter().map(|n| platform.code(n)).collect();
    expected.sort_unstable();
    assert_eq!(codes, expected);
    let b_entry = snapshot.agencies.iter().find(|e| e.code == platform.code("B")).unwrap();
    assert_eq!(b_entry.status(), pb::AgencyStatus::Active);
    assert_eq!(b_entry.name_ar, "الجهة B");
    let sealing = platform.agency("B").credentials.sealing.certificate.to_der().unwrap();
    assert_eq!(b_entry.sealing_certificate[..], sealing[..], "B's sealing certificate, for sealing to B");
    let crl = openssl::x509::X509Crl::from_der(&snapshot.crl).unwrap();
    let ca_key = platform.authority.certificate().public_key().unwrap();
    assert!(crl.verify(&ca_key).unwrap(), "the snapshot carries the platform's current CRL");

    let (id, bytes) = platform.sign("A", platform.letter("A", &["B"], "keep this"));
    platform.agency("A").submit(bytes.clone()).await;
    let _ = b.next().await;

    for (who, inbox) in [("A", &mut a), ("B", &mut b)] {
        let answer = ask(&platform, inbox, who, redelivery(&id)).await;
        let Some(Kind::Retrieval(retrieval)) = &answer.notice().unwrap().kind else { panic!("{answer:?}") };
        assert_eq!(retrieval.envelope, bytes, "{who} gets the archived bytes");
        verifier.verify(retrieval.envelope.clone(), chrono::Utc::now()).unwrap();
    }
    let refused = ask(&platform, &mut c, "C", redelivery(&id)).await;
    assert_eq!(refused.rejected_code(), Some(ReasonCode::NotAuthorized));
    let unknown =
        ask(&platform, &mut a, "A", redelivery(&uuid::Uuid::now_v7().hyphenated().to_string())).await;
    assert_eq!(unknown.rejected_code(), Some(ReasonCode::UnknownEnvelope));
    platform.cleanup().await;
}
