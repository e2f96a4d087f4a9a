//! A platform CA with agencies issued by the PKI code, shared by the envelope tests.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use chrono::{Duration, Utc};
use mirsal_envelope::{
    AgencyCode, Draft, HeaderDraft, Policy, SealingKey, SigningIdentity, Time, TrustStore, Verifier,
    attachment, pb,
    pki::{AgencyCredentials, Authority, KeyKind, Revocation},
};
use openssl::x509::X509;

pub struct Platform {
    pub authority: Authority,
    pub now: Time,
}

impl Platform {
    pub fn new() -> Self {
        let now = Utc::now();
        let authority =
            Authority::create("Mirsal Test CA", KeyKind::EcP256, now - Duration::days(1), 3650).unwrap();
        Self { authority, now }
    }

    pub fn agency(&self, code: &str) -> Agency {
        self.agency_with(code, KeyKind::EcP256)
    }

    pub fn agency_with(&self, code: &str, kind: KeyKind) -> Agency {
        let code = AgencyCode::new(code).unwrap();
        let credentials = self
            .authority
            .issue_agency(&code, &format!("Agency {code}"), kind, self.now - Duration::hours(1), 365)
            .unwrap();
        Agency { code, credentials }
    }

    pub fn crl(&self, revoked: &[&X509]) -> Vec<u8> {
        let revoked: Vec<Revocation> = revoked
            .iter()
            .map(|cert| Revocation {
                serial_hex: mirsal_envelope::pki::serial_hex(cert).unwrap(),
                revoked_at: self.now - Duration::minutes(1),
            })
            .collect();
        self.authority.crl(&revoked, 1, self.now - Duration::minutes(1), 30).unwrap().to_pem().unwrap()
    }

    pub fn trust(&self) -> TrustStore {
        self.trust_revoking(&[])
    }

    pub fn trust_revoking(&self, revoked: &[&X509]) -> TrustStore {
        let ca = self.authority.certificate().to_pem().unwrap();
        TrustStore::from_pem(&ca, &[&self.crl(revoked)]).unwrap()
    }

    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.trust(), Policy::default())
    }
}

pub struct Agency {
    pub code: AgencyCode,
    pub credentials: AgencyCredentials,
}

impl Agency {
    pub fn signer(&self) -> SigningIdentity {
        SigningIdentity::new(
            self.credentials.signing.key.clone(),
            std::slice::from_ref(&self.credentials.signing.certificate),
        )
        .unwrap()
    }

    pub fn sealing_key(&self) -> SealingKey {
        SealingKey::new(self.credentials.sealing.key.clone(), &self.credentials.sealing.certificate).unwrap()
    }

    pub fn sealing_certificate(&self) -> X509 {
        self.credentials.sealing.certificate.clone()
    }
}

/// A 2 KiB-ish letter with one attachment.
pub fn letter(subject: &str) -> pb::Letter {
    pb::Letter {
        subject: subject.into(),
        body: "تحية طيبة وبعد، نرفق لكم التعميم المالي للعام القادم.".repeat(8),
        language: "ar".into(),
        outgoing_number: "MOF/2026/1187".into(),
        outgoing_date: "2026-12-04".into(),
        attachments: vec![attachment("circular.pdf", "application/pdf", vec![0x25; 1024])],
        ..Default::default()
    }
}

pub fn letter_draft(from: &Agency, to: &[&Agency]) -> Draft {
    let header = to.iter().fold(HeaderDraft::new(from.code.as_str()), |h, a| h.action(a.code.as_str()));
    Draft::letter(header, letter("تعميم الموازنة 2027"))
}

pub fn signed_letter(platform: &Platform, from: &Agency, to: &[&Agency]) -> pb::Envelope {
    let content = letter_draft(from, to).build(&Policy::default(), platform.now).unwrap();
    from.signer().sign(&content).unwrap()
}

pub fn encode(envelope: &pb::Envelope) -> Vec<u8> {
    prost::Message::encode_to_vec(envelope)
}
