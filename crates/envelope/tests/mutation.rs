//! Malformed, truncated and randomly mutated envelopes: never a panic, never accepted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Platform, encode, signed_letter};
use mirsal_envelope::{ReasonCode, Verifier, pb};
use proptest::prelude::*;
use std::sync::OnceLock;

struct Fixture {
    platform: Platform,
    verifier: Verifier,
    bytes: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let platform = Platform::new();
        let (mof, moh) = (platform.agency("MOF"), platform.agency("MOH"));
        let bytes = encode(&signed_letter(&platform, &mof, &[&moh]));
        let verifier = platform.verifier();
        Fixture { platform, verifier, bytes }
    })
}

#[test]
fn the_unmodified_envelope_verifies() {
    let f = fixture();
    f.verifier.verify(f.bytes.clone(), f.platform.now).unwrap();
}

#[test]
fn every_truncation_is_refused() {
    let f = fixture();
    for len in 0..f.bytes.len() {
        let result = f.verifier.verify(f.bytes[..len].to_vec(), f.platform.now);
        assert!(result.is_err(), "a prefix of {len} bytes verified");
    }
}

#[test]
fn garbage_is_a_malformed_envelope() {
    let f = fixture();
    for garbage in [&b"\xff\xff\xff\xff"[..], b"hello, world", b"\x0a\xff\xff\xff\xff\x0f"] {
        let error = f.verifier.verify(garbage.to_vec(), f.platform.now).unwrap_err();
        assert_eq!(error.reason(), ReasonCode::MalformedEnvelope, "{garbage:?}");
    }
    let error = f.verifier.verify(Vec::new(), f.platform.now).unwrap_err();
    assert_eq!(error.reason(), ReasonCode::MissingField, "an empty envelope has no signature");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Any change anywhere in the encoded envelope (content, signature, certificate,
    /// framing) is refused, and nothing panics on the way.
    #[test]
    fn mutated_envelopes_never_verify(
        changes in prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4)
    ) {
        let f = fixture();
        let mut bytes = f.bytes.clone();
        for (position, mask) in &changes {
            let at = position.index(bytes.len());
            bytes[at] ^= mask;
        }
        prop_assume!(bytes != f.bytes);
        prop_assert!(f.verifier.verify(bytes, f.platform.now).is_err());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let f = fixture();
        prop_assert!(f.verifier.verify(bytes.clone(), f.platform.now).is_err());
        let _ = mirsal_envelope::json::envelope_view_bytes(&bytes);
    }

    /// Decoding the inner content from arbitrary bytes never panics either (the
    /// verifier only decodes authenticated bytes, but tools decode anything).
    #[test]
    fn content_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = <pb::SignedContent as prost::Message>::decode(bytes.as_slice());
        let envelope = pb::Envelope { signed_content: bytes.into(), signature: None };
        let _ = mirsal_envelope::json::envelope_view(&envelope);
    }
}
