//! Mirsal's envelope: the wire contract and everything that can be done to an envelope
//! without touching a network or a disk.
//!
//! An agency builds a [`Draft`], which validates into a [`pb::SignedContent`]; a
//! confidential letter is [sealed](seal::seal_content) for its recipients; a
//! [`SigningIdentity`] signs the encoded content into a [`pb::Envelope`]. Whoever
//! receives the bytes hands them to a [`Verifier`], which checks the signature over the
//! exact bytes that were signed, the certificate chain against the platform CA and its
//! CRL, the certificate's agency against the header's sender, and every content rule,
//! before returning a [`VerifiedEnvelope`]. Every failure is a typed error that maps to
//! a stable [`ReasonCode`].
//!
//! # Layout
//! - [`pb`]: the generated wire types (`proto/mirsal/v1`) with their proto3 JSON mapping.
//! - [`code`]: agency codes and the platform's reserved code.
//! - [`policy`]: size limits and clock skew, the knobs of validation.
//! - [`validate`]: the content rules and their errors.
//! - [`draft`]: builders for letters, receipts, requests and notices.
//! - [`sign`]: signing identities and the signature algorithms.
//! - [`trust`]: the platform CA, the CRL and certificate checks.
//! - [`verify`]: envelope verification.
//! - [`seal`]: end-to-end sealing and opening of letters.
//! - [`pki`]: issuing the CA, platform and agency certificates and CRLs.
//! - [`json`]: the JSON view of envelopes for people and integrators.
//! - [`time`]: conversions between wire timestamps and [`Time`].

pub mod code;
pub mod draft;
pub mod json;
pub mod kind;
pub mod pb;
pub mod pki;
pub mod policy;
pub mod seal;
pub mod sign;
pub mod time;
pub mod trust;
pub mod validate;
pub mod verify;

pub use code::{AgencyCode, PLATFORM_CODE};
pub use draft::{Draft, HeaderDraft, attachment};
pub use kind::Kind;
pub use pb::ReasonCode;
pub use policy::{Limits, Policy};
pub use seal::{SealError, SealingKey};
pub use sign::{SignError, SigningIdentity};
pub use time::Time;
pub use trust::{TrustError, TrustStore};
pub use validate::ValidationError;
pub use verify::{VerifiedEnvelope, Verifier, VerifyError};

/// SHA-256 of `data`, the digest used everywhere in the contract.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    openssl::sha::sha256(data)
}
