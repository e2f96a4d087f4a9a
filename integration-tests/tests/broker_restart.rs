//! RabbitMQ itself restarted in the middle of 1,000 letters: the router, the sending
//! agency and the receiving agency all reconnect, every letter reaches its inbox and
//! tracking is complete.
//!
//! This test restarts the shared development broker, so it lives alone in its own test
//! binary (cargo runs test binaries one after another) and needs the rights to run
//! `deploy/dev/rabbitmq.sh restart` (root, or sudo without a password).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::PathBuf, time::Duration};

use mirsal_integration_tests::{
    eventually,
    platform::{Collector, Platform, letters, submit_all},
};
use mirsal_router::records::Status;

const LETTERS: usize = 1000;

fn restart_broker() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev/rabbitmq.sh");
    let status = std::process::Command::new("bash").arg(&script).arg("restart").status().unwrap();
    assert!(status.success(), "`bash {} restart` failed: {status}", script.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let mut platform = Platform::new(&["A", "B"]).await;
    platform.start_router().await;
    let collector = Collector::start(platform.agency("B"));
    let letters = letters(&platform, "A", "B", LETTERS);

    let submitting = submit_all(platform.agency("A"), &letters, Duration::from_secs(180));
    let restarting = async {
        eventually(Duration::from_secs(60), "a first share of the letters to arrive", || async {
            (collector.distinct() >= LETTERS / 5).then_some(())
        })
        .await;
        tokio::task::spawn_blocking(restart_broker).await.unwrap();
    };
    tokio::join!(submitting, restarting);

    eventually(Duration::from_secs(180), "every letter in B's inbox after the restart", || async {
        (collector.distinct() == LETTERS).then_some(())
    })
    .await;
    assert_eq!(collector.snapshot(), letters, "every letter arrived, with the bytes that were signed");

    platform.stop_router().await;
    let store = platform.store();
    for id in letters.keys() {
        let row =
            store.tracking_row(id, platform.code("B")).unwrap().unwrap_or_else(|| panic!("{id} not tracked"));
        assert_eq!(row.status(), Status::Queued, "{id}: {row:?}");
    }
    store.close().await.unwrap();
    eprintln!("{} deliveries in all for {LETTERS} letters", collector.deliveries());
    drop(collector);
    platform.cleanup().await;
}
