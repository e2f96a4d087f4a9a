//! The numeric reason codes are part of the wire contract: this test pins every one.
//! Changing a number here is a breaking change for every agency; retire a code by
//! marking it `reserved` in reason.proto, never by reusing it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mirsal_envelope::ReasonCode;

const PINNED: &[(ReasonCode, i32, &str)] = &[
    (ReasonCode::Unspecified, 0, "REASON_CODE_UNSPECIFIED"),
    (ReasonCode::MalformedEnvelope, 100, "REASON_CODE_MALFORMED_ENVELOPE"),
    (ReasonCode::TooLarge, 101, "REASON_CODE_TOO_LARGE"),
    (ReasonCode::MalformedContent, 102, "REASON_CODE_MALFORMED_CONTENT"),
    (ReasonCode::MissingField, 103, "REASON_CODE_MISSING_FIELD"),
    (ReasonCode::InvalidField, 104, "REASON_CODE_INVALID_FIELD"),
    (ReasonCode::BadSignature, 200, "REASON_CODE_BAD_SIGNATURE"),
    (ReasonCode::UnsupportedAlgorithm, 201, "REASON_CODE_UNSUPPORTED_ALGORITHM"),
    (ReasonCode::MalformedCertificate, 202, "REASON_CODE_MALFORMED_CERTIFICATE"),
    (ReasonCode::UntrustedCertificate, 203, "REASON_CODE_UNTRUSTED_CERTIFICATE"),
    (ReasonCode::CertificateExpired, 204, "REASON_CODE_CERTIFICATE_EXPIRED"),
    (ReasonCode::CertificateNotYetValid, 205, "REASON_CODE_CERTIFICATE_NOT_YET_VALID"),
    (ReasonCode::CertificateRevoked, 206, "REASON_CODE_CERTIFICATE_REVOKED"),
    (ReasonCode::WrongKeyUsage, 207, "REASON_CODE_WRONG_KEY_USAGE"),
    (ReasonCode::WeakKey, 208, "REASON_CODE_WEAK_KEY"),
    (ReasonCode::SenderMismatch, 209, "REASON_CODE_SENDER_MISMATCH"),
    (ReasonCode::OriginMismatch, 210, "REASON_CODE_ORIGIN_MISMATCH"),
    (ReasonCode::RevocationUnavailable, 211, "REASON_CODE_REVOCATION_UNAVAILABLE"),
    (ReasonCode::InvalidAgencyCode, 300, "REASON_CODE_INVALID_AGENCY_CODE"),
    (ReasonCode::InvalidEnvelopeId, 301, "REASON_CODE_INVALID_ENVELOPE_ID"),
    (ReasonCode::NoRecipients, 302, "REASON_CODE_NO_RECIPIENTS"),
    (ReasonCode::DuplicateRecipient, 303, "REASON_CODE_DUPLICATE_RECIPIENT"),
    (ReasonCode::SenderIsRecipient, 304, "REASON_CODE_SENDER_IS_RECIPIENT"),
    (ReasonCode::EmptySubject, 305, "REASON_CODE_EMPTY_SUBJECT"),
    (ReasonCode::AttachmentDigestMismatch, 306, "REASON_CODE_ATTACHMENT_DIGEST_MISMATCH"),
    (ReasonCode::InvalidAttachment, 307, "REASON_CODE_INVALID_ATTACHMENT"),
    (ReasonCode::LimitExceeded, 308, "REASON_CODE_LIMIT_EXCEEDED"),
    (ReasonCode::ClockSkew, 309, "REASON_CODE_CLOCK_SKEW"),
    (ReasonCode::InvalidTimes, 310, "REASON_CODE_INVALID_TIMES"),
    (ReasonCode::Expired, 311, "REASON_CODE_EXPIRED"),
    (ReasonCode::SealingRequired, 312, "REASON_CODE_SEALING_REQUIRED"),
    (ReasonCode::InvalidSealed, 313, "REASON_CODE_INVALID_SEALED"),
    (ReasonCode::InvalidReceipt, 314, "REASON_CODE_INVALID_RECEIPT"),
    (ReasonCode::InvalidRequest, 315, "REASON_CODE_INVALID_REQUEST"),
    (ReasonCode::InvalidNotice, 316, "REASON_CODE_INVALID_NOTICE"),
    (ReasonCode::UnknownSender, 400, "REASON_CODE_UNKNOWN_SENDER"),
    (ReasonCode::SenderSuspended, 401, "REASON_CODE_SENDER_SUSPENDED"),
    (ReasonCode::UnknownRecipient, 402, "REASON_CODE_UNKNOWN_RECIPIENT"),
    (ReasonCode::RecipientSuspended, 403, "REASON_CODE_RECIPIENT_SUSPENDED"),
    (ReasonCode::ClassificationNotAllowed, 404, "REASON_CODE_CLASSIFICATION_NOT_ALLOWED"),
    (ReasonCode::ReplayConflict, 405, "REASON_CODE_REPLAY_CONFLICT"),
    (ReasonCode::NotARecipient, 406, "REASON_CODE_NOT_A_RECIPIENT"),
    (ReasonCode::ReceiptDigestMismatch, 407, "REASON_CODE_RECEIPT_DIGEST_MISMATCH"),
    (ReasonCode::UnknownEnvelope, 408, "REASON_CODE_UNKNOWN_ENVELOPE"),
    (ReasonCode::NotAuthorized, 409, "REASON_CODE_NOT_AUTHORIZED"),
    (ReasonCode::AlreadyDelivered, 410, "REASON_CODE_ALREADY_DELIVERED"),
    (ReasonCode::InvalidTransition, 411, "REASON_CODE_INVALID_TRANSITION"),
    (ReasonCode::NotSealedForRecipient, 500, "REASON_CODE_NOT_SEALED_FOR_RECIPIENT"),
    (ReasonCode::UnsealFailed, 501, "REASON_CODE_UNSEAL_FAILED"),
    (ReasonCode::Internal, 900, "REASON_CODE_INTERNAL"),
];

#[test]
fn every_reason_code_keeps_its_number_and_name() {
    for &(code, number, name) in PINNED {
        assert_eq!(code as i32, number, "{name}");
        assert_eq!(code.as_str_name(), name);
        assert_eq!(ReasonCode::from_str_name(name), Some(code));
    }
}

#[test]
fn no_reason_code_exists_that_is_not_pinned() {
    let pinned: Vec<i32> = PINNED.iter().map(|&(_, n, _)| n).collect();
    for number in -1..=10_000 {
        if ReasonCode::try_from(number).is_ok() {
            assert!(pinned.contains(&number), "reason code {number} is in the proto but not pinned here");
        }
    }
}
