//! End-to-end sealing: only the letter's recipients can read a sealed letter.
//!
//! The encoded `Letter` is encrypted with AES-256-GCM under a fresh content key; the
//! content key is wrapped for each recipient's sealing certificate, by ECDH-ES on P-256
//! with HKDF-SHA-256 or by RSA-OAEP-SHA-256. Both the content and every wrapped key are
//! bound to the envelope id and the sender through the GCM additional data, so a sealed
//! body cannot be moved into another envelope. The exact construction is written in
//! `proto/mirsal/v1/sealed.proto`.

use bytes::Bytes;
use openssl::{
    bn::BigNumContext,
    derive::Deriver,
    ec::{EcGroup, EcKey, EcPoint, PointConversionForm},
    encrypt::{Decrypter, Encrypter},
    hash::MessageDigest,
    md::Md,
    nid::Nid,
    pkey::{Id, PKey, Private, Public},
    pkey_ctx::PkeyCtx,
    rand::rand_bytes,
    rsa::Padding,
    symm::{Cipher, decrypt_aead, encrypt_aead},
    x509::X509,
};
use prost::Message as _;

use crate::{
    AgencyCode, ReasonCode,
    pb::{self, signed_content::Body},
    policy::{Limits, Policy},
    time::Time,
    trust::{CertificateError, KeyPurpose, TrustStore, agency_of, name_text},
    validate::{self, ValidationError},
};

pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
pub(crate) const P256_POINT_LEN: usize = 65;
pub(crate) const ECDH_WRAPPED_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("only a letter can be sealed")]
    NotALetter,
    #[error("the content is not sealed")]
    NotSealed,
    #[error("no sealing certificate given for recipient {0}")]
    MissingSealingCertificate(String),
    #[error("sealing certificate of {agency}: {source}")]
    Certificate { agency: String, source: CertificateError },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("the letter is not sealed for {0}'s sealing certificate")]
    NotSealedForRecipient(AgencyCode),
    #[error("cannot open the sealed letter: the key or the ciphertext was altered, or the key is not ours")]
    UnsealFailed,
    #[error("the opened letter does not decode: {0}")]
    MalformedLetter(prost::DecodeError),
    #[error("cannot parse {what}: {source}")]
    Parse { what: &'static str, source: openssl::error::ErrorStack },
    #[error("the sealing key does not belong to certificate {0}")]
    KeyMismatch(String),
    #[error(transparent)]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

impl SealError {
    /// The stable reason code reported for this error.
    pub fn reason(&self) -> ReasonCode {
        match self {
            Self::Invalid(e) => e.reason(),
            Self::Certificate { source, .. } => source.reason(),
            Self::NotSealedForRecipient(_) => ReasonCode::NotSealedForRecipient,
            Self::UnsealFailed | Self::MalformedLetter(_) => ReasonCode::UnsealFailed,
            Self::NotALetter | Self::NotSealed | Self::MissingSealingCertificate(_) => {
                ReasonCode::InvalidSealed
            }
            Self::Parse { .. } | Self::KeyMismatch(_) => ReasonCode::MalformedCertificate,
            Self::OpenSsl(_) => ReasonCode::Internal,
        }
    }
}

/// Replaces the plain letter of `content` by a [`pb::Sealed`] body that only its
/// recipients can open. `sealing_certificates` must hold a sealing certificate for
/// every recipient (extra ones are ignored); each is checked against `trust` at `now`.
///
/// # Errors
/// Content that is not a valid letter draft, a recipient without a valid sealing
/// certificate, OpenSSL failures.
pub fn seal_content(
    content: pb::SignedContent,
    sealing_certificates: &[X509],
    trust: &TrustStore,
    policy: &Policy,
    now: Time,
) -> Result<pb::SignedContent, SealError> {
    validate::validate_draft(&content, policy, now)?;
    let pb::SignedContent { header: Some(header), body: Some(Body::Letter(letter)) } = content else {
        return Err(SealError::NotALetter);
    };
    let mut recipients = Vec::with_capacity(header.recipients.len());
    for recipient in &header.recipients {
        let certificate = sealing_certificates
            .iter()
            .find(|cert| agency_of(cert).is_ok_and(|code| code.as_str() == recipient.agency))
            .ok_or_else(|| SealError::MissingSealingCertificate(recipient.agency.clone()))?;
        let checked = trust
            .check(std::slice::from_ref(certificate), KeyPurpose::Sealing, now)
            .map_err(|source| SealError::Certificate { agency: recipient.agency.clone(), source })?;
        recipients.push((recipient.agency.clone(), checked.public_key, checked.leaf_sha256));
    }

    let aad = additional_data(&header.envelope_id, &header.sender);
    let mut content_key = [0u8; KEY_LEN];
    rand_bytes(&mut content_key)?;
    let GcmOutput { nonce, ciphertext, tag } = aes_gcm_seal(&content_key, &aad, &letter.encode_to_vec())?;
    let keys = recipients
        .into_iter()
        .map(|(agency, public_key, certificate_sha256)| {
            wrap_key(&content_key, &agency, &public_key, &aad).map(
                |(algorithm, ephemeral_public_key, wrapped_key)| pb::WrappedKey {
                    agency,
                    certificate_sha256: Bytes::copy_from_slice(&certificate_sha256),
                    algorithm: algorithm as i32,
                    ephemeral_public_key,
                    wrapped_key,
                },
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sealed = pb::Sealed {
        cipher: pb::ContentCipher::Aes256Gcm as i32,
        nonce: Bytes::from(nonce),
        ciphertext: Bytes::from(ciphertext),
        tag: Bytes::from(tag),
        keys,
    };
    Ok(pb::SignedContent { header: Some(header), body: Some(Body::Sealed(sealed)) })
}

/// An agency's sealing private key with its certificate: what opens letters sealed for
/// it.
#[derive(Clone)]
pub struct SealingKey {
    key: PKey<Private>,
    agency: AgencyCode,
    certificate_sha256: [u8; 32],
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKey").field("agency", &self.agency).finish_non_exhaustive()
    }
}

impl SealingKey {
    /// A sealing key and its certificate.
    ///
    /// # Errors
    /// A key that is not the certificate's, or a CN that is not an agency code.
    pub fn new(key: PKey<Private>, certificate: &X509) -> Result<Self, SealError> {
        if !certificate.public_key()?.public_eq(&key) {
            return Err(SealError::KeyMismatch(name_text(certificate.subject_name())));
        }
        let agency = agency_of(certificate).map_err(|source| SealError::Certificate {
            agency: name_text(certificate.subject_name()),
            source,
        })?;
        Ok(Self { key, agency, certificate_sha256: crate::sha256(&certificate.to_der()?) })
    }

    /// Loads a PEM private key and its PEM certificate.
    ///
    /// # Errors
    /// As [`new`](Self::new), and PEM that does not parse.
    pub fn from_pem(key_pem: &[u8], certificate_pem: &[u8]) -> Result<Self, SealError> {
        let key = PKey::private_key_from_pem(key_pem)
            .map_err(|source| SealError::Parse { what: "sealing key", source })?;
        let certificate = X509::from_pem(certificate_pem)
            .map_err(|source| SealError::Parse { what: "sealing certificate", source })?;
        Self::new(key, &certificate)
    }

    pub fn agency(&self) -> &AgencyCode {
        &self.agency
    }

    /// Opens the sealed body of a (verified) envelope with header `header` and checks
    /// the letter inside against the content rules.
    ///
    /// # Errors
    /// [`SealError::NotSealedForRecipient`] when no key was wrapped for this
    /// certificate, [`SealError::UnsealFailed`] when anything was altered, and the
    /// letter's own validation errors.
    pub fn open(
        &self,
        header: &pb::Header,
        sealed: &pb::Sealed,
        limits: &Limits,
    ) -> Result<pb::Letter, SealError> {
        let wrapped = sealed
            .keys
            .iter()
            .find(|k| k.agency == self.agency.as_str() && k.certificate_sha256[..] == self.certificate_sha256)
            .ok_or_else(|| SealError::NotSealedForRecipient(self.agency.clone()))?;
        if sealed.cipher() != pb::ContentCipher::Aes256Gcm {
            return Err(SealError::UnsealFailed);
        }
        let aad = additional_data(&header.envelope_id, &header.sender);
        let content_key = self.unwrap_key(wrapped, &aad)?;
        let plaintext = decrypt_aead(
            Cipher::aes_256_gcm(),
            &content_key,
            Some(&sealed.nonce),
            &aad,
            &sealed.ciphertext,
            &sealed.tag,
        )
        .map_err(|_| SealError::UnsealFailed)?;
        let letter = pb::Letter::decode(plaintext.as_slice()).map_err(SealError::MalformedLetter)?;
        validate::validate_letter(&letter, limits)?;
        Ok(letter)
    }

    /// Opens `content` if it is sealed.
    ///
    /// # Errors
    /// [`SealError::NotSealed`] for any other body, and as [`open`](Self::open).
    pub fn open_content(
        &self,
        content: &pb::SignedContent,
        limits: &Limits,
    ) -> Result<pb::Letter, SealError> {
        match (&content.header, &content.body) {
            (Some(header), Some(Body::Sealed(sealed))) => self.open(header, sealed, limits),
            _ => Err(SealError::NotSealed),
        }
    }

    fn unwrap_key(&self, wrapped: &pb::WrappedKey, aad: &[u8]) -> Result<Vec<u8>, SealError> {
        match (wrapped.algorithm(), self.key.id()) {
            (pb::KeyWrapAlgorithm::EcdhEsP256HkdfSha256, Id::EC) => {
                if wrapped.wrapped_key.len() != ECDH_WRAPPED_LEN {
                    return Err(SealError::UnsealFailed);
                }
                let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
                let mut ctx = BigNumContext::new()?;
                let point = EcPoint::from_bytes(&group, &wrapped.ephemeral_public_key, &mut ctx)
                    .map_err(|_| SealError::UnsealFailed)?;
                let ephemeral = PKey::from_ec_key(EcKey::from_public_key(&group, &point)?)?;
                let kek =
                    key_encryption_key(&self.key, &ephemeral, &wrapped.ephemeral_public_key, &self.agency)
                        .map_err(|_| SealError::UnsealFailed)?;
                let (nonce, rest) = wrapped.wrapped_key.split_at(NONCE_LEN);
                let (encrypted, tag) = rest.split_at(KEY_LEN);
                decrypt_aead(Cipher::aes_256_gcm(), &kek, Some(nonce), aad, encrypted, tag)
                    .map_err(|_| SealError::UnsealFailed)
            }
            (pb::KeyWrapAlgorithm::RsaOaepSha256, Id::RSA) => {
                let mut decrypter = Decrypter::new(&self.key)?;
                decrypter.set_rsa_padding(Padding::PKCS1_OAEP)?;
                decrypter.set_rsa_oaep_md(MessageDigest::sha256())?;
                decrypter.set_rsa_mgf1_md(MessageDigest::sha256())?;
                decrypter.set_rsa_oaep_label(aad)?;
                let mut out = vec![0; decrypter.decrypt_len(&wrapped.wrapped_key)?];
                let len =
                    decrypter.decrypt(&wrapped.wrapped_key, &mut out).map_err(|_| SealError::UnsealFailed)?;
                out.truncate(len);
                if out.len() == KEY_LEN { Ok(out) } else { Err(SealError::UnsealFailed) }
            }
            _ => Err(SealError::UnsealFailed),
        }
    }
}

/// `"mirsal.v1.sealed" || 0 || envelope_id || 0 || sender`
fn additional_data(envelope_id: &str, sender: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(18 + envelope_id.len() + sender.len());
    aad.extend_from_slice(b"mirsal.v1.sealed\0");
    aad.extend_from_slice(envelope_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(sender.as_bytes());
    aad
}

/// Nonce, ciphertext and tag of one AES-256-GCM encryption.
struct GcmOutput {
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
}

fn aes_gcm_seal(key: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<GcmOutput, SealError> {
    let mut nonce = vec![0u8; NONCE_LEN];
    rand_bytes(&mut nonce)?;
    let mut tag = vec![0u8; TAG_LEN];
    let ciphertext = encrypt_aead(Cipher::aes_256_gcm(), key, Some(&nonce), aad, plaintext, &mut tag)?;
    Ok(GcmOutput { nonce, ciphertext, tag })
}

type Wrapped = (pb::KeyWrapAlgorithm, Bytes, Bytes);

fn wrap_key(
    content_key: &[u8],
    agency: &str,
    recipient: &PKey<Public>,
    aad: &[u8],
) -> Result<Wrapped, SealError> {
    if recipient.id() == Id::RSA {
        let mut encrypter = Encrypter::new(recipient)?;
        encrypter.set_rsa_padding(Padding::PKCS1_OAEP)?;
        encrypter.set_rsa_oaep_md(MessageDigest::sha256())?;
        encrypter.set_rsa_mgf1_md(MessageDigest::sha256())?;
        encrypter.set_rsa_oaep_label(aad)?;
        let mut out = vec![0; encrypter.encrypt_len(content_key)?];
        let len = encrypter.encrypt(content_key, &mut out)?;
        out.truncate(len);
        return Ok((pb::KeyWrapAlgorithm::RsaOaepSha256, Bytes::new(), Bytes::from(out)));
    }
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let ephemeral = EcKey::generate(&group)?;
    let mut ctx = BigNumContext::new()?;
    let ephemeral_public =
        ephemeral.public_key().to_bytes(&group, PointConversionForm::UNCOMPRESSED, &mut ctx)?;
    let ephemeral = PKey::from_ec_key(ephemeral)?;
    let agency = AgencyCode::new(agency)
        .map_err(|e| ValidationError::InvalidAgencyCode { field: "header.recipients.agency", code: e.0 })?;
    let kek = key_encryption_key(&ephemeral, recipient, &ephemeral_public, &agency)?;
    let GcmOutput { nonce, ciphertext, tag } = aes_gcm_seal(&kek, aad, content_key)?;
    let wrapped = [nonce, ciphertext, tag].concat();
    Ok((pb::KeyWrapAlgorithm::EcdhEsP256HkdfSha256, Bytes::from(ephemeral_public), Bytes::from(wrapped)))
}

/// ECDH between `ours` and `theirs`, then HKDF-SHA-256 with the ephemeral public key as
/// salt and `"mirsal.v1.kek" || 0 || recipient` as info.
fn key_encryption_key<T: openssl::pkey::HasPrivate, U: openssl::pkey::HasPublic>(
    ours: &PKey<T>,
    theirs: &PKey<U>,
    ephemeral_public: &[u8],
    recipient: &AgencyCode,
) -> Result<[u8; KEY_LEN], openssl::error::ErrorStack> {
    let mut deriver = Deriver::new(ours)?;
    deriver.set_peer(theirs)?;
    let shared = deriver.derive_to_vec()?;
    let mut hkdf = PkeyCtx::new_id(Id::HKDF)?;
    hkdf.derive_init()?;
    hkdf.set_hkdf_md(Md::sha256())?;
    hkdf.set_hkdf_key(&shared)?;
    hkdf.set_hkdf_salt(ephemeral_public)?;
    hkdf.add_hkdf_info(b"mirsal.v1.kek\0")?;
    hkdf.add_hkdf_info(recipient.as_str().as_bytes())?;
    let mut kek = [0u8; KEY_LEN];
    hkdf.derive(Some(&mut kek))?;
    Ok(kek)
}
