//! Every row of the adapter's crash-point table: the real `mirsal-adapter` process is
//! killed at that point, restarted, and the test checks that nothing was lost and
//! nothing was handed over twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use mirsal_adapter::crash;
use mirsal_integration_tests::{
    adapter_process::AdapterProcess,
    eventually,
    platform::{Bundle, PATIENCE, Platform, free_port},
};
use serde_json::Value;

/// Letters and receipts of one scenario, with the processes.
struct Scene {
    platform: Platform,
    a: Bundle,
    b: Bundle,
}

impl Scene {
    async fn new() -> Self {
        let mut platform = Platform::new(&["A", "B"]).await;
        platform.start_router().await;
        let (a, b) = (platform.bundle("A"), platform.bundle("B"));
        Self { platform, a, b }
    }

    fn b_code(&self) -> String {
        self.platform.code("B").to_owned()
    }

    /// B's letters from A, once B is up: exactly `ids`, each once.
    async fn b_has_exactly(&self, b: &AdapterProcess, ids: &[String]) {
        let letters = b.pending_of("letter", ids.len()).await;
        let mut got: Vec<String> = letters.iter().map(|l| l["id"].as_str().unwrap().to_owned()).collect();
        got.sort();
        let mut want = ids.to_vec();
        want.sort();
        assert_eq!(got, want, "B holds each letter once");
    }

    async fn finish(self) {
        self.platform.cleanup().await;
    }
}

/// Rows 1-3: the sender dies around the outbox.
async fn sender_dies_at(point: &str) {
    let scene = Scene::new().await;
    let b = AdapterProcess::start(&scene.b, None).await;
    let a = AdapterProcess::start(&scene.a, Some(point)).await;
    let first = a.send(&scene.b_code(), "ref-1").await;
    a.crashed().await;
    let a = AdapterProcess::start(&scene.a, None).await;
    // Whether or not the first call answered, a retry with its key names the same letter.
    let id = a.send(&scene.b_code(), "ref-1").await.unwrap();
    if let Ok(first) = first {
        assert_eq!(first, id);
    }
    scene.b_has_exactly(&b, std::slice::from_ref(&id)).await;
    eventually(PATIENCE, "the platform's acceptance in A's tracking", || async {
        (a.tracking(&id).await?["state"] == "accepted").then_some(())
    })
    .await;
    a.stop().await;
    b.stop().await;
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dies_after_the_outbox_write() {
    sender_dies_at(crash::OUTBOX_WRITTEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dies_after_publishing_before_the_confirm() {
    sender_dies_at(crash::PUBLISHED_UNCONFIRMED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dies_after_the_confirm_before_clearing_the_outbox() {
    sender_dies_at(crash::CONFIRMED_NOT_CLEARED).await;
}

/// Rows 4-5: the recipient dies around storing a delivery.
async fn recipient_dies_at(point: &str) {
    let scene = Scene::new().await;
    let a = AdapterProcess::start(&scene.a, None).await;
    let b = AdapterProcess::start(&scene.b, Some(point)).await;
    let id = a.send(&scene.b_code(), "ref-1").await.unwrap();
    b.crashed().await;
    let b = AdapterProcess::start(&scene.b, None).await;
    scene.b_has_exactly(&b, &[id]).await;
    a.stop().await;
    b.stop().await;
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dies_after_receiving_before_storing() {
    recipient_dies_at(crash::RECEIVED_NOT_STORED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dies_after_storing_before_acking_the_broker() {
    recipient_dies_at(crash::STORED_NOT_ACKED).await;
}

/// Row 6: the item reached the agency system (its webhook said 200) but the adapter
/// died before recording that: the item is pushed again, and then acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dies_after_handing_over_before_the_acknowledgement() {
    let scene = Scene::new().await;
    let received: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let hook = free_port();
    let counter = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(item): axum::Json<Value>| {
            let counter = Arc::clone(&counter);
            async move {
                if item["kind"] == "letter" {
                    *counter.lock().unwrap().entry(item["id"].as_str().unwrap().to_owned()).or_default() += 1;
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(hook).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = std::fs::read_to_string(&scene.b.config_path).unwrap();
    std::fs::write(&scene.b.config_path, format!("{config}\n[webhook]\nurl = \"http://{hook}/hook\"\n"))
        .unwrap();

    let a = AdapterProcess::start(&scene.a, None).await;
    let b = AdapterProcess::start(&scene.b, Some(crash::HANDED_NOT_ACKED)).await;
    let id = a.send(&scene.b_code(), "ref-1").await.unwrap();
    b.crashed().await;
    assert_eq!(received.lock().unwrap().get(&id), Some(&1));
    let b = AdapterProcess::start(&scene.b, None).await;
    eventually(PATIENCE, "the letter pushed again and acknowledged", || async {
        let pushed = received.lock().unwrap().get(&id).copied();
        (pushed == Some(2) && b.pending().await.iter().all(|i| i["id"] != id.as_str())).then_some(())
    })
    .await;
    // Acknowledged now: the delivered receipt reached A, once.
    let receipts = a.pending_of("receipt", 1).await;
    assert_eq!(receipts.len(), 1);
    a.stop().await;
    b.stop().await;
    scene.finish().await;
}

/// Row 7: the agency system acknowledged; the adapter died before publishing the
/// `delivered` receipt it queued with the acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dies_after_the_acknowledgement_before_the_receipt() {
    let scene = Scene::new().await;
    let a = AdapterProcess::start(&scene.a, None).await;
    let b = AdapterProcess::start(&scene.b, Some(crash::ACKED_NOT_RECEIPTED)).await;
    let id = a.send(&scene.b_code(), "ref-1").await.unwrap();
    let letters = b.pending_of("letter", 1).await;
    assert_eq!(letters[0]["id"], id.as_str());
    let _ = b.ack(&id).await;
    b.crashed().await;
    let b = AdapterProcess::start(&scene.b, None).await;
    assert!(
        b.pending().await.iter().all(|i| i["id"] != id.as_str()),
        "the acknowledgement survived the crash"
    );
    eventually(PATIENCE, "B delivered in A's tracking", || async {
        let tracking = a.tracking(&id).await?;
        (tracking["recipients"][0]["status"] == "delivered").then_some(())
    })
    .await;
    let receipts = a.pending_of("receipt", 1).await;
    assert_eq!(receipts.len(), 1, "one receipt, not two");
    a.stop().await;
    b.stop().await;
    scene.finish().await;
}
