//! Sealed letters open for each recipient and nobody else; any tampering is detected.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::{Agency, Platform, encode, letter_draft};
use mirsal_envelope::{
    Draft, HeaderDraft, Limits, Policy, ReasonCode, SealError, ValidationError,
    pb::{self, signed_content::Body},
    pki::KeyKind,
    seal::seal_content,
};

struct Scene {
    platform: Platform,
    mof: Agency,
    moh: Agency,
    moe: Agency,
    outsider: Agency,
}

fn scene() -> Scene {
    let platform = Platform::new();
    Scene {
        mof: platform.agency("MOF"),
        moh: platform.agency("MOH"),
        moe: platform.agency_with("MOE", KeyKind::Rsa(2048)),
        outsider: platform.agency("MOI"),
        platform,
    }
}

fn confidential(scene: &Scene) -> pb::SignedContent {
    let mut draft = letter_draft(&scene.mof, &[&scene.moh, &scene.moe]);
    draft.header_mut().classification = pb::Classification::Confidential;
    draft
        .build_sealed(
            &Policy::default(),
            scene.platform.now,
            &[scene.moh.sealing_certificate(), scene.moe.sealing_certificate()],
            &scene.platform.trust(),
        )
        .unwrap()
}

fn sealed_of(content: &pb::SignedContent) -> pb::Sealed {
    match &content.body {
        Some(Body::Sealed(sealed)) => sealed.clone(),
        other => panic!("not sealed: {other:?}"),
    }
}

#[test]
fn a_sealed_letter_opens_for_each_recipient_ec_and_rsa() {
    let scene = scene();
    let content = confidential(&scene);
    let expected = common::letter("تعميم الموازنة 2027");
    for recipient in [&scene.moh, &scene.moe] {
        let letter = recipient.sealing_key().open_content(&content, &Limits::default()).unwrap();
        assert_eq!(letter, expected, "{}", recipient.code);
    }
    let keys = sealed_of(&content).keys;
    assert_eq!(keys[0].algorithm(), pb::KeyWrapAlgorithm::EcdhEsP256HkdfSha256);
    assert_eq!(keys[1].algorithm(), pb::KeyWrapAlgorithm::RsaOaepSha256);
}

#[test]
fn a_sealed_letter_signs_and_verifies_and_the_router_sees_only_the_header() {
    let scene = scene();
    let content = confidential(&scene);
    let envelope = scene.mof.signer().sign(&content).unwrap();
    let verified = scene.platform.verifier().verify(encode(&envelope), scene.platform.now).unwrap();
    assert!(matches!(verified.body, Body::Sealed(_)));
    let bytes = encode(&envelope);
    let plain_subject = "تعميم الموازنة 2027".as_bytes();
    assert!(!bytes.windows(plain_subject.len()).any(|w| w == plain_subject), "subject visible on the wire");
    let letter = scene.moh.sealing_key().open_content(&verified.content(), &Limits::default()).unwrap();
    assert_eq!(letter.outgoing_number, "MOF/2026/1187");
}

#[test]
fn a_third_agency_cannot_open_it() {
    let scene = scene();
    let content = confidential(&scene);
    let error = scene.outsider.sealing_key().open_content(&content, &Limits::default()).unwrap_err();
    assert_eq!(error.reason(), ReasonCode::NotSealedForRecipient);
    // Pretending to be a recipient does not help: the key was wrapped for another key.
    let mut relabelled = sealed_of(&content);
    relabelled.keys[0].agency = "MOI".into();
    relabelled.keys[0].certificate_sha256 = Bytes::copy_from_slice(&mirsal_envelope::sha256(
        &scene.outsider.sealing_certificate().to_der().unwrap(),
    ));
    let error =
        scene.outsider.sealing_key().open(content.header.as_ref().unwrap(), &relabelled, &Limits::default());
    assert_eq!(error.unwrap_err().reason(), ReasonCode::UnsealFailed);
}

fn assert_tamper_detected(tamper: impl Fn(&mut pb::Sealed)) {
    let scene = scene();
    let content = confidential(&scene);
    let header = content.header.clone().unwrap();
    for recipient in [&scene.moh, &scene.moe] {
        let mut sealed = sealed_of(&content);
        tamper(&mut sealed);
        let error = recipient.sealing_key().open(&header, &sealed, &Limits::default()).unwrap_err();
        assert!(matches!(error, SealError::UnsealFailed), "{}: {error}", recipient.code);
        assert_eq!(error.reason(), ReasonCode::UnsealFailed);
    }
}

fn flip(bytes: &Bytes, at: usize) -> Bytes {
    let mut changed = bytes.to_vec();
    changed[at] ^= 0x01;
    changed.into()
}

#[test]
fn a_tampered_ciphertext_fails_to_open() {
    assert_tamper_detected(|sealed| {
        sealed.ciphertext = flip(&sealed.ciphertext, sealed.ciphertext.len() / 2)
    });
}

#[test]
fn a_tampered_tag_or_nonce_fails_to_open() {
    assert_tamper_detected(|sealed| sealed.tag = flip(&sealed.tag, 0));
    assert_tamper_detected(|sealed| sealed.nonce = flip(&sealed.nonce, 11));
}

#[test]
fn a_tampered_wrapped_key_fails_to_open() {
    for position in [0, 13, 40, 59] {
        assert_tamper_detected(|sealed| {
            for key in &mut sealed.keys {
                let at = position.min(key.wrapped_key.len() - 1);
                key.wrapped_key = flip(&key.wrapped_key, at);
            }
        });
    }
}

#[test]
fn a_tampered_ephemeral_key_fails_to_open() {
    let scene = scene();
    let content = confidential(&scene);
    let mut sealed = sealed_of(&content);
    sealed.keys[0].ephemeral_public_key = flip(&sealed.keys[0].ephemeral_public_key, 40);
    let error = scene.moh.sealing_key().open(content.header.as_ref().unwrap(), &sealed, &Limits::default());
    assert_eq!(error.unwrap_err().reason(), ReasonCode::UnsealFailed);
}

#[test]
fn a_sealed_body_moved_into_another_envelope_fails_to_open() {
    let scene = scene();
    let content = confidential(&scene);
    let mut header = content.header.clone().unwrap();
    header.envelope_id = uuid::Uuid::now_v7().hyphenated().to_string();
    let error = scene.moh.sealing_key().open(&header, &sealed_of(&content), &Limits::default()).unwrap_err();
    assert_eq!(error.reason(), ReasonCode::UnsealFailed);
    let mut header = content.header.clone().unwrap();
    header.sender = "MOI".into();
    let error = scene.moh.sealing_key().open(&header, &sealed_of(&content), &Limits::default()).unwrap_err();
    assert_eq!(error.reason(), ReasonCode::UnsealFailed);
}

#[test]
fn confidential_and_secret_letters_refuse_to_build_unsealed() {
    let scene = scene();
    for classification in [pb::Classification::Confidential, pb::Classification::Secret] {
        let header = HeaderDraft::new("MOF").action("MOH").classification(classification);
        let error = Draft::letter(header, common::letter("x"))
            .build(&Policy::default(), scene.platform.now)
            .unwrap_err();
        assert!(matches!(error, ValidationError::SealingRequired(_)), "{error}");
        assert_eq!(error.reason(), ReasonCode::SealingRequired);
    }
}

#[test]
fn an_unsealed_confidential_letter_fails_verification() {
    let scene = scene();
    let header = HeaderDraft::new("MOF").action("MOH").classification(pb::Classification::Secret);
    let content = Draft::letter(header, common::letter("x"))
        .build_unsealed(&Policy::default(), scene.platform.now)
        .unwrap();
    let envelope = scene.mof.signer().sign(&content).unwrap();
    let error = scene.platform.verifier().verify(encode(&envelope), scene.platform.now).unwrap_err();
    assert_eq!(error.reason(), ReasonCode::SealingRequired);
}

#[test]
fn sealing_needs_a_valid_sealing_certificate_for_every_recipient() {
    let scene = scene();
    let draft = letter_draft(&scene.mof, &[&scene.moh, &scene.outsider]);
    let content = draft.build(&Policy::default(), scene.platform.now).unwrap();
    let trust = scene.platform.trust();
    let missing = seal_content(
        content.clone(),
        &[scene.moh.sealing_certificate()],
        &trust,
        &Policy::default(),
        scene.platform.now,
    )
    .unwrap_err();
    assert!(matches!(missing, SealError::MissingSealingCertificate(ref code) if code == "MOI"), "{missing}");
    // A signing certificate is not a sealing certificate.
    let wrong = seal_content(
        content.clone(),
        &[scene.moh.sealing_certificate(), scene.outsider.credentials.signing.certificate.clone()],
        &trust,
        &Policy::default(),
        scene.platform.now,
    )
    .unwrap_err();
    assert_eq!(wrong.reason(), ReasonCode::WrongKeyUsage);
    // A revoked sealing certificate is refused.
    let revoking = scene.platform.trust_revoking(&[&scene.outsider.credentials.sealing.certificate]);
    let revoked = seal_content(
        content,
        &[scene.moh.sealing_certificate(), scene.outsider.sealing_certificate()],
        &revoking,
        &Policy::default(),
        scene.platform.now,
    )
    .unwrap_err();
    assert_eq!(revoked.reason(), ReasonCode::CertificateRevoked);
}

#[test]
fn a_sealed_body_with_a_key_missing_for_a_recipient_is_invalid() {
    let scene = scene();
    let mut content = confidential(&scene);
    if let Some(Body::Sealed(sealed)) = &mut content.body {
        sealed.keys.pop();
    }
    let envelope = scene.mof.signer().sign(&content).unwrap();
    let error = scene.platform.verifier().verify(encode(&envelope), scene.platform.now).unwrap_err();
    assert_eq!(error.reason(), ReasonCode::InvalidSealed);
}
