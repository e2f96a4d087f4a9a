//! The JSON view of envelopes, for people and integrators.
//!
//! Every wire message serializes with the canonical proto3 JSON mapping (enum names,
//! base64 bytes, RFC 3339 times). An [`Envelope`](pb::Envelope) on its own would show
//! `signed_content` as opaque base64, so [`envelope_view`] decodes it and describes the
//! signature's certificates. The binary protobuf stays the wire format: the view is for
//! reading, never for re-signing.

use openssl::x509::X509;
use prost::Message as _;
use serde_json::{Value, json};

use crate::{pb, time::from_asn1, trust::name_text};

/// A readable view of `envelope`: the digest of `signed_content`, the decoded content,
/// and the signature with each certificate described.
pub fn envelope_view(envelope: &pb::Envelope) -> Value {
    let content = match pb::SignedContent::decode(envelope.signed_content.clone()) {
        Ok(content) => serde_json::to_value(&content).unwrap_or_else(|e| json!({ "error": e.to_string() })),
        Err(e) => json!({ "error": format!("signed_content does not decode: {e}") }),
    };
    let signature = envelope.signature.as_ref().map(|signature| {
        json!({
            "algorithm": pb::SignatureAlgorithm::try_from(signature.algorithm)
                .map_or_else(|_| signature.algorithm.to_string(), |a| a.as_str_name().to_owned()),
            "value_hex": hex::encode(&signature.value),
            "certificate_chain": signature.certificate_chain.iter().map(|der| certificate_view(der)).collect::<Vec<_>>(),
        })
    });
    json!({
        "signed_content_sha256": hex::encode(crate::sha256(&envelope.signed_content)),
        "signed_content_bytes": envelope.signed_content.len(),
        "content": content,
        "signature": signature,
    })
}

/// Decodes `bytes` as an envelope and returns its [`envelope_view`].
///
/// # Errors
/// Bytes that are not an envelope.
pub fn envelope_view_bytes(bytes: &[u8]) -> Result<Value, prost::DecodeError> {
    pb::Envelope::decode(bytes).map(|envelope| envelope_view(&envelope))
}

/// Subject, issuer, serial, validity and SHA-256 of a DER certificate.
pub fn certificate_view(der: &[u8]) -> Value {
    let Ok(cert) = X509::from_der(der) else {
        return json!({ "error": "not a DER certificate", "sha256": hex::encode(crate::sha256(der)) });
    };
    let time = |t| from_asn1(t).map(|t| t.to_rfc3339());
    json!({
        "subject": name_text(cert.subject_name()),
        "issuer": name_text(cert.issuer_name()),
        "serial": crate::pki::serial_hex(&cert).ok(),
        "not_before": time(cert.not_before()),
        "not_after": time(cert.not_after()),
        "sha256": hex::encode(crate::sha256(der)),
    })
}
