//! Envelope verification.
//!
//! [`Verifier::verify`] takes the bytes as they arrived and checks, in order: the size
//! limit; that they decode; the signature's algorithm; the certificate chain (to a
//! platform CA, key usage, key strength, agency code); validity and revocation at the
//! given time; the signature over the exact `signed_content` bytes; that the content
//! decodes; that the header's sender is the certificate's agency; and every content
//! rule. Nothing is re-encoded on the way.
//!
//! The time-independent half of the certificate check is cached by the SHA-256 of the
//! chain, so a steady stream from the same agencies costs one signature verification
//! per envelope; validity and revocation are checked every time.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use bytes::Bytes;
use openssl::{sha::Sha256, x509::X509};
use prost::Message as _;

use crate::{
    AgencyCode, ReasonCode,
    pb::{self, SignatureAlgorithm},
    policy::Policy,
    sign::verify_digest,
    time::Time,
    trust::{CertificateError, CheckedChain, KeyPurpose, TrustStore},
    validate::{self, ValidationError},
};

/// How many verified chains the cache keeps before it starts over.
const CHAIN_CACHE_CAPACITY: usize = 4096;

/// Why an envelope failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("envelope of {size} bytes is over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("not a Mirsal envelope: {0}")]
    Malformed(prost::DecodeError),
    #[error("envelope has no signature")]
    MissingSignature,
    #[error("unsupported signature algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    #[error("signature does not verify")]
    BadSignature,
    #[error("signed content is not a SignedContent: {0}")]
    MalformedContent(prost::DecodeError),
    #[error("header sender {header:?} is not the certificate's agency {certificate}")]
    SenderMismatch { header: String, certificate: AgencyCode },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl VerifyError {
    /// The stable reason code reported for this error.
    pub fn reason(&self) -> ReasonCode {
        match self {
            Self::TooLarge { .. } => ReasonCode::TooLarge,
            Self::Malformed(_) => ReasonCode::MalformedEnvelope,
            Self::MissingSignature => ReasonCode::MissingField,
            Self::UnsupportedAlgorithm(_) => ReasonCode::UnsupportedAlgorithm,
            Self::Certificate(e) => e.reason(),
            Self::BadSignature => ReasonCode::BadSignature,
            Self::MalformedContent(_) => ReasonCode::MalformedContent,
            Self::SenderMismatch { .. } => ReasonCode::SenderMismatch,
            Self::Invalid(e) => e.reason(),
        }
    }
}

/// An envelope whose signature, signer and content all checked out.
#[derive(Debug, Clone)]
pub struct VerifiedEnvelope {
    /// The envelope as it arrived.
    pub envelope: pb::Envelope,
    /// The decoded header of `signed_content`.
    pub header: pb::Header,
    /// The decoded body of `signed_content`.
    pub body: pb::signed_content::Body,
    /// SHA-256 of `signed_content`: what receipts and the router's dedupe refer to.
    pub digest: [u8; 32],
    /// The signing agency (equal to the header's sender).
    pub signer: AgencyCode,
}

impl VerifiedEnvelope {
    /// The envelope id.
    pub fn id(&self) -> &str {
        &self.header.envelope_id
    }

    /// The content as one message again (header and body).
    pub fn content(&self) -> pb::SignedContent {
        pb::SignedContent { header: Some(self.header.clone()), body: Some(self.body.clone()) }
    }
}

/// Verifies envelopes against a trust store and a policy. Cheap to share between
/// threads (`&self` everywhere).
#[derive(Debug)]
pub struct Verifier {
    trust: TrustStore,
    policy: Policy,
    chains: RwLock<HashMap<[u8; 32], Arc<CheckedChain>>>,
}

impl Verifier {
    pub fn new(trust: TrustStore, policy: Policy) -> Self {
        Self { trust, policy, chains: RwLock::new(HashMap::new()) }
    }

    pub fn trust(&self) -> &TrustStore {
        &self.trust
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Verifies the encoded envelope `bytes` as of time `at` (normally now).
    ///
    /// # Errors
    /// The first check that fails; [`VerifyError::reason`] gives its reason code.
    pub fn verify(&self, bytes: impl Into<Bytes>, at: Time) -> Result<VerifiedEnvelope, VerifyError> {
        let bytes = bytes.into();
        let limit = self.policy.limits.max_envelope_bytes;
        if bytes.len() > limit {
            return Err(VerifyError::TooLarge { size: bytes.len(), limit });
        }
        let envelope = pb::Envelope::decode(bytes).map_err(VerifyError::Malformed)?;
        let (signer, digest) = self.check_signature(&envelope, at)?;
        let content = pb::SignedContent::decode(envelope.signed_content.clone())
            .map_err(VerifyError::MalformedContent)?;
        let sender = content.header.as_ref().map(|h| h.sender.as_str()).unwrap_or_default();
        if sender != signer.as_str() {
            return Err(VerifyError::SenderMismatch { header: sender.to_owned(), certificate: signer });
        }
        validate::validate(&content, &self.policy, at)?;
        let pb::SignedContent { header: Some(header), body: Some(body) } = content else {
            // `validate` refuses content without a header or a body.
            return Err(ValidationError::MissingField("header or body").into());
        };
        Ok(VerifiedEnvelope { signer, envelope, header, body, digest })
    }

    /// Checks only the signature of `envelope` and its signer's certificate at `at`,
    /// without decoding `signed_content`: for signed data that is not a
    /// `SignedContent`, such as the router's audit chain heads. Returns the signer.
    ///
    /// # Errors
    /// As [`verify`](Self::verify), for the signature and certificate checks.
    pub fn verify_detached(&self, envelope: &pb::Envelope, at: Time) -> Result<AgencyCode, VerifyError> {
        self.check_signature(envelope, at).map(|(signer, _)| signer)
    }

    /// The signer and the SHA-256 of `signed_content`, once the signature checks out.
    fn check_signature(
        &self,
        envelope: &pb::Envelope,
        at: Time,
    ) -> Result<(AgencyCode, [u8; 32]), VerifyError> {
        let signature = envelope.signature.as_ref().ok_or(VerifyError::MissingSignature)?;
        let algorithm = match SignatureAlgorithm::try_from(signature.algorithm) {
            Ok(SignatureAlgorithm::Unspecified) | Err(_) => {
                return Err(VerifyError::UnsupportedAlgorithm(signature.algorithm.to_string()));
            }
            Ok(algorithm) => algorithm,
        };
        let chain = self.checked_chain(&signature.certificate_chain)?;
        self.trust.check_current(&chain, at)?;
        let digest = crate::sha256(&envelope.signed_content);
        match verify_digest(&chain.public_key, algorithm, &digest, &signature.value) {
            Some(true) => Ok((chain.agency.clone(), digest)),
            Some(false) => Err(VerifyError::BadSignature),
            None => Err(VerifyError::UnsupportedAlgorithm(format!(
                "{} with the certificate's key type",
                algorithm.as_str_name()
            ))),
        }
    }

    fn checked_chain(&self, chain: &[Bytes]) -> Result<Arc<CheckedChain>, VerifyError> {
        if chain.is_empty() {
            return Err(CertificateError::Malformed("the signature carries no certificate".into()).into());
        }
        let mut hasher = Sha256::new();
        for der in chain {
            hasher.update(&(der.len() as u64).to_be_bytes());
            hasher.update(der);
        }
        let key = hasher.finish();
        if let Some(hit) = self.chains.read().ok().and_then(|cache| cache.get(&key).cloned()) {
            return Ok(hit);
        }
        let certificates = chain
            .iter()
            .map(|der| X509::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertificateError::Malformed(e.to_string()))?;
        let checked = Arc::new(self.trust.check_chain(&certificates, KeyPurpose::Signing)?);
        if let Ok(mut cache) = self.chains.write() {
            if cache.len() >= CHAIN_CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(key, Arc::clone(&checked));
        }
        Ok(checked)
    }
}
