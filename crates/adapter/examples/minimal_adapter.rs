//! A complete agency adapter on the SDK: it sends one letter with an attachment, then
//! stores every incoming item in a folder, acknowledges it and registers each letter
//! under an incoming number of its own. Stop it with Ctrl-C. Items are stored before
//! they are acknowledged, so an item seen again after a crash (see the crash-point
//! table in the crate docs) simply overwrites its own files.
//!
//! ```text
//! cargo run -p mirsal-adapter --example minimal_adapter -- BUNDLE_DIR RECIPIENT [FILE]
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use mirsal_adapter::{Adapter, AdapterConfig, Item, ItemBody, RefusalReason, StatusUpdate};
use mirsal_envelope::{attachment, pb};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(bundle), Some(recipient)) = (args.next(), args.next()) else {
        bail!("usage: minimal_adapter BUNDLE_DIR RECIPIENT [FILE]");
    };
    let bundle = PathBuf::from(bundle);
    let config = AdapterConfig::load(&bundle.join("adapter.toml")).context("loading the bundle")?;
    let adapter = Adapter::open(config).await.context("opening the adapter")?;

    // Send one letter with an attachment. The idempotency key is our own reference:
    // running the example again returns the same envelope id and sends nothing new.
    let file = args.next().map_or_else(|| bundle.join("adapter.toml"), PathBuf::from);
    let content = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.file_name().map_or("document".into(), |n| n.to_string_lossy().into_owned());
    let letter = pb::Letter {
        subject: "طلب بيانات الموازنة".into(),
        body: "نرجو التكرم بتزويدنا ببيانات الموازنة للربع الأول.".into(),
        language: "ar".into(),
        outgoing_number: "OUT/2026/1".into(),
        attachments: vec![pb::Attachment {
            main_document: true,
            ..attachment(name, "application/octet-stream", content)
        }],
        ..Default::default()
    };
    let header = adapter.header().action(recipient).priority(pb::Priority::Urgent);
    let id = adapter.send(header, letter, Some("example-OUT-2026-1")).await?;
    println!("sent {id}");

    let store = bundle.join("received");
    std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
    let mut incoming_number = 0u32;
    loop {
        let item = tokio::select! {
            item = adapter.next_item() => item?,
            _ = tokio::signal::ctrl_c() => break,
        };
        println!("{} {} from {}: {}", item.kind, item.id, item.sender, describe(&item));
        keep(&store, &item)?;
        adapter.ack(&item.id).await?; // for a letter, the `delivered` receipt goes out
        let update = match item.body {
            ItemBody::Letter(_) => {
                incoming_number += 1;
                let incoming_number = format!("IN/2026/{incoming_number}");
                StatusUpdate::Registered { incoming_number, incoming_date: String::new() } // today
            }
            ItemBody::Unreadable { .. } => {
                StatusUpdate::Refused { reason: RefusalReason::Unreadable, text: "cannot open it".into() }
            }
            ItemBody::Receipt(_) | ItemBody::Notice(_) => continue,
        };
        println!("  reported {}: receipt {}", update.name(), adapter.set_status(&item.id, update).await?);
    }
    adapter.shutdown().await; // what is still in the outbox is sent at the next start
    Ok(())
}

/// Stores the envelope as received (it verifies on its own) and the item as JSON, on
/// disk for good (`sync_all`) before the caller acknowledges it.
fn keep(store: &Path, item: &Item) -> Result<()> {
    for (extension, bytes) in [("pb", item.envelope.to_vec()), ("json", serde_json::to_vec_pretty(item)?)] {
        let path = store.join(format!("{}.{extension}", item.id));
        let mut file = std::fs::File::create(&path).context("creating an item's file")?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).context("writing an item")?;
    }
    Ok(())
}

fn describe(item: &Item) -> String {
    use pb::notice::Kind;
    match &item.body {
        ItemBody::Letter(letter) => format!("{} ({} attachments)", letter.subject, letter.attachments.len()),
        ItemBody::Unreadable { reason, .. } => format!("cannot open it: {reason}"),
        ItemBody::Receipt(receipt) => format!("about {}: {:?}", receipt.letter_id, receipt.status),
        ItemBody::Notice(n) => match &n.kind {
            Some(Kind::Accepted(a)) => format!("{} accepted, audit no. {}", n.subject_id, a.audit_sequence),
            Some(Kind::Rejected(r)) => format!("{} rejected: {:?} {}", n.subject_id, r.code(), r.text),
            _ => format!("about {}", n.subject_id),
        },
    }
}
