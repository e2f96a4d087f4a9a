//! Two agencies issued by the PKI code: a signed letter verifies, and every single-byte
//! change to what was signed, or to the signature, is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::{Platform, encode, signed_letter};
use mirsal_envelope::{ReasonCode, VerifyError, pb::signed_content::Body};
use proptest::prelude::*;

#[test]
fn a_letter_signed_by_one_agency_verifies_for_the_other() {
    let platform = Platform::new();
    let (mof, moh) = (platform.agency("MOF"), platform.agency("MOH"));
    let envelope = signed_letter(&platform, &mof, &[&moh]);

    let verified = platform.verifier().verify(encode(&envelope), platform.now).unwrap();

    assert_eq!(verified.signer, mof.code);
    assert_eq!(verified.header.sender, "MOF");
    assert_eq!(verified.header.recipients[0].agency, "MOH");
    assert_eq!(verified.digest, mirsal_envelope::sha256(&envelope.signed_content));
    assert_eq!(verified.envelope, envelope, "the envelope comes back exactly as it was signed");
    let Body::Letter(letter) = &verified.body else { panic!("not a letter: {:?}", verified.body) };
    assert_eq!(letter.subject, "تعميم الموازنة 2027");
}

#[test]
fn rsa_pss_signatures_are_accepted() {
    let platform = Platform::new();
    let mof = platform.agency_with("MOF", mirsal_envelope::pki::KeyKind::Rsa(2048));
    let moh = platform.agency("MOH");
    let envelope = signed_letter(&platform, &mof, &[&moh]);
    assert_eq!(
        envelope.signature.as_ref().unwrap().algorithm(),
        mirsal_envelope::pb::SignatureAlgorithm::RsaPssSha256
    );
    platform.verifier().verify(encode(&envelope), platform.now).unwrap();
}

#[test]
fn the_verifier_gives_the_same_answer_from_its_chain_cache() {
    let platform = Platform::new();
    let (mof, moh) = (platform.agency("MOF"), platform.agency("MOH"));
    let verifier = platform.verifier();
    for _ in 0..3 {
        let envelope = signed_letter(&platform, &mof, &[&moh]);
        verifier.verify(encode(&envelope), platform.now).unwrap();
        let mut forged = envelope.clone();
        let mut value = forged.signature.as_ref().unwrap().value.to_vec();
        let last = value.len() - 1;
        value[last] ^= 1;
        forged.signature.as_mut().unwrap().value = value.into();
        assert_eq!(verifier.verify(encode(&forged), platform.now).unwrap_err(), VerifyError::BadSignature);
    }
}

fn flip(bytes: &Bytes, position: usize, mask: u8) -> Bytes {
    let mut changed = bytes.to_vec();
    changed[position] ^= mask;
    changed.into()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn flipping_any_byte_of_signed_content_fails(position in any::<prop::sample::Index>(), mask in 1..=255u8) {
        let (platform, envelope) = fixture();
        let mut tampered = envelope.clone();
        tampered.signed_content = flip(&envelope.signed_content, position.index(envelope.signed_content.len()), mask);
        let error = platform.verifier().verify(encode(&tampered), platform.now).unwrap_err();
        prop_assert_eq!(error.reason(), ReasonCode::BadSignature);
    }

    #[test]
    fn flipping_any_byte_of_the_signature_fails(position in any::<prop::sample::Index>(), mask in 1..=255u8) {
        let (platform, envelope) = fixture();
        let mut tampered = envelope.clone();
        let signature = tampered.signature.as_mut().unwrap();
        signature.value = flip(&signature.value, position.index(signature.value.len()), mask);
        let error = platform.verifier().verify(encode(&tampered), platform.now).unwrap_err();
        prop_assert_eq!(error, VerifyError::BadSignature);
    }
}

/// One platform and one signed envelope for all the property cases (issuing keys for
/// every case would make the test slow without making it stronger).
fn fixture() -> (&'static Platform, &'static mirsal_envelope::pb::Envelope) {
    use std::sync::OnceLock;
    static FIXTURE: OnceLock<(Platform, mirsal_envelope::pb::Envelope)> = OnceLock::new();
    let (platform, envelope) = FIXTURE.get_or_init(|| {
        let platform = Platform::new();
        let (mof, moh) = (platform.agency("MOF"), platform.agency("MOH"));
        let envelope = signed_letter(&platform, &mof, &[&moh]);
        (platform, envelope)
    });
    (platform, envelope)
}
