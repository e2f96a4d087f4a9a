//! `mirsal audit verify` on a stopped router's data: passes on the untouched log, and
//! names the first bad event when one was altered, removed or moved.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use mirsal_envelope::pb;
use mirsal_integration_tests::platform::{Platform, binary_path};
use mirsal_router::records::AuditEvent;
use prost::Message as _;

fn audit_verify(platform: &Platform, data_dir: &Path) -> (bool, String) {
    let output = std::process::Command::new(binary_path("mirsal"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir)
        .arg("--pki-dir")
        .arg(platform.pki_dir())
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the router's data with `tamper` applied to its audit tree.
async fn tampered(
    platform: &Platform,
    name: &str,
    tamper: impl FnOnce(&mirsal_router::store::Table),
) -> std::path::PathBuf {
    let copy = platform.root().join(name);
    copy_dir(&platform.data_dir(), &copy);
    let store = mirsal_router::store::Store::open(&copy).unwrap();
    tamper(store.audit_tree());
    store.close().await.unwrap();
    copy
}

fn key(sequence: u64) -> [u8; 8] {
    sequence.to_be_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_untouched_and_catches_altered_removed_and_reordered_events() {
    let mut platform = Platform::new(&["A", "B"]).await;
    platform.start_router().await;
    let verifier = platform.verifier();
    let mut a = platform.agency("A").inbox(verifier.clone());
    let mut b = platform.agency("B").inbox(verifier.clone());
    for i in 0..3 {
        let (_, bytes) = platform.sign("A", platform.letter("A", &["B"], &format!("letter {i}")));
        platform.agency("A").submit(bytes).await;
        let letter = b.next().await;
        let delivered = pb::receipt::Status::Delivered(pb::Delivered {});
        let (_, receipt) = platform.receipt("B", &letter.verified, delivered);
        platform.agency("B").submit(receipt).await;
        a.next_matching("the receipt", |r| r.kind.as_deref() == Some("receipt")).await;
    }
    platform.stop_router().await;

    let (ok, text) = audit_verify(&platform, &platform.data_dir());
    assert!(ok, "{text}");
    // 3 letters: accepted + queued each; 3 receipts: one event each.
    assert!(text.contains("audit chain intact: 9 events"), "{text}");
    assert!(text.contains("1 signed heads") || text.contains("signed heads"), "{text}");

    let altered = tampered(&platform, "altered", |tree| {
        let mut event = AuditEvent::decode(tree.get(key(4)).unwrap().unwrap().as_ref()).unwrap();
        event.detail = "nothing happened here".into();
        tree.insert(key(4), event.encode_to_vec()).unwrap();
    })
    .await;
    let (ok, text) = audit_verify(&platform, &altered);
    assert!(!ok && text.contains("event 4 was altered"), "{text}");

    let removed = tampered(&platform, "removed", |tree| {
        tree.remove(key(5)).unwrap();
    })
    .await;
    let (ok, text) = audit_verify(&platform, &removed);
    assert!(!ok && text.contains("event 5 is missing"), "{text}");

    let reordered = tampered(&platform, "reordered", |tree| {
        let (two, three) = (tree.get(key(2)).unwrap().unwrap(), tree.get(key(3)).unwrap().unwrap());
        tree.insert(key(2), three).unwrap();
        tree.insert(key(3), two).unwrap();
    })
    .await;
    let (ok, text) = audit_verify(&platform, &reordered);
    assert!(!ok && text.contains("event 3: events were moved"), "{text}");

    // Cutting events off the end is caught by the signed head.
    let truncated = tampered(&platform, "truncated", |tree| {
        tree.remove(key(9)).unwrap();
    })
    .await;
    let (ok, text) = audit_verify(&platform, &truncated);
    assert!(!ok && text.contains("signed head at event 9"), "{text}");
    platform.cleanup().await;
}
