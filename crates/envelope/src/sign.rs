//! Signing identities and the two signature algorithms of the contract.
//!
//! The signature covers exactly the encoded `SignedContent` bytes placed in the
//! envelope; [`SigningIdentity::sign`] encodes once and signs those bytes.

use bytes::Bytes;
use openssl::{
    hash::MessageDigest,
    md::Md,
    pkey::{HasPublic, Id, PKey, PKeyRef, Private},
    pkey_ctx::PkeyCtx,
    rsa::Padding,
    sign::{RsaPssSaltlen, Signer},
    x509::X509,
};
use prost::Message as _;

use crate::{
    AgencyCode,
    pb::{self, SignatureAlgorithm},
    trust::{CertificateError, agency_of, check_key_strength, name_text},
};

/// Salt length of RSA-PSS signatures: the SHA-256 digest length.
const PSS_SALT_LEN: i32 = 32;

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot parse {what}: {source}")]
    Parse { what: &'static str, source: openssl::error::ErrorStack },
    #[error("the private key does not belong to certificate {0}")]
    KeyMismatch(String),
    #[error("no certificate given for the signing key")]
    NoCertificate,
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    #[error("header sender {header} is not the signing identity {identity}")]
    SenderMismatch { header: String, identity: AgencyCode },
    #[error("content has no header")]
    NoHeader,
    #[error(transparent)]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// A private signing key with its certificate chain (signer first).
#[derive(Clone)]
pub struct SigningIdentity {
    key: PKey<Private>,
    chain: Vec<Bytes>,
    agency: AgencyCode,
    algorithm: SignatureAlgorithm,
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("agency", &self.agency)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningIdentity {
    /// An identity from a private key and its certificate chain, signer first. The
    /// algorithm follows the key: ECDSA P-256/SHA-256 for EC, RSA-PSS/SHA-256 for RSA.
    ///
    /// # Errors
    /// A key that is not the certificate's, a weak key, or a CN that is not an agency
    /// code.
    pub fn new(key: PKey<Private>, chain: &[X509]) -> Result<Self, SignError> {
        let leaf = chain.first().ok_or(SignError::NoCertificate)?;
        if !leaf.public_key()?.public_eq(&key) {
            return Err(SignError::KeyMismatch(name_text(leaf.subject_name())));
        }
        let subject = name_text(leaf.subject_name());
        check_key_strength(&leaf.public_key()?, &subject)?;
        let algorithm = match key.id() {
            Id::RSA => SignatureAlgorithm::RsaPssSha256,
            _ => SignatureAlgorithm::EcdsaP256Sha256,
        };
        let chain = chain.iter().map(|c| c.to_der().map(Bytes::from)).collect::<Result<_, _>>()?;
        Ok(Self { key, chain, agency: agency_of(leaf)?, algorithm })
    }

    /// Loads a PEM private key (PKCS#8 or traditional) and a PEM certificate chain.
    ///
    /// # Errors
    /// As [`new`](Self::new), and PEM that does not parse.
    pub fn from_pem(key_pem: &[u8], chain_pem: &[u8]) -> Result<Self, SignError> {
        let key = PKey::private_key_from_pem(key_pem)
            .map_err(|source| SignError::Parse { what: "private key", source })?;
        let chain = X509::stack_from_pem(chain_pem)
            .map_err(|source| SignError::Parse { what: "certificate chain", source })?;
        Self::new(key, &chain)
    }

    /// The agency this identity signs for.
    pub fn agency(&self) -> &AgencyCode {
        &self.agency
    }

    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// The DER certificate chain carried in every signature.
    pub fn certificate_chain(&self) -> &[Bytes] {
        &self.chain
    }

    /// Encodes `content` and signs the encoding.
    ///
    /// # Errors
    /// [`SignError::SenderMismatch`] when the header's sender is not this identity's
    /// agency; OpenSSL failures.
    pub fn sign(&self, content: &pb::SignedContent) -> Result<pb::Envelope, SignError> {
        let header = content.header.as_ref().ok_or(SignError::NoHeader)?;
        if header.sender != self.agency.as_str() {
            return Err(SignError::SenderMismatch {
                header: header.sender.clone(),
                identity: self.agency.clone(),
            });
        }
        self.sign_encoded(Bytes::from(content.encode_to_vec()))
    }

    /// Signs already-encoded content as it is, without looking inside it.
    ///
    /// # Errors
    /// OpenSSL failures.
    pub fn sign_encoded(&self, signed_content: Bytes) -> Result<pb::Envelope, SignError> {
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key)?;
        if self.algorithm == SignatureAlgorithm::RsaPssSha256 {
            signer.set_rsa_padding(Padding::PKCS1_PSS)?;
            signer.set_rsa_pss_saltlen(RsaPssSaltlen::custom(PSS_SALT_LEN))?;
            signer.set_rsa_mgf1_md(MessageDigest::sha256())?;
        }
        let value = signer.sign_oneshot_to_vec(&signed_content)?;
        Ok(pb::Envelope {
            signed_content,
            signature: Some(pb::Signature {
                algorithm: self.algorithm as i32,
                value: Bytes::from(value),
                certificate_chain: self.chain.clone(),
            }),
        })
    }
}

/// Whether `signature` is a valid `algorithm` signature by `key` over the data whose
/// SHA-256 is `digest`. `None` when the algorithm does not fit the key type.
///
/// Taking the digest lets the verifier hash the content once for both the signature and
/// the digest it records, which matters for letters with large attachments.
pub(crate) fn verify_digest<T: HasPublic>(
    key: &PKeyRef<T>,
    algorithm: SignatureAlgorithm,
    digest: &[u8; 32],
    signature: &[u8],
) -> Option<bool> {
    let fits = matches!(
        (algorithm, key.id()),
        (SignatureAlgorithm::EcdsaP256Sha256, Id::EC) | (SignatureAlgorithm::RsaPssSha256, Id::RSA)
    );
    if !fits {
        return None;
    }
    let check = || -> Result<bool, openssl::error::ErrorStack> {
        let mut ctx = PkeyCtx::new(key)?;
        ctx.verify_init()?;
        ctx.set_signature_md(Md::sha256())?;
        if algorithm == SignatureAlgorithm::RsaPssSha256 {
            ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
            ctx.set_rsa_pss_saltlen(RsaPssSaltlen::custom(PSS_SALT_LEN))?;
            ctx.set_rsa_mgf1_md(Md::sha256())?;
        }
        ctx.verify(digest, signature)
    };
    // OpenSSL reports a malformed signature (bad DER, wrong length) as an error; for the
    // caller it is simply a signature that does not verify.
    Some(check().unwrap_or(false))
}
