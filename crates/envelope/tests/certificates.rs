//! Each way a signer's certificate can be unfit fails with its own reason code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use chrono::Duration;
use common::{Agency, Platform, encode, letter_draft, signed_letter};
use mirsal_envelope::{
    AgencyCode, Policy, ReasonCode, SigningIdentity, TrustStore, Verifier, pb,
    pki::{Authority, KeyKind, Profile, Usage},
};
use openssl::{pkey::PKey, rsa::Rsa, x509::X509};
use prost::Message as _;

fn reason(platform: &Platform, verifier: &Verifier, envelope: &pb::Envelope) -> ReasonCode {
    verifier.verify(encode(envelope), platform.now).map(|_| ()).unwrap_err().reason()
}

/// Signs a letter from `from` to MOH with an arbitrary key and certificate.
fn signed_with(
    platform: &Platform,
    from: &str,
    key: PKey<openssl::pkey::Private>,
    cert: &X509,
) -> pb::Envelope {
    let moh = platform.agency("MOH");
    let sender =
        Agency { code: AgencyCode::new(from).unwrap(), credentials: platform.agency(from).credentials };
    let content = letter_draft(&sender, &[&moh]).build(&Policy::default(), platform.now).unwrap();
    let identity = SigningIdentity::new(key, std::slice::from_ref(cert)).unwrap();
    identity.sign_encoded(Bytes::from(content.encode_to_vec())).unwrap()
}

#[test]
fn a_certificate_from_another_ca_is_untrusted() {
    let platform = Platform::new();
    let impostor = Platform::new();
    let envelope = signed_letter(&impostor, &impostor.agency("MOF"), &[&impostor.agency("MOH")]);
    assert_eq!(reason(&platform, &platform.verifier(), &envelope), ReasonCode::UntrustedCertificate);
}

#[test]
fn an_expired_certificate_is_refused() {
    let platform = Platform::new();
    let profile = Profile::new("MOF", Usage::Signing, platform.now - Duration::days(400), 365);
    let issued = platform.authority.issue_new(KeyKind::EcP256, &profile).unwrap();
    let envelope = signed_with(&platform, "MOF", issued.key, &issued.certificate);
    assert_eq!(reason(&platform, &platform.verifier(), &envelope), ReasonCode::CertificateExpired);
}

#[test]
fn a_certificate_not_yet_valid_is_refused() {
    let platform = Platform::new();
    let profile = Profile::new("MOF", Usage::Signing, platform.now + Duration::days(2), 365);
    let issued = platform.authority.issue_new(KeyKind::EcP256, &profile).unwrap();
    let envelope = signed_with(&platform, "MOF", issued.key, &issued.certificate);
    assert_eq!(reason(&platform, &platform.verifier(), &envelope), ReasonCode::CertificateNotYetValid);
}

#[test]
fn a_revoked_certificate_is_refused_and_others_are_not() {
    let platform = Platform::new();
    let (mof, moh, moe) = (platform.agency("MOF"), platform.agency("MOH"), platform.agency("MOE"));
    let verifier =
        Verifier::new(platform.trust_revoking(&[&mof.credentials.signing.certificate]), Policy::default());
    let revoked = signed_letter(&platform, &mof, &[&moh]);
    assert_eq!(reason(&platform, &verifier, &revoked), ReasonCode::CertificateRevoked);
    let fine = signed_letter(&platform, &moe, &[&moh]);
    verifier.verify(encode(&fine), platform.now).unwrap();
}

#[test]
fn a_revocation_applies_from_its_date_on() {
    let platform = Platform::new();
    let (mof, moh) = (platform.agency("MOF"), platform.agency("MOH"));
    // The fixture revokes one minute before its `now`.
    let verifier =
        Verifier::new(platform.trust_revoking(&[&mof.credentials.signing.certificate]), Policy::default());
    let envelope = signed_letter(&platform, &mof, &[&moh]);
    let before_revocation = platform.now - Duration::minutes(2);
    verifier.verify(encode(&envelope), before_revocation).unwrap();
    assert_eq!(reason(&platform, &verifier, &envelope), ReasonCode::CertificateRevoked);
}

#[test]
fn a_stale_crl_means_nothing_is_trusted() {
    let platform = Platform::new();
    let (mof, moh) = (platform.agency("MOF"), platform.agency("MOH"));
    let envelope = signed_letter(&platform, &mof, &[&moh]);
    let verifier = platform.verifier();
    let after_next_update = platform.now + Duration::days(31);
    let error = verifier.verify(encode(&envelope), after_next_update).unwrap_err();
    // created_at is also far from that clock, but the certificate check comes first.
    assert_eq!(error.reason(), ReasonCode::RevocationUnavailable);
}

#[test]
fn a_sealing_certificate_cannot_sign() {
    let platform = Platform::new();
    let mof = platform.agency("MOF");
    let sealing = mof.credentials.sealing.clone();
    let envelope = signed_with(&platform, "MOF", sealing.key, &sealing.certificate);
    assert_eq!(reason(&platform, &platform.verifier(), &envelope), ReasonCode::WrongKeyUsage);
}

#[test]
fn a_ca_certificate_cannot_sign_letters() {
    let platform = Platform::new();
    let profile = Profile::new("MOF", Usage::Authority, platform.now, 30);
    let issued = platform.authority.issue_new(KeyKind::EcP256, &profile).unwrap();
    let envelope = signed_with(&platform, "MOF", issued.key, &issued.certificate);
    assert_eq!(reason(&platform, &platform.verifier(), &envelope), ReasonCode::WrongKeyUsage);
}

#[test]
fn a_weak_rsa_key_is_refused() {
    let platform = Platform::new();
    let key = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
    let cert =
        platform.authority.issue(&key, &Profile::new("MOF", Usage::Signing, platform.now, 30)).unwrap();
    // SigningIdentity refuses the weak key itself, so forge the signature by hand.
    let moh = platform.agency("MOH");
    let sender = platform.agency("MOF");
    let content = letter_draft(&sender, &[&moh]).build(&Policy::default(), platform.now).unwrap();
    let strong = sender.signer().sign(&content).unwrap();
    let mut envelope = strong.clone();
    let signature = envelope.signature.as_mut().unwrap();
    signature.certificate_chain = vec![cert.to_der().unwrap().into()];
    assert!(SigningIdentity::new(key, &[cert]).is_err());
    assert_eq!(reason(&platform, &platform.verifier(), &envelope), ReasonCode::WeakKey);
}

#[test]
fn a_header_sender_other_than_the_certificate_agency_is_refused() {
    let platform = Platform::new();
    let (mof, moh, moe) = (platform.agency("MOF"), platform.agency("MOH"), platform.agency("MOE"));
    // MOE writes a letter that claims to come from MOF and signs it with its own key.
    let content = letter_draft(&mof, &[&moh]).build(&Policy::default(), platform.now).unwrap();
    assert!(moe.signer().sign(&content).is_err(), "the signing API refuses to sign for another agency");
    let envelope = moe.signer().sign_encoded(Bytes::from(content.encode_to_vec())).unwrap();
    let error = platform.verifier().verify(encode(&envelope), platform.now).unwrap_err();
    assert_eq!(error.reason(), ReasonCode::SenderMismatch);
    assert!(error.to_string().contains("MOF") && error.to_string().contains("MOE"), "{error}");
}

#[test]
fn a_crl_not_signed_by_the_ca_is_refused_at_load() {
    let platform = Platform::new();
    let other = Authority::create("Other CA", KeyKind::EcP256, platform.now, 30).unwrap();
    let foreign_crl = other.crl(&[], 1, platform.now, 30).unwrap().to_pem().unwrap();
    let ca = platform.authority.certificate().to_pem().unwrap();
    let error = TrustStore::from_pem(&ca, &[&foreign_crl]).unwrap_err();
    assert!(error.to_string().contains("not signed by a trusted CA"), "{error}");
}

#[test]
fn an_unsigned_or_unknown_algorithm_is_refused() {
    let platform = Platform::new();
    let envelope = signed_letter(&platform, &platform.agency("MOF"), &[&platform.agency("MOH")]);
    let mut unsigned = envelope.clone();
    unsigned.signature = None;
    assert_eq!(reason(&platform, &platform.verifier(), &unsigned), ReasonCode::MissingField);
    let mut unknown = envelope.clone();
    unknown.signature.as_mut().unwrap().algorithm = 77;
    assert_eq!(reason(&platform, &platform.verifier(), &unknown), ReasonCode::UnsupportedAlgorithm);
    let mut mismatched = envelope;
    mismatched.signature.as_mut().unwrap().algorithm = pb::SignatureAlgorithm::RsaPssSha256 as i32;
    assert_eq!(reason(&platform, &platform.verifier(), &mismatched), ReasonCode::UnsupportedAlgorithm);
}
