//! Issuing the platform's certificates: the platform CA, the platform signing
//! certificate (CN `MIRSAL`), each agency's signing and sealing certificates (CN = the
//! agency code), and the CRL. Pure functions over keys and certificates; writing them
//! to disk is the caller's business (`mirsal pki`).

use openssl::{
    asn1::{Asn1Integer, Asn1Time},
    bn::{BigNum, MsbOption},
    ec::{EcGroup, EcKey},
    hash::MessageDigest,
    nid::Nid,
    pkey::{HasPublic, Id, PKey, PKeyRef, Private},
    rsa::Rsa,
    x509::{
        CrlNumber, X509, X509Builder, X509Crl, X509CrlBuilder, X509NameBuilder, X509RevokedBuilder,
        extension::{AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier},
    },
};

use crate::{AgencyCode, time::Time};

/// Why issuing failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{0} is reserved for the platform and cannot be issued to an agency")]
    ReservedCode(String),
    #[error("RSA keys must have at least 2048 bits, not {0}")]
    WeakRsa(u32),
    #[error("the validity period ends ({not_after}) before it starts ({not_before})")]
    EmptyValidity { not_before: Time, not_after: Time },
    #[error("cannot parse {what}: {source}")]
    Parse { what: &'static str, source: openssl::error::ErrorStack },
    #[error("the CA key does not belong to the CA certificate")]
    KeyMismatch,
    #[error("bad serial number {0:?}")]
    BadSerial(String),
    #[error(transparent)]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// The kind of key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA/ECDH on P-256, the default.
    EcP256,
    /// RSA with this many bits (2048 or more).
    Rsa(u32),
}

/// Generates a private key.
///
/// # Errors
/// RSA below 2048 bits; OpenSSL failures.
pub fn generate_key(kind: KeyKind) -> Result<PKey<Private>, PkiError> {
    match kind {
        KeyKind::EcP256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
        }
        KeyKind::Rsa(bits) if bits < 2048 => Err(PkiError::WeakRsa(bits)),
        KeyKind::Rsa(bits) => Ok(PKey::from_rsa(Rsa::generate(bits)?)?),
    }
}

/// What a certificate is for; decides its basic constraints and key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A certificate authority: keyCertSign and cRLSign.
    Authority,
    /// Signing envelopes: digitalSignature and nonRepudiation.
    Signing,
    /// Receiving sealed letters: keyAgreement (EC) or keyEncipherment (RSA).
    Sealing,
}

/// The subject and validity of a certificate to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub common_name: String,
    pub organization: Option<String>,
    pub usage: Usage,
    pub not_before: Time,
    pub not_after: Time,
}

impl Profile {
    /// A profile valid from `now` for `days` days.
    pub fn new(common_name: impl Into<String>, usage: Usage, now: Time, days: u32) -> Self {
        Self {
            common_name: common_name.into(),
            organization: None,
            usage,
            not_before: now,
            not_after: now + chrono::Duration::days(i64::from(days)),
        }
    }

    #[must_use]
    pub fn organization(mut self, organization: impl Into<String>) -> Self {
        self.organization = Some(organization.into());
        self
    }
}

/// A private key with the certificate issued for it.
#[derive(Clone)]
pub struct Issued {
    pub key: PKey<Private>,
    pub certificate: X509,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("certificate", &self.certificate).finish_non_exhaustive()
    }
}

impl Issued {
    /// The private key as PKCS#8 PEM.
    ///
    /// # Errors
    /// OpenSSL failures.
    pub fn key_pem(&self) -> Result<Vec<u8>, PkiError> {
        Ok(self.key.private_key_to_pem_pkcs8()?)
    }

    /// The certificate as PEM.
    ///
    /// # Errors
    /// OpenSSL failures.
    pub fn certificate_pem(&self) -> Result<Vec<u8>, PkiError> {
        Ok(self.certificate.to_pem()?)
    }
}

/// An agency's two certificates.
#[derive(Debug, Clone)]
pub struct AgencyCredentials {
    pub signing: Issued,
    pub sealing: Issued,
}

/// A revoked certificate, for the CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Serial number, hexadecimal.
    pub serial_hex: String,
    pub revoked_at: Time,
}

/// The platform CA: issues every certificate and the CRL.
#[derive(Clone)]
pub struct Authority {
    issued: Issued,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").field("certificate", &self.issued.certificate).finish_non_exhaustive()
    }
}

impl Authority {
    /// A new self-signed CA called `name`.
    ///
    /// # Errors
    /// An empty validity period; OpenSSL failures.
    pub fn create(name: &str, kind: KeyKind, now: Time, days: u32) -> Result<Self, PkiError> {
        let key = generate_key(kind)?;
        let profile = Profile::new(name, Usage::Authority, now, days);
        let certificate = build_certificate(&profile, &key, None, &key)?;
        Ok(Self { issued: Issued { key, certificate } })
    }

    /// Loads a CA from its PEM certificate and PEM private key.
    ///
    /// # Errors
    /// PEM that does not parse, or a key that is not the certificate's.
    pub fn from_pem(certificate_pem: &[u8], key_pem: &[u8]) -> Result<Self, PkiError> {
        let certificate = X509::from_pem(certificate_pem)
            .map_err(|source| PkiError::Parse { what: "CA certificate", source })?;
        let key = PKey::private_key_from_pem(key_pem)
            .map_err(|source| PkiError::Parse { what: "CA key", source })?;
        if !certificate.public_key()?.public_eq(&key) {
            return Err(PkiError::KeyMismatch);
        }
        Ok(Self { issued: Issued { key, certificate } })
    }

    pub fn certificate(&self) -> &X509 {
        &self.issued.certificate
    }

    /// The CA's key and certificate.
    pub fn issued(&self) -> &Issued {
        &self.issued
    }

    /// Issues a certificate for `public_key` with `profile`.
    ///
    /// # Errors
    /// An empty validity period; OpenSSL failures.
    pub fn issue<T: HasPublic>(&self, public_key: &PKeyRef<T>, profile: &Profile) -> Result<X509, PkiError> {
        build_certificate(profile, public_key, Some(&self.issued.certificate), &self.issued.key)
    }

    /// Generates a key of `kind` and issues a certificate for it.
    ///
    /// # Errors
    /// As [`issue`](Self::issue).
    pub fn issue_new(&self, kind: KeyKind, profile: &Profile) -> Result<Issued, PkiError> {
        let key = generate_key(kind)?;
        let certificate = self.issue(&key, profile)?;
        Ok(Issued { key, certificate })
    }

    /// The platform's notice-signing certificate (CN `MIRSAL`).
    ///
    /// # Errors
    /// As [`issue`](Self::issue).
    pub fn issue_platform(&self, kind: KeyKind, now: Time, days: u32) -> Result<Issued, PkiError> {
        let profile =
            Profile::new(crate::PLATFORM_CODE, Usage::Signing, now, days).organization("Mirsal platform");
        self.issue_new(kind, &profile)
    }

    /// An agency's signing and sealing certificates, CN = `code`, O = `name`.
    ///
    /// # Errors
    /// The platform's reserved code; as [`issue`](Self::issue).
    pub fn issue_agency(
        &self,
        code: &AgencyCode,
        name: &str,
        kind: KeyKind,
        now: Time,
        days: u32,
    ) -> Result<AgencyCredentials, PkiError> {
        if code.is_platform() {
            return Err(PkiError::ReservedCode(code.to_string()));
        }
        let profile = |usage| Profile::new(code.as_str(), usage, now, days).organization(name);
        Ok(AgencyCredentials {
            signing: self.issue_new(kind, &profile(Usage::Signing))?,
            sealing: self.issue_new(kind, &profile(Usage::Sealing))?,
        })
    }

    /// A CRL listing `revoked`, numbered `number`, valid from `now` for `days` days.
    ///
    /// # Errors
    /// A serial that is not hexadecimal; OpenSSL failures.
    pub fn crl(
        &self,
        revoked: &[Revocation],
        number: u64,
        now: Time,
        days: u32,
    ) -> Result<X509Crl, PkiError> {
        let ca = &self.issued.certificate;
        let mut builder = X509CrlBuilder::new()?;
        builder.set_issuer_name(ca.subject_name())?;
        builder.set_last_update(&*asn1_time(now)?)?;
        builder.set_next_update(&*asn1_time(now + chrono::Duration::days(i64::from(days)))?)?;
        let context_holder = X509Builder::new()?;
        let context = context_holder.x509v3_context(Some(ca), None);
        builder.append_extension(AuthorityKeyIdentifier::new().keyid(true).build(&context)?)?;
        builder.append_extension(CrlNumber::new(BigNum::from_dec_str(&number.to_string())?)?.build()?)?;
        for revocation in revoked {
            let serial = BigNum::from_hex_str(&revocation.serial_hex)
                .map_err(|_| PkiError::BadSerial(revocation.serial_hex.clone()))?;
            let mut entry = X509RevokedBuilder::new()?;
            entry.set_serial_number(&*Asn1Integer::from_bn(&serial)?)?;
            entry.set_revocation_date(&*asn1_time(revocation.revoked_at)?)?;
            builder.add_revoked(entry.build())?;
        }
        builder.sign(&self.issued.key, MessageDigest::sha256())?;
        Ok(builder.build()?)
    }
}

fn build_certificate<T: HasPublic>(
    profile: &Profile,
    subject_key: &PKeyRef<T>,
    issuer: Option<&X509>,
    issuer_key: &PKeyRef<Private>,
) -> Result<X509, PkiError> {
    if profile.not_after <= profile.not_before {
        return Err(PkiError::EmptyValidity { not_before: profile.not_before, not_after: profile.not_after });
    }
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, &profile.common_name)?;
    if let Some(organization) = &profile.organization {
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, organization)?;
    }
    let name = name.build();

    let mut builder = X509Builder::new()?;
    builder.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    builder.set_serial_number(&*Asn1Integer::from_bn(&serial)?)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(issuer.map_or(&*name, |ca| ca.subject_name()))?;
    builder.set_pubkey(subject_key)?;
    builder.set_not_before(&*asn1_time(profile.not_before)?)?;
    builder.set_not_after(&*asn1_time(profile.not_after)?)?;

    let is_rsa = subject_key.id() == Id::RSA;
    let (constraints, usage) = match profile.usage {
        Usage::Authority => (
            BasicConstraints::new().critical().ca().pathlen(0).build()?,
            KeyUsage::new().critical().key_cert_sign().crl_sign().build()?,
        ),
        Usage::Signing => (
            BasicConstraints::new().critical().build()?,
            KeyUsage::new().critical().digital_signature().non_repudiation().build()?,
        ),
        Usage::Sealing if is_rsa => (
            BasicConstraints::new().critical().build()?,
            KeyUsage::new().critical().key_encipherment().build()?,
        ),
        Usage::Sealing => {
            (BasicConstraints::new().critical().build()?, KeyUsage::new().critical().key_agreement().build()?)
        }
    };
    builder.append_extension(constraints)?;
    builder.append_extension(usage)?;
    let subject_key_id =
        SubjectKeyIdentifier::new().build(&builder.x509v3_context(issuer.map(|c| &**c), None))?;
    builder.append_extension(subject_key_id)?;
    if issuer.is_some() {
        let authority_key_id = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&builder.x509v3_context(issuer.map(|c| &**c), None))?;
        builder.append_extension(authority_key_id)?;
    }
    builder.sign(issuer_key, MessageDigest::sha256())?;
    Ok(builder.build())
}

fn asn1_time(time: Time) -> Result<Asn1Time, PkiError> {
    Ok(Asn1Time::from_unix(time.timestamp())?)
}

/// A certificate's serial number in hexadecimal, as the CRL and `mirsal pki list` show it.
///
/// # Errors
/// OpenSSL failures.
pub fn serial_hex(certificate: &X509) -> Result<String, PkiError> {
    Ok(certificate.serial_number().to_bn()?.to_hex_str()?.to_string())
}
