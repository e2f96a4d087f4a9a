//! The letters of a run, signed before it starts.
//!
//! Every letter, and each recipient's `delivered` receipt for it, is built, validated
//! and signed here, on every core, before the timed phase: the receipt needs only the
//! letter's header and the SHA-256 of its `signed_content`, both known at signing
//! time. The benchmark's own signing therefore takes no CPU from the router or the
//! broker while they are measured. Letter bodies are padded so that each envelope is
//! about `--payload-bytes` long, the size of the raw benchmark's messages.

use std::{collections::HashMap, ops::Range};

use anyhow::Context as _;
use bytes::Bytes;
use chrono::Utc;
use mirsal_envelope::{Draft, HeaderDraft, Policy, SigningIdentity, pb, sha256};
use mirsal_integration_tests::platform::Platform;
use prost::Message as _;

/// An agency as the benchmark drives it.
#[derive(Debug)]
pub(crate) struct Party {
    /// The fixture's name for it (`A`, `R3`, …).
    pub(crate) name: String,
    pub(crate) code: String,
    signer: SigningIdentity,
}

impl Party {
    /// The parties `names` of `platform`, in that order.
    pub(crate) fn of(platform: &Platform, names: &[&str]) -> Vec<Self> {
        names
            .iter()
            .map(|name| {
                let agency = platform.agency(name);
                Self { name: (*name).to_owned(), code: agency.code.clone(), signer: agency.signer() }
            })
            .collect()
    }
}

/// Who sends a letter to whom (indices into the parties).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) sender: usize,
    pub(crate) recipients: Vec<usize>,
}

/// A signed envelope with its id.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub(crate) id: String,
    pub(crate) bytes: Bytes,
}

/// A signed letter and, when receipts are on, each recipient's signed receipt (in the
/// order of `recipients`).
#[derive(Debug)]
pub(crate) struct Letter {
    pub(crate) letter: Signed,
    pub(crate) sender: usize,
    pub(crate) recipients: Vec<usize>,
    pub(crate) receipts: Vec<Signed>,
}

/// What an envelope id in an inbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Letter(usize),
    /// The receipt of letter `.0` by its recipient at position `.1`.
    Receipt(usize, usize),
}

/// Every envelope id of `letters`, to look arrivals up by `message_id`.
pub(crate) fn index(letters: &[Letter]) -> HashMap<String, Entry> {
    let mut index = HashMap::with_capacity(letters.len() * 2);
    for (i, letter) in letters.iter().enumerate() {
        index.insert(letter.letter.id.clone(), Entry::Letter(i));
        for (position, receipt) in letter.receipts.iter().enumerate() {
            index.insert(receipt.id.clone(), Entry::Receipt(i, position));
        }
    }
    index
}

/// Signs one letter per plan, with receipts when `receipts`, on every core, calling
/// `progress` with the number signed as it goes.
///
/// # Errors
/// A draft that does not validate or a signature that fails (a bug, not a measurement).
pub(crate) fn sign_all(
    parties: &[Party],
    plans: &[Plan],
    envelope_bytes: usize,
    receipts: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<Vec<Letter>> {
    let body = body_for(parties, envelope_bytes)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = plans.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = plans
            .chunks(chunk)
            .enumerate()
            .map(|(c, plans)| {
                let body = body.as_str();
                scope.spawn(move || {
                    plans
                        .iter()
                        .enumerate()
                        .map(|(i, plan)| {
                            let letter = sign_letter(parties, plan, body, c * chunk + i, receipts)?;
                            progress(1);
                            Ok(letter)
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        let mut letters = Vec::with_capacity(plans.len());
        for worker in workers {
            let signed = worker.join().map_err(|_| anyhow::anyhow!("a signing thread panicked"))??;
            letters.extend(signed);
        }
        Ok(letters)
    })
}

/// A body that makes a one-recipient letter's envelope about `envelope_bytes` long.
fn body_for(parties: &[Party], envelope_bytes: usize) -> anyhow::Result<String> {
    anyhow::ensure!(parties.len() >= 2, "a letter needs a sender and another agency to receive it");
    let plan = Plan { sender: 0, recipients: vec![1] };
    let probe = sign_letter(parties, &plan, "", 0, false)?;
    let budget = envelope_bytes.saturating_sub(probe.letter.bytes.len() + 3);
    let phrase = "تحية طيبة وبعد، نفيدكم بأن الموازنة العامة للسنة المالية قيد الإعداد. ";
    let mut body = String::with_capacity(budget + phrase.len());
    while body.len() < budget {
        body.push_str(phrase);
    }
    let mut end = budget.min(body.len());
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body.truncate(end);
    Ok(body)
}

fn sign_letter(
    parties: &[Party],
    plan: &Plan,
    body: &str,
    number: usize,
    receipts: bool,
) -> anyhow::Result<Letter> {
    let sender = parties.get(plan.sender).context("no such sender")?;
    let mut header = HeaderDraft::new(sender.code.clone());
    for &recipient in &plan.recipients {
        header = header.action(parties.get(recipient).context("no such recipient")?.code.clone());
    }
    let draft = Draft::letter(
        header,
        pb::Letter {
            subject: format!("Benchmark letter {number}"),
            body: body.to_owned(),
            language: "ar".into(),
            outgoing_number: format!("{}/BENCH/{number}", sender.code),
            ..Default::default()
        },
    );
    let (letter, header, digest) = sign(&sender.signer, draft)?;
    let receipts = if receipts {
        plan.recipients
            .iter()
            .map(|&recipient| {
                let party = &parties[recipient];
                let status = pb::receipt::Status::Delivered(pb::Delivered {});
                let draft = Draft::receipt(party.code.clone(), &header, digest, status);
                sign(&party.signer, draft).map(|(receipt, _, _)| receipt)
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    Ok(Letter { letter, sender: plan.sender, recipients: plan.recipients.clone(), receipts })
}

/// Builds and signs `draft`; returns the envelope, its header and the digest of its
/// `signed_content`.
fn sign(signer: &SigningIdentity, draft: Draft) -> anyhow::Result<(Signed, pb::Header, [u8; 32])> {
    let content = draft.build(&Policy::default(), Utc::now()).context("building a draft")?;
    let header = content.header.clone().context("a built draft without a header")?;
    let signed_content = Bytes::from(content.encode_to_vec());
    let digest = sha256(&signed_content);
    let envelope = signer.sign_encoded(signed_content).context("signing")?;
    let signed = Signed { id: header.envelope_id.clone(), bytes: Bytes::from(envelope.encode_to_vec()) };
    Ok((signed, header, digest))
}

/// Plans for `count` letters around a ring of `parties` agencies: letter `i` goes from
/// agency `i mod n` to the next one, so every agency sends and receives the same share.
pub(crate) fn ring(parties: usize, count: usize) -> Vec<Plan> {
    (0..count).map(|i| Plan { sender: i % parties, recipients: vec![(i + 1) % parties] }).collect()
}

/// The mean envelope size of the letters in `range`.
pub(crate) fn mean_size(letters: &[Letter], range: Range<usize>) -> usize {
    let sizes: Vec<usize> = letters[range].iter().map(|l| l.letter.bytes.len()).collect();
    sizes.iter().sum::<usize>() / sizes.len().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_sends_to_the_next_agency() {
        let plans = ring(4, 8);
        assert_eq!(plans[0].sender, 0);
        assert_eq!(plans[0].recipients, vec![1]);
        assert_eq!(plans[3].recipients, vec![0]);
        assert_eq!(plans.iter().filter(|p| p.sender == 2).count(), 2);
    }
}
