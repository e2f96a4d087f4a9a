//! The trust store: the platform CA certificates and their CRLs, and the checks every
//! signing and sealing certificate goes through.
//!
//! Checks come in two halves so a verifier can cache the first: [`TrustStore::check_chain`]
//! does what depends only on the certificates (chain to a trust anchor, key usage, key
//! strength, agency code); [`TrustStore::check_current`] does what depends on the time
//! and the current CRL (validity windows, revocation). Revocation fails closed: a
//! certificate whose issuer has no current CRL is not trusted.

use std::{cmp::Ordering, collections::HashMap};

use openssl::{
    nid::Nid,
    pkey::{Id, PKey, Public},
    stack::Stack,
    x509::{
        X509, X509Crl, X509KeyUsage, X509NameRef, X509Ref, X509StoreContext,
        store::{X509Store, X509StoreBuilder},
        verify::X509VerifyFlags,
    },
};

use crate::{
    AgencyCode, ReasonCode,
    time::{Time, unix_time},
};

/// What a certificate is for. Agencies hold one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPurpose {
    /// Signing envelopes (key usage digitalSignature or nonRepudiation).
    Signing,
    /// Receiving sealed letters (keyAgreement for EC keys, keyEncipherment for RSA).
    Sealing,
}

impl KeyPurpose {
    fn name(self) -> &'static str {
        match self {
            Self::Signing => "signing",
            Self::Sealing => "sealing",
        }
    }
}

/// A certificate that cannot be trusted for the purpose it was presented for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("malformed certificate: {0}")]
    Malformed(String),
    #[error("certificate {subject} does not chain to the platform CA: {problem}")]
    Untrusted { subject: String, problem: String },
    #[error("certificate {subject} expired at {not_after}")]
    Expired { subject: String, not_after: Time },
    #[error("certificate {subject} is not valid before {not_before}")]
    NotYetValid { subject: String, not_before: Time },
    #[error("certificate {subject} (serial {serial}) is revoked")]
    Revoked { subject: String, serial: String },
    #[error("certificate {subject} is not a {purpose} certificate (key usage)")]
    WrongKeyUsage { subject: String, purpose: &'static str },
    #[error("certificate {subject}: {problem}")]
    WeakKey { subject: String, problem: String },
    #[error("no current CRL for {issuer}: revocation cannot be checked")]
    RevocationUnavailable { issuer: String },
}

impl CertificateError {
    /// The stable reason code reported for this error.
    pub fn reason(&self) -> ReasonCode {
        match self {
            Self::Malformed(_) => ReasonCode::MalformedCertificate,
            Self::Untrusted { .. } => ReasonCode::UntrustedCertificate,
            Self::Expired { .. } => ReasonCode::CertificateExpired,
            Self::NotYetValid { .. } => ReasonCode::CertificateNotYetValid,
            Self::Revoked { .. } => ReasonCode::CertificateRevoked,
            Self::WrongKeyUsage { .. } => ReasonCode::WrongKeyUsage,
            Self::WeakKey { .. } => ReasonCode::WeakKey,
            Self::RevocationUnavailable { .. } => ReasonCode::RevocationUnavailable,
        }
    }
}

/// The trust store could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("no CA certificate in the trust anchors")]
    NoAnchors,
    #[error("cannot parse {what}: {source}")]
    Parse { what: &'static str, source: openssl::error::ErrorStack },
    #[error("the CRL issued by {0} is not signed by a trusted CA")]
    CrlNotFromAnchor(String),
    #[error("the CRL of {0} has no nextUpdate")]
    CrlWithoutNextUpdate(String),
    #[error("CA certificate {0} is not a CA (basic constraints or key usage)")]
    NotACa(String),
    #[error(transparent)]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// A certificate chain that passed [`TrustStore::check_chain`]: everything needed to
/// finish checking it at a given time, and the signer's key.
#[derive(Debug, Clone)]
pub struct CheckedChain {
    /// The agency named by the leaf certificate's CN.
    pub agency: AgencyCode,
    /// The leaf's public key.
    pub public_key: PKey<Public>,
    /// SHA-256 of the leaf certificate's DER.
    pub leaf_sha256: [u8; 32],
    /// Leaf first, trust anchor last.
    links: Vec<Link>,
}

#[derive(Debug, Clone)]
struct Link {
    subject: String,
    issuer: String,
    serial: Vec<u8>,
    not_before: i64,
    not_after: i64,
    is_anchor: bool,
}

#[derive(Debug)]
struct RevocationList {
    issuer: String,
    /// Serial → revocation time (Unix seconds).
    revoked: HashMap<Vec<u8>, i64>,
    next_update: i64,
}

/// The platform CA certificates and their CRLs.
pub struct TrustStore {
    anchors: Vec<X509>,
    store: X509Store,
    crls: Vec<RevocationList>,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field("anchors", &self.anchors)
            .field("crls", &self.crls)
            .finish_non_exhaustive()
    }
}

impl TrustStore {
    /// Loads the trust anchors (one or more PEM CA certificates) and their CRLs (PEM,
    /// each signed by one of the anchors).
    ///
    /// # Errors
    /// A certificate or CRL that does not parse, a CRL not signed by an anchor, a
    /// CA certificate that is not a CA.
    pub fn from_pem(ca_pem: &[u8], crl_pems: &[&[u8]]) -> Result<Self, TrustError> {
        let anchors = X509::stack_from_pem(ca_pem)
            .map_err(|source| TrustError::Parse { what: "CA certificates", source })?;
        if anchors.is_empty() {
            return Err(TrustError::NoAnchors);
        }
        let mut builder = X509StoreBuilder::new()?;
        for anchor in &anchors {
            let is_ca = anchor.key_usage().is_some_and(|usage| usage.contains(X509KeyUsage::KEY_CERT_SIGN));
            if !is_ca {
                return Err(TrustError::NotACa(name_text(anchor.subject_name())));
            }
            builder.add_cert(anchor.clone())?;
        }
        // Validity is checked by `check_current` at the caller's time, not the clock.
        builder.set_flags(X509VerifyFlags::NO_CHECK_TIME)?;
        let mut crls = Vec::new();
        for pem in crl_pems {
            let crl = X509Crl::from_pem(pem).map_err(|source| TrustError::Parse { what: "CRL", source })?;
            crls.push(load_crl(&crl, &anchors)?);
        }
        Ok(Self { anchors, store: builder.build(), crls })
    }

    /// The trust anchors.
    pub fn anchors(&self) -> &[X509] {
        &self.anchors
    }

    /// The earliest time one of the loaded CRLs goes stale; after it, certificates
    /// under that CA are refused until a fresh CRL is loaded.
    pub fn crl_next_update(&self) -> Option<Time> {
        self.crls.iter().map(|crl| crl.next_update).min().and_then(|t| Time::from_timestamp(t, 0))
    }

    /// Both halves of the certificate check, at time `at`.
    ///
    /// # Errors
    /// The first check the chain fails.
    pub fn check(
        &self,
        chain: &[X509],
        purpose: KeyPurpose,
        at: Time,
    ) -> Result<CheckedChain, CertificateError> {
        let checked = self.check_chain(chain, purpose)?;
        self.check_current(&checked, at)?;
        Ok(checked)
    }

    /// The time-independent checks: `chain` (leaf first) leads to a trust anchor, the
    /// leaf's key usage fits `purpose`, its key is P-256 or RSA of 2048 bits or more, and
    /// its CN is an agency code.
    ///
    /// # Errors
    /// The first check the chain fails.
    pub fn check_chain(&self, chain: &[X509], purpose: KeyPurpose) -> Result<CheckedChain, CertificateError> {
        let leaf =
            chain.first().ok_or_else(|| CertificateError::Malformed("empty certificate chain".into()))?;
        let subject = name_text(leaf.subject_name());
        let malformed =
            |e: openssl::error::ErrorStack| CertificateError::Malformed(format!("{subject}: {e}"));
        let mut untrusted = Stack::new().map_err(malformed)?;
        for cert in &chain[1..] {
            untrusted.push(cert.clone()).map_err(malformed)?;
        }
        let mut context = X509StoreContext::new().map_err(malformed)?;
        let built = context
            .init(&self.store, leaf, &untrusted, |ctx| {
                if ctx.verify_cert()? {
                    let chain = ctx.chain().map(|c| c.iter().map(X509Ref::to_owned).collect::<Vec<_>>());
                    Ok(Ok(chain.unwrap_or_default()))
                } else {
                    Ok(Err(ctx.error().error_string().to_owned()))
                }
            })
            .map_err(malformed)?
            .map_err(|problem| CertificateError::Untrusted { subject: subject.clone(), problem })?;

        check_key_usage(leaf, purpose, &subject)?;
        let public_key = leaf.public_key().map_err(malformed)?;
        check_key_strength(&public_key, &subject)?;
        let agency = agency_of(leaf)?;
        let links = built
            .iter()
            .map(|cert| {
                Ok(Link {
                    subject: name_text(cert.subject_name()),
                    issuer: name_text(cert.issuer_name()),
                    serial: cert.serial_number().to_bn()?.to_vec(),
                    not_before: unix_time(cert.not_before())?,
                    not_after: unix_time(cert.not_after())?,
                    is_anchor: self.is_anchor(cert),
                })
            })
            .collect::<Result<Vec<_>, openssl::error::ErrorStack>>()
            .map_err(malformed)?;
        let leaf_sha256 = crate::sha256(&leaf.to_der().map_err(malformed)?);
        Ok(CheckedChain { agency, public_key, leaf_sha256, links })
    }

    /// The time-dependent checks at `at`: every certificate of the chain is within its
    /// validity, the CRL of every issuer is current, and no certificate was revoked at or
    /// before `at`.
    ///
    /// # Errors
    /// The first check the chain fails.
    pub fn check_current(&self, chain: &CheckedChain, at: Time) -> Result<(), CertificateError> {
        let now = at.timestamp();
        for link in &chain.links {
            if now > link.not_after {
                return Err(CertificateError::Expired {
                    subject: link.subject.clone(),
                    not_after: Time::from_timestamp(link.not_after, 0).unwrap_or_default(),
                });
            }
            if now < link.not_before {
                return Err(CertificateError::NotYetValid {
                    subject: link.subject.clone(),
                    not_before: Time::from_timestamp(link.not_before, 0).unwrap_or_default(),
                });
            }
            if link.is_anchor {
                continue;
            }
            let crl = self
                .crls
                .iter()
                .find(|crl| crl.issuer == link.issuer && crl.next_update >= now)
                .ok_or_else(|| CertificateError::RevocationUnavailable { issuer: link.issuer.clone() })?;
            // A certificate revoked after `at` was still good at `at`: a letter signed
            // before its sender's revocation keeps its signature.
            if crl.revoked.get(&link.serial).is_some_and(|revoked_at| *revoked_at <= now) {
                return Err(CertificateError::Revoked {
                    subject: link.subject.clone(),
                    serial: hex::encode_upper(&link.serial),
                });
            }
        }
        Ok(())
    }

    fn is_anchor(&self, cert: &X509Ref) -> bool {
        let Ok(der) = cert.to_der() else { return false };
        self.anchors.iter().any(|anchor| anchor.to_der().is_ok_and(|a| a == der))
    }
}

fn load_crl(crl: &X509Crl, anchors: &[X509]) -> Result<RevocationList, TrustError> {
    let issuer = name_text(crl.issuer_name());
    let signer = anchors.iter().find(|anchor| {
        same_name(anchor.subject_name(), crl.issuer_name())
            && anchor.public_key().is_ok_and(|key| crl.verify(&key).unwrap_or(false))
    });
    if signer.is_none() {
        return Err(TrustError::CrlNotFromAnchor(issuer));
    }
    let next_update = crl.next_update().ok_or_else(|| TrustError::CrlWithoutNextUpdate(issuer.clone()))?;
    let next_update = unix_time(next_update)?;
    let mut revoked = HashMap::new();
    for entry in crl.get_revoked().into_iter().flatten() {
        revoked.insert(entry.serial_number().to_bn()?.to_vec(), unix_time(entry.revocation_date())?);
    }
    Ok(RevocationList { issuer, revoked, next_update })
}

fn check_key_usage(leaf: &X509Ref, purpose: KeyPurpose, subject: &str) -> Result<(), CertificateError> {
    let wrong = || CertificateError::WrongKeyUsage { subject: subject.to_owned(), purpose: purpose.name() };
    let usage = leaf.key_usage().ok_or_else(wrong)?;
    if usage.contains(X509KeyUsage::KEY_CERT_SIGN) {
        return Err(wrong());
    }
    let is_rsa = leaf.public_key().is_ok_and(|key| key.id() == Id::RSA);
    let fits = match purpose {
        KeyPurpose::Signing => {
            usage.intersects(X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::NON_REPUDIATION)
        }
        KeyPurpose::Sealing if is_rsa => usage.contains(X509KeyUsage::KEY_ENCIPHERMENT),
        KeyPurpose::Sealing => usage.contains(X509KeyUsage::KEY_AGREEMENT),
    };
    // A sealing key must not also sign and a signing key must not also seal: one key,
    // one job, so a compromise of one does not give the other.
    let other = match purpose {
        KeyPurpose::Signing => X509KeyUsage::KEY_AGREEMENT | X509KeyUsage::KEY_ENCIPHERMENT,
        KeyPurpose::Sealing => X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::NON_REPUDIATION,
    };
    if fits && !usage.intersects(other) { Ok(()) } else { Err(wrong()) }
}

/// Accepts EC keys on P-256 and RSA keys of at least 2048 bits.
pub(crate) fn check_key_strength(key: &PKey<Public>, subject: &str) -> Result<(), CertificateError> {
    let weak = |problem: String| CertificateError::WeakKey { subject: subject.to_owned(), problem };
    match key.id() {
        Id::EC => {
            let curve = key.ec_key().ok().and_then(|ec| ec.group().curve_name());
            if curve == Some(Nid::X9_62_PRIME256V1) {
                Ok(())
            } else {
                Err(weak("EC keys must be on P-256".into()))
            }
        }
        Id::RSA => {
            if key.bits() >= 2048 {
                Ok(())
            } else {
                Err(weak(format!("RSA key of {} bits; at least 2048 are required", key.bits())))
            }
        }
        other => Err(weak(format!("unsupported key type {other:?}"))),
    }
}

/// The agency code in a certificate's CN.
///
/// # Errors
/// [`CertificateError::Malformed`] when there is no CN or it is not an agency code.
pub fn agency_of(cert: &X509Ref) -> Result<AgencyCode, CertificateError> {
    let cn = cert
        .subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|entry| entry.data().to_string().ok())
        .ok_or_else(|| CertificateError::Malformed("certificate has no CN".into()))?;
    AgencyCode::new(cn).map_err(|e| CertificateError::Malformed(format!("certificate CN: {e}")))
}

/// A one-line rendering of a distinguished name, e.g. `CN=MOF, O=Ministry of Finance`.
pub fn name_text(name: &X509NameRef) -> String {
    name.entries()
        .map(|entry| {
            let key = entry.object().nid().short_name().unwrap_or("?");
            let value = entry.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn same_name(a: &X509NameRef, b: &X509NameRef) -> bool {
    a.try_cmp(b).is_ok_and(|ordering| ordering == Ordering::Equal)
}
