//! Sign, verify, seal, open, encode and decode for a 2 KiB letter and for a letter with
//! a 1 MiB attachment. Run with `cargo bench -p mirsal-envelope`; compare the verify
//! rate with `openssl speed ecdsap256` on the same machine.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use chrono::{Duration, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mirsal_envelope::{
    AgencyCode, Draft, HeaderDraft, Policy, SealingKey, SigningIdentity, TrustStore, Verifier, attachment,
    pb,
    pki::{Authority, KeyKind},
    seal::seal_content,
};
use prost::Message as _;

struct Case {
    name: &'static str,
    content: pb::SignedContent,
}

fn cases() -> Vec<Case> {
    let header = || HeaderDraft::new("MOF").action("MOH");
    let small = pb::Letter {
        subject: "تعميم الموازنة العامة للسنة المالية 2027".into(),
        body: "تحية طيبة وبعد، ".repeat(60),
        language: "ar".into(),
        outgoing_number: "MOF/2026/1187".into(),
        outgoing_date: "2026-12-04".into(),
        ..Default::default()
    };
    let mut large = small.clone();
    large.attachments = vec![attachment("scan.pdf", "application/pdf", vec![0x5a; 1024 * 1024])];
    let now = Utc::now();
    let policy = Policy::default();
    vec![
        Case { name: "letter_2KiB", content: Draft::letter(header(), small).build(&policy, now).unwrap() },
        Case {
            name: "attachment_1MiB",
            content: Draft::letter(header(), large).build(&policy, now).unwrap(),
        },
    ]
}

fn envelope(c: &mut Criterion) {
    let now = Utc::now();
    let authority = Authority::create("Bench CA", KeyKind::EcP256, now - Duration::days(1), 30).unwrap();
    let issue = |code: &str| {
        authority
            .issue_agency(&AgencyCode::new(code).unwrap(), code, KeyKind::EcP256, now - Duration::days(1), 30)
            .unwrap()
    };
    let (mof, moh) = (issue("MOF"), issue("MOH"));
    let signer =
        SigningIdentity::new(mof.signing.key.clone(), std::slice::from_ref(&mof.signing.certificate))
            .unwrap();
    let sealing_key = SealingKey::new(moh.sealing.key.clone(), &moh.sealing.certificate).unwrap();
    let crl = authority.crl(&[], 1, now - Duration::hours(1), 30).unwrap().to_pem().unwrap();
    let trust_pem = authority.certificate().to_pem().unwrap();
    let trust = || TrustStore::from_pem(&trust_pem, &[&crl]).unwrap();
    let verifier = Verifier::new(trust(), Policy::default());
    let policy = Policy::default();
    let sealing_trust = trust();

    for case in cases() {
        let envelope = signer.sign(&case.content).unwrap();
        let bytes = envelope.encode_to_vec();
        let mut group = c.benchmark_group(case.name);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("sign", bytes.len()), |b| {
            b.iter(|| signer.sign(black_box(&case.content)).unwrap())
        });
        group.bench_function(BenchmarkId::new("verify", bytes.len()), |b| {
            b.iter(|| verifier.verify(black_box(bytes.clone()), now).unwrap())
        });
        let sealed = seal_content(
            case.content.clone(),
            std::slice::from_ref(&moh.sealing.certificate),
            &sealing_trust,
            &policy,
            now,
        )
        .unwrap();
        group.bench_function(BenchmarkId::new("seal", bytes.len()), |b| {
            b.iter(|| {
                seal_content(
                    black_box(case.content.clone()),
                    std::slice::from_ref(&moh.sealing.certificate),
                    &sealing_trust,
                    &policy,
                    now,
                )
                .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("open", bytes.len()), |b| {
            b.iter(|| sealing_key.open_content(black_box(&sealed), &policy.limits).unwrap())
        });
        group.bench_function(BenchmarkId::new("encode", bytes.len()), |b| {
            b.iter(|| black_box(&envelope).encode_to_vec())
        });
        let shared = bytes::Bytes::from(bytes.clone());
        group.bench_function(BenchmarkId::new("decode", bytes.len()), |b| {
            b.iter(|| {
                let envelope = pb::Envelope::decode(black_box(shared.clone())).unwrap();
                pb::SignedContent::decode(envelope.signed_content).unwrap()
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = envelope
}
criterion_main!(benches);
