//! Every content rule, enforced by the builders and again by the verifier.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use chrono::Duration;
use common::{Platform, encode, letter};
use mirsal_envelope::{
    Draft, HeaderDraft, Limits, Policy, ReasonCode, attachment,
    pb::{self, receipt::Status},
};

fn build_error(draft: Draft) -> ReasonCode {
    let platform = Platform::new();
    draft.build(&Policy::default(), platform.now).map(|_| ()).unwrap_err().reason()
}

fn letter_to(header: HeaderDraft) -> Draft {
    Draft::letter(header, letter("Subject"))
}

#[test]
fn agency_codes_must_match_the_pattern() {
    assert_eq!(build_error(letter_to(HeaderDraft::new("mof").action("MOH"))), ReasonCode::InvalidAgencyCode);
    assert_eq!(build_error(letter_to(HeaderDraft::new("MOF").action("M"))), ReasonCode::InvalidAgencyCode);
}

#[test]
fn recipients_must_exist_be_distinct_and_exclude_the_sender() {
    assert_eq!(build_error(letter_to(HeaderDraft::new("MOF"))), ReasonCode::NoRecipients);
    assert_eq!(
        build_error(letter_to(HeaderDraft::new("MOF").action("MOH").copy("MOH"))),
        ReasonCode::DuplicateRecipient
    );
    assert_eq!(build_error(letter_to(HeaderDraft::new("MOF").action("MOF"))), ReasonCode::SenderIsRecipient);
    let unspecified_role = HeaderDraft::new("MOF").to("MOH", pb::RecipientRole::Unspecified);
    assert_eq!(build_error(letter_to(unspecified_role)), ReasonCode::InvalidField);
}

#[test]
fn the_platform_code_is_not_an_agency() {
    assert_eq!(
        build_error(letter_to(HeaderDraft::new("MOF").action("MIRSAL"))),
        ReasonCode::InvalidAgencyCode
    );
    assert_eq!(
        build_error(letter_to(HeaderDraft::new("MIRSAL").action("MOF"))),
        ReasonCode::InvalidAgencyCode
    );
    let forged_notice = Draft::notice("MOH", None, pb::notice::Kind::Directory(Default::default()));
    let mut forged_notice = forged_notice;
    forged_notice.header_mut().sender = "MOF".into();
    assert_eq!(build_error(forged_notice), ReasonCode::InvalidNotice);
}

#[test]
fn the_subject_must_not_be_empty() {
    for subject in ["", "   \n"] {
        let draft = Draft::letter(HeaderDraft::new("MOF").action("MOH"), letter(subject));
        assert_eq!(build_error(draft), ReasonCode::EmptySubject);
    }
}

#[test]
fn attachment_digests_must_match_their_bytes() {
    let mut body = letter("Subject");
    body.attachments[0].content = Bytes::from_static(b"other bytes");
    assert_eq!(
        build_error(Draft::letter(HeaderDraft::new("MOF").action("MOH"), body)),
        ReasonCode::AttachmentDigestMismatch
    );
}

#[test]
fn attachments_need_a_plain_name_and_a_media_type() {
    for (name, media_type) in
        [("", "application/pdf"), ("../etc/passwd", "application/pdf"), ("a.pdf", "pdf")]
    {
        let mut body = letter("Subject");
        body.attachments = vec![attachment(name, media_type, b"x".to_vec())];
        let reason = build_error(Draft::letter(HeaderDraft::new("MOF").action("MOH"), body));
        assert_eq!(reason, ReasonCode::InvalidAttachment, "{name:?} {media_type:?}");
    }
    let mut body = letter("Subject");
    let mut second = attachment("b.pdf", "application/pdf", b"y".to_vec());
    second.main_document = true;
    body.attachments[0].main_document = true;
    body.attachments.push(second);
    assert_eq!(
        build_error(Draft::letter(HeaderDraft::new("MOF").action("MOH"), body)),
        ReasonCode::InvalidField
    );
}

#[test]
fn size_limits_are_configurable_and_enforced() {
    let platform = Platform::new();
    let policy = Policy {
        limits: Limits {
            max_attachments: 1,
            max_attachment_bytes: 100,
            max_subject_chars: 10,
            ..Limits::default()
        },
        ..Policy::default()
    };
    let build = |body: pb::Letter| {
        Draft::letter(HeaderDraft::new("MOF").action("MOH"), body)
            .build(&policy, platform.now)
            .unwrap_err()
            .reason()
    };
    let mut long_subject = letter("Subject");
    long_subject.subject = "s".repeat(11);
    long_subject.attachments.clear();
    assert_eq!(build(long_subject), ReasonCode::LimitExceeded);
    let mut big = letter("Subject");
    big.attachments = vec![attachment("a.bin", "application/octet-stream", vec![0; 101])];
    assert_eq!(build(big), ReasonCode::LimitExceeded);
    let mut many = letter("Subject");
    many.attachments.push(attachment("b.bin", "application/octet-stream", vec![0; 10]));
    many.attachments[0] = attachment("a.bin", "application/octet-stream", vec![0; 10]);
    assert_eq!(build(many), ReasonCode::LimitExceeded);
}

#[test]
fn an_envelope_over_the_size_limit_is_refused_before_decoding() {
    let platform = Platform::new();
    let (mof, moh) = (platform.agency("MOF"), platform.agency("MOH"));
    let bytes = encode(&common::signed_letter(&platform, &mof, &[&moh]));
    let policy = Policy {
        limits: Limits { max_envelope_bytes: bytes.len() - 1, ..Limits::default() },
        ..Policy::default()
    };
    let verifier = mirsal_envelope::Verifier::new(platform.trust(), policy);
    assert_eq!(verifier.verify(bytes, platform.now).unwrap_err().reason(), ReasonCode::TooLarge);
}

#[test]
fn times_must_be_sane() {
    let platform = Platform::new();
    let past = platform.now - Duration::hours(1);
    assert_eq!(
        build_error(letter_to(HeaderDraft::new("MOF").action("MOH").expires_at(past))),
        ReasonCode::InvalidTimes
    );
    assert_eq!(
        build_error(letter_to(HeaderDraft::new("MOF").action("MOH").reply_due(past))),
        ReasonCode::InvalidTimes
    );
    let future = platform.now + Duration::days(3);
    let fine = letter_to(HeaderDraft::new("MOF").action("MOH").reply_due(future).expires_at(future));
    fine.build(&Policy::default(), platform.now).unwrap();
}

#[test]
fn the_verifier_refuses_skewed_and_expired_envelopes() {
    let platform = Platform::new();
    let (mof, moh) = (platform.agency("MOF"), platform.agency("MOH"));
    let verifier = platform.verifier();
    let envelope = common::signed_letter(&platform, &mof, &[&moh]);
    let later = platform.now + Duration::minutes(10);
    assert_eq!(verifier.verify(encode(&envelope), later).unwrap_err().reason(), ReasonCode::ClockSkew);
    let earlier = platform.now - Duration::minutes(10);
    assert_eq!(verifier.verify(encode(&envelope), earlier).unwrap_err().reason(), ReasonCode::ClockSkew);

    let expiring =
        letter_to(HeaderDraft::new("MOF").action("MOH").expires_at(platform.now + Duration::minutes(1)))
            .build(&Policy::default(), platform.now)
            .unwrap();
    let envelope = mof.signer().sign(&expiring).unwrap();
    verifier.verify(encode(&envelope), platform.now).unwrap();
    let after_expiry = platform.now + Duration::minutes(2);
    assert_eq!(verifier.verify(encode(&envelope), after_expiry).unwrap_err().reason(), ReasonCode::Expired);
}

#[test]
fn header_enums_must_be_specified() {
    let mut header = HeaderDraft::new("MOF").action("MOH");
    header.classification = pb::Classification::Unspecified;
    assert_eq!(build_error(letter_to(header)), ReasonCode::InvalidField);
    let mut header = HeaderDraft::new("MOF").action("MOH");
    header.priority = pb::Priority::Unspecified;
    assert_eq!(build_error(letter_to(header)), ReasonCode::InvalidField);
    let header = HeaderDraft::new("MOF").action("MOH").in_reply_to("not-a-uuid");
    assert_eq!(build_error(letter_to(header)), ReasonCode::InvalidEnvelopeId);
}

#[test]
fn receipts_refer_to_the_letter_and_go_back_to_its_sender() {
    let platform = Platform::new();
    let content =
        letter_to(HeaderDraft::new("MOF").action("MOH")).build(&Policy::default(), platform.now).unwrap();
    let header = content.header.unwrap();
    let registered = Status::Registered(pb::Registered {
        incoming_number: "MOH/IN/77".into(),
        incoming_date: "2026-12-04".into(),
    });
    let receipt =
        Draft::receipt("MOH", &header, [7; 32], registered).build(&Policy::default(), platform.now).unwrap();
    let receipt_header = receipt.header.unwrap();
    assert_eq!(receipt_header.recipients[0].agency, "MOF");
    assert_eq!(receipt_header.in_reply_to, header.envelope_id);
    assert_eq!(receipt_header.thread_id, header.envelope_id, "a new letter's id is its thread");

    let unnumbered =
        Status::Registered(pb::Registered { incoming_number: " ".into(), incoming_date: String::new() });
    assert_eq!(build_error(Draft::receipt("MOH", &header, [7; 32], unnumbered)), ReasonCode::InvalidReceipt);
    let refused = Status::Refused(pb::Refused { reason: 0, text: "?".into() });
    assert_eq!(build_error(Draft::receipt("MOH", &header, [7; 32], refused)), ReasonCode::InvalidReceipt);
    let answered = Status::Answered(pb::Answered { reply_id: "nope".into() });
    assert_eq!(build_error(Draft::receipt("MOH", &header, [7; 32], answered)), ReasonCode::InvalidEnvelopeId);
}

#[test]
fn requests_go_to_the_platform_and_notices_come_from_it() {
    let platform = Platform::new();
    let policy = Policy::default();
    let request = Draft::request("MOF", pb::request::Kind::Directory(pb::DirectoryRequest {}));
    let built = request.build(&policy, platform.now).unwrap();
    assert_eq!(built.header.unwrap().recipients[0].agency, "MIRSAL");
    let bad_recall = Draft::request(
        "MOF",
        pb::request::Kind::Recall(pb::RecallRequest { envelope_id: "x".into(), reason: String::new() }),
    );
    assert_eq!(build_error(bad_recall), ReasonCode::InvalidEnvelopeId);

    let rejected = pb::notice::Kind::Rejected(pb::Rejected {
        code: ReasonCode::BadSignature as i32,
        text: "signature does not verify".into(),
    });
    Draft::notice("MOF", Some(("0193a0d4-3c5e-7a11-8c2e-6f1d2b3c4d5e", [1; 32])), rejected)
        .build(&policy, platform.now)
        .unwrap();
    let no_code = pb::notice::Kind::Rejected(pb::Rejected { code: 0, text: String::new() });
    assert_eq!(build_error(Draft::notice("MOF", None, no_code)), ReasonCode::InvalidNotice);
}
