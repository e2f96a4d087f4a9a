//! The real `mirsal-router` binary killed with SIGKILL in the middle of 1,000 letters,
//! then restarted: every letter reaches its inbox (a redelivery carries the identical
//! bytes and envelope id), none is lost, and tracking is complete.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::BTreeSet, time::Duration};

use mirsal_integration_tests::{
    eventually,
    platform::{Collector, Platform, letters, submit_all},
};
use mirsal_router::records::Status;

const LETTERS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_killed_mid_stream_loses_nothing() {
    let platform = Platform::new(&["A", "B"]).await;
    let mut router = platform.router_binary().spawn().unwrap();
    platform.wait_for_router().await;
    let collector = Collector::start(platform.agency("B"));
    let letters = letters(&platform, "A", "B", LETTERS);

    let submitting = submit_all(platform.agency("A"), &letters, Duration::from_secs(60));
    let killing = async {
        eventually(Duration::from_secs(60), "a first share of the letters to arrive", || async {
            (collector.distinct() >= LETTERS / 5).then_some(())
        })
        .await;
        router.start_kill().unwrap();
        let status = router.wait().await.unwrap();
        assert!(!status.success(), "the router was killed, not stopped: {status}");
    };
    tokio::join!(submitting, killing);
    let arrived_before_restart = collector.distinct();
    assert!(arrived_before_restart < LETTERS, "the kill came too late to test anything");

    let mut router = platform.router_binary().spawn().unwrap();
    eventually(Duration::from_secs(90), "every letter in B's inbox", || async {
        (collector.distinct() == LETTERS).then_some(())
    })
    .await;
    let received = collector.snapshot();
    assert_eq!(received, letters, "every letter arrived, with the bytes that were signed");
    // Letters the killed router had fanned out but not acknowledged come again, and the
    // new router finishes them (their accepted notices) after B already has them: wait
    // until the router reports every one completed.
    let client = reqwest::Client::new();
    let unfinished = std::sync::Mutex::new(letters.keys().cloned().collect::<BTreeSet<_>>());
    eventually(Duration::from_secs(90), "every letter completed (its accepted notice confirmed)", || async {
        let pending: Vec<String> = unfinished.lock().unwrap().iter().cloned().collect();
        for id in pending {
            let view: serde_json::Value = client
                .get(format!("{}/api/v1/envelopes/{id}", platform.http_url()))
                .bearer_auth(&platform.http_token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            if view["completed"] == true {
                unfinished.lock().unwrap().remove(&id);
            }
        }
        unfinished.lock().unwrap().is_empty().then_some(())
    })
    .await;

    let pid = router.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = router.wait().await.unwrap();
    assert!(status.success(), "the router stops cleanly on SIGTERM: {status}");

    let store = platform.store();
    for id in letters.keys() {
        let record = store.envelope(id).unwrap().unwrap_or_else(|| panic!("{id} is not in the archive"));
        assert!(record.completed, "{id}: the accepted notice was never confirmed");
        let row = store.tracking_row(id, platform.code("B")).unwrap().unwrap();
        let statuses: Vec<Status> = row.transitions.iter().map(|t| t.status()).collect();
        assert_eq!(statuses, vec![Status::Accepted, Status::Queued], "{id}");
    }
    store.close().await.unwrap();
    eprintln!(
        "{arrived_before_restart} letters had arrived when the router was killed; {} deliveries in all for {LETTERS} letters",
        collector.deliveries()
    );
    drop(collector);
    platform.cleanup().await;
}
