//! Requests from agencies to the platform, answered with a signed notice in the
//! requester's inbox:
//! - the directory snapshot: every agency with its status and certificates (adapters
//!   take recipients' sealing certificates from it);
//! - the re-delivery of an archived envelope the requester sent or received, byte for
//!   byte as it was accepted, so its signature still verifies;
//! - recall is refused for now: a letter already in a recipient's queue cannot be taken
//!   back by the router.

use std::sync::Arc;

use chrono::Utc;
use mirsal_envelope::{ReasonCode, VerifiedEnvelope, pb};

use crate::{
    Router,
    pipeline::{Failure, publish_failure, publish_notice, refused},
    records::Kind,
    store::{Batch, NewEvent},
};

/// Serves `request` from the (verified, active) agency that signed it.
pub(crate) async fn serve(
    router: &Arc<Router>,
    verified: &VerifiedEnvelope,
    request: &pb::Request,
) -> Result<Kind, Failure> {
    let requester = verified.signer.as_str();
    let about = Some((verified.id(), verified.digest));
    let now = Utc::now();
    let notice = match &request.kind {
        Some(pb::request::Kind::Directory(_)) => {
            let agencies = router
                .directory()
                .agencies()
                .map(|agency| pb::DirectoryEntry {
                    code: agency.code.clone(),
                    name_en: agency.name_en.clone(),
                    name_ar: agency.name_ar.clone(),
                    status: agency.status.wire() as i32,
                    signing_certificate: der(&agency.signing_certificate),
                    sealing_certificate: der(&agency.sealing_certificate),
                })
                .collect();
            let crl = std::fs::read(&router.config.pki.crl)
                .ok()
                .and_then(|pem| openssl::x509::X509Crl::from_pem(&pem).ok())
                .and_then(|crl| crl.to_der().ok())
                .map(bytes::Bytes::from)
                .unwrap_or_default();
            router.notary.directory(requester, about, agencies, crl, now)
        }
        Some(pb::request::Kind::Redelivery(redelivery)) => {
            let id = redelivery.envelope_id.as_str();
            let record = router
                .store
                .envelope(id)?
                .filter(|record| record.kind().is_letter() || record.kind() == Kind::Receipt)
                .ok_or_else(|| {
                    refused(ReasonCode::UnknownEnvelope, format!("no envelope {id} in the archive"))
                })?;
            if record.sender != requester && !record.recipients.iter().any(|r| r == requester) {
                return Err(refused(
                    ReasonCode::NotAuthorized,
                    format!("{requester} neither sent nor received {id}"),
                ));
            }
            let mut batch = Batch::default();
            batch.event(NewEvent {
                kind: "retrieved",
                envelope_id: id.to_owned(),
                agency: requester.to_owned(),
                detail: format!("request {}", verified.id()),
                at_ms: now.timestamp_millis(),
            });
            router.store.commit(batch)?;
            router.notary.retrieval(requester, about, record.envelope, now)
        }
        Some(pb::request::Kind::Recall(_)) => {
            return Err(refused(
                ReasonCode::InvalidRequest,
                "recall is not supported: a letter in a recipient's queue cannot be withdrawn",
            ));
        }
        None => return Err(refused(ReasonCode::InvalidRequest, "the request has no kind")),
    }
    .map_err(|e| Failure::Transient(e.to_string()))?;
    publish_notice(router, requester, &notice).await.map_err(publish_failure)?;
    router.store.flush().await?;
    Ok(Kind::Request)
}

/// The DER of a PEM certificate from the directory, empty when it has none.
fn der(pem: &str) -> bytes::Bytes {
    openssl::x509::X509::from_pem(pem.as_bytes())
        .and_then(|cert| cert.to_der())
        .map(bytes::Bytes::from)
        .unwrap_or_default()
}
