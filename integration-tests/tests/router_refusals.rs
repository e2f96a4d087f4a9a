//! Every class of bad input gets its signed rejected notice with the right reason
//! code and a dead-letter entry carrying that code, and the router goes on serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use chrono::{Duration, Utc};
use mirsal_envelope::{
    AgencyCode, HeaderDraft, Policy, ReasonCode, SigningIdentity, attachment, pb,
    pki::{Authority, KeyKind, Profile, Usage},
    time::to_timestamp,
};
use mirsal_integration_tests::{
    eventually,
    platform::{Inbox, PATIENCE, Platform},
};
use mirsal_router::directory::AgencyStatus;
use prost::Message as _;

/// Submits `bytes` as agency A and expects A's rejected notice with `code`.
async fn refuse(
    platform: &Platform,
    inbox: &mut Inbox,
    expected: &mut Vec<ReasonCode>,
    bytes: Bytes,
    code: ReasonCode,
    case: &str,
) {
    platform.agency("A").submit(bytes).await;
    expect_rejection(inbox, code, case).await;
    expected.push(code);
}

async fn expect_rejection(inbox: &mut Inbox, code: ReasonCode, case: &str) {
    let notice = inbox.next_matching(case, |r| r.rejected_code().is_some()).await;
    assert_eq!(notice.rejected_code(), Some(code), "{case}: {:?}", notice.notice());
    assert_eq!(notice.verified.signer.as_str(), mirsal_envelope::PLATFORM_CODE);
}

/// Submits letters from `from` until one is rejected with `code` (the router picks up
/// directory and CRL changes within its reload interval).
async fn eventually_rejected(platform: &Platform, inbox: &mut Inbox, from: &str, to: &str, code: ReasonCode) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts < 200, "{from} was never refused with {code:?}");
        let (_, bytes) = platform.sign(from, platform.letter(from, &[to], "probe"));
        platform.agency(from).submit(bytes).await;
        let notice = inbox.next_matching("a notice", |r| r.notice().is_some()).await;
        if notice.rejected_code() == Some(code) {
            return;
        }
    }
}

fn flip_signature(bytes: &Bytes) -> Bytes {
    let mut envelope = pb::Envelope::decode(bytes.clone()).unwrap();
    let signature = envelope.signature.as_mut().unwrap();
    let mut value = signature.value.to_vec();
    let last = value.len() - 1;
    value[last] ^= 0x01;
    signature.value = value.into();
    Bytes::from(envelope.encode_to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_class_of_bad_input_is_refused_with_its_code_and_dead_lettered() {
    let mut platform = Platform::new(&["A", "B", "R", "S", "X"]).await;
    platform.config_overrides.insert("policy", vec!["max_envelope_bytes = 65536".into()]);
    platform.start_router().await;
    let verifier = platform.verifier();
    let mut a = platform.agency("A").inbox(verifier.clone());
    let mut b = platform.agency("B").inbox(verifier.clone());
    let (code_a, code_b) = (platform.code("A").to_owned(), platform.code("B").to_owned());
    let policy = Policy::default();
    let mut expected = Vec::new();

    refuse(
        &platform,
        &mut a,
        &mut expected,
        Bytes::from_static(b"definitely not an envelope"),
        ReasonCode::MalformedEnvelope,
        "garbage",
    )
    .await;

    let (_, valid) = platform.sign("A", platform.letter("A", &["B"], "valid"));
    refuse(
        &platform,
        &mut a,
        &mut expected,
        valid.slice(..valid.len() / 2),
        ReasonCode::MalformedEnvelope,
        "truncated",
    )
    .await;

    let draft_letter = pb::Letter {
        subject: "big".into(),
        attachments: vec![attachment("scan.pdf", "application/pdf", vec![7u8; 70 * 1024])],
        ..Default::default()
    };
    let big =
        mirsal_envelope::Draft::letter(HeaderDraft::new(code_a.clone()).action(code_b.clone()), draft_letter);
    let (_, oversized) = platform.sign("A", big);
    refuse(&platform, &mut a, &mut expected, oversized, ReasonCode::TooLarge, "oversized").await;

    let (_, signed) = platform.sign("A", platform.letter("A", &["B"], "tampered"));
    refuse(
        &platform,
        &mut a,
        &mut expected,
        flip_signature(&signed),
        ReasonCode::BadSignature,
        "bad signature",
    )
    .await;

    let stranger_ca =
        Authority::create("Another CA", KeyKind::EcP256, Utc::now() - Duration::days(1), 30).unwrap();
    let stranger = stranger_ca
        .issue_agency(
            &AgencyCode::new(code_a.as_str()).unwrap(),
            "impostor",
            KeyKind::EcP256,
            Utc::now() - Duration::hours(1),
            30,
        )
        .unwrap();
    let impostor = SigningIdentity::new(stranger.signing.key, &[stranger.signing.certificate]).unwrap();
    let content = platform.letter("A", &["B"], "impostor").build(&policy, Utc::now()).unwrap();
    refuse(
        &platform,
        &mut a,
        &mut expected,
        Bytes::from(impostor.sign(&content).unwrap().encode_to_vec()),
        ReasonCode::UntrustedCertificate,
        "unknown CA",
    )
    .await;

    let content = HeaderDraft::new(platform.code("B"))
        .action(code_a.clone())
        .classification(pb::Classification::Unclassified);
    let spoofed = mirsal_envelope::Draft::letter(
        content,
        pb::Letter { subject: "from B, really".into(), ..Default::default() },
    )
    .build(&policy, Utc::now())
    .unwrap();
    let (_, spoofed) = platform.sign_content("A", &spoofed);
    refuse(
        &platform,
        &mut a,
        &mut expected,
        spoofed,
        ReasonCode::SenderMismatch,
        "sender spoofed in the header",
    )
    .await;

    let (_, from_b) = platform.sign("B", platform.letter("B", &["A"], "B's own letter"));
    refuse(&platform, &mut a, &mut expected, from_b, ReasonCode::OriginMismatch, "user_id is not the signer")
        .await;

    let unknown = HeaderDraft::new(code_a.clone()).action("ZZ-NOT-AN-AGENCY");
    let (_, to_unknown) = platform.sign(
        "A",
        mirsal_envelope::Draft::letter(unknown, pb::Letter { subject: "?".into(), ..Default::default() }),
    );
    refuse(&platform, &mut a, &mut expected, to_unknown, ReasonCode::UnknownRecipient, "unknown recipient")
        .await;

    let confidential = HeaderDraft::new(code_a.clone())
        .action(code_b.clone())
        .classification(pb::Classification::Confidential);
    let unsealed = mirsal_envelope::Draft::letter(
        confidential,
        pb::Letter { subject: "secret plans".into(), ..Default::default() },
    )
    .build_unsealed(&policy, Utc::now())
    .unwrap();
    let (_, unsealed) = platform.sign_content("A", &unsealed);
    refuse(
        &platform,
        &mut a,
        &mut expected,
        unsealed,
        ReasonCode::SealingRequired,
        "unsealed confidential letter",
    )
    .await;

    let mut expired = platform.letter("A", &["B"], "late").build(&policy, Utc::now()).unwrap();
    let header = expired.header.as_mut().unwrap();
    header.created_at = Some(to_timestamp(Utc::now() - Duration::minutes(2)));
    header.expires_at = Some(to_timestamp(Utc::now() - Duration::minutes(1)));
    let (_, expired) = platform.sign_content("A", &expired);
    refuse(&platform, &mut a, &mut expected, expired, ReasonCode::Expired, "expired letter").await;

    let original = platform.letter("A", &["B"], "original").build(&policy, Utc::now()).unwrap();
    let (id, original_bytes) = platform.sign_content("A", &original);
    platform.agency("A").submit(original_bytes).await;
    a.next_matching("the original's accepted notice", |r| r.notice().is_some_and(|n| n.subject_id == id))
        .await;
    assert_eq!(b.next().await.message_id.as_deref(), Some(id.as_str()));
    let mut other = original.clone();
    if let Some(pb::signed_content::Body::Letter(letter)) = &mut other.body {
        letter.subject = "other content, same id".into();
    }
    let (_, replay) = platform.sign_content("A", &other);
    refuse(
        &platform,
        &mut a,
        &mut expected,
        replay,
        ReasonCode::ReplayConflict,
        "replayed id with other content",
    )
    .await;

    // An agency whose certificate has expired, revoked, suspended as sender and as recipient.
    let x = platform.agency("X");
    let expired_profile =
        Profile::new(x.code.as_str(), Usage::Signing, Utc::now() - Duration::days(400), 365);
    let expired_cert = platform.authority.issue_new(KeyKind::EcP256, &expired_profile).unwrap();
    let stale = SigningIdentity::new(expired_cert.key, &[expired_cert.certificate]).unwrap();
    let content = platform.letter("X", &["B"], "stale").build(&policy, Utc::now()).unwrap();
    let mut x_inbox = x.inbox(verifier.clone());
    x.submit(Bytes::from(stale.sign(&content).unwrap().encode_to_vec())).await;
    expect_rejection(&mut x_inbox, ReasonCode::CertificateExpired, "expired certificate").await;
    expected.push(ReasonCode::CertificateExpired);

    platform.revoke("R");
    let mut r_inbox = platform.agency("R").inbox(verifier.clone());
    eventually_rejected(&platform, &mut r_inbox, "R", "B", ReasonCode::CertificateRevoked).await;
    expected.push(ReasonCode::CertificateRevoked);

    platform.set_status("S", AgencyStatus::Suspended);
    eventually_rejected(&platform, &mut a, "A", "S", ReasonCode::RecipientSuspended).await;
    expected.push(ReasonCode::RecipientSuspended);
    let mut s_inbox = platform.agency("S").inbox(verifier.clone());
    let (_, from_suspended) = platform.sign("S", platform.letter("S", &["B"], "while suspended"));
    platform.agency("S").submit(from_suspended).await;
    expect_rejection(&mut s_inbox, ReasonCode::SenderSuspended, "suspended sender").await;
    expected.push(ReasonCode::SenderSuspended);

    // And the router still serves the next valid letter.
    let (next_id, next) = platform.sign("A", platform.letter("A", &["B"], "after all that"));
    platform.agency("A").submit(next.clone()).await;
    let delivered =
        b.next_matching("the next valid letter", |r| r.message_id.as_deref() == Some(next_id.as_str())).await;
    assert_eq!(delivered.bytes, next);

    // Every refusal is a dead letter of its own with its reason code, kept by the router.
    // (Probes that were accepted before a reload are not dead letters.)
    let api = reqwest::Client::new();
    let url = format!("{}/api/v1/dead-letters?limit=1000", platform.http_url());
    eventually(PATIENCE, &format!("a dead letter for each of {expected:?}"), || async {
        let listed: serde_json::Value =
            api.get(&url).bearer_auth(&platform.http_token).send().await.ok()?.json().await.ok()?;
        let codes: Vec<i64> =
            listed["items"].as_array()?.iter().filter_map(|d| d["reason_code"].as_i64()).collect();
        (codes.len() >= expected.len()
            && expected.iter().all(|code| codes.contains(&i64::from(*code as i32))))
        .then_some(())
    })
    .await;
    platform.cleanup().await;
}
