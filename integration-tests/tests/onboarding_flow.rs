//! The whole path through the public interfaces: `mirsal pki init` and `mirsal agency
//! add` onboard two agencies on the real broker; the router runs on that PKI and
//! directory; each agency's SDK opens from the bundle onboarding wrote; A sends, B
//! receives and registers the letter with an incoming number, and A sees it delivered
//! and registered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::Path, sync::Arc};

use mirsal_adapter::{Adapter, AdapterConfig, ItemBody, StatusUpdate};
use mirsal_envelope::pb;
use mirsal_integration_tests::{
    TestVhost, admin_password, eventually, management_base,
    platform::{PATIENCE, binary_path, free_port},
    unique_code,
};
use tokio_util::sync::CancellationToken;

fn mirsal(dir: &Path, vhost: &TestVhost, args: &[&str]) {
    let mut command = std::process::Command::new(binary_path("mirsal"));
    command
        .current_dir(dir)
        .args(args)
        .env("MIRSAL_PKI_DIR", "pki")
        .env("MIRSAL_DIRECTORY", "directory.json");
    if args.first() == Some(&"agency") {
        command.args(["--vhost", vhost.name(), "--management-url", &management_base()]).args([
            "--management-user",
            vhost.management().user(),
            "--management-password",
            &admin_password(),
        ]);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "mirsal {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarded_agencies_exchange_and_track_a_letter_through_the_sdk() {
    let vhost = TestVhost::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (unique_code("A"), unique_code("B"));
    mirsal(dir.path(), &vhost, &["pki", "init"]);
    for (code, name, name_ar) in [(&a, "Ministry A", "الوزارة أ"), (&b, "Ministry B", "الوزارة ب")]
    {
        let bundle = format!("bundles/{code}");
        let listen = free_port().to_string();
        let args = [
            "agency",
            "add",
            code,
            "--name",
            name,
            "--name-ar",
            name_ar,
            "--bundle-dir",
            &bundle,
            "--http-listen",
            &listen,
        ];
        mirsal(dir.path(), &vhost, &args);
    }

    let pki = dir.path().join("pki");
    let config = format!(
        "[broker]\nurl = {:?}\n\n[pki]\nca = {:?}\ncrl = {:?}\nplatform_key = {:?}\nplatform_certificate = {:?}\n\n\
         [storage]\ndata_dir = {:?}\n\n[directory]\npath = {:?}\n\n[http]\nlisten = \"{}\"\n\n[log]\nlevel = \"warn\"\n",
        vhost.amqp_url(),
        pki.join("ca.pem"),
        pki.join("crl.pem"),
        pki.join("platform.key"),
        pki.join("platform.pem"),
        dir.path().join("router"),
        dir.path().join("directory.json"),
        free_port(),
    );
    let config =
        mirsal_router::config::RouterConfig::parse(&config, Path::new("router.toml"), |_| None).unwrap();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let router =
        tokio::spawn(mirsal_router::run(config, Arc::default(), async move { stopped.cancelled().await }));

    let open =
        |code: &str| AdapterConfig::load(&dir.path().join(format!("bundles/{code}/adapter.toml"))).unwrap();
    let sender = Adapter::open(open(&a)).await.unwrap();
    let recipient = Adapter::open(open(&b)).await.unwrap();

    let letter = pb::Letter {
        subject: "طلب اجتماع تنسيقي".into(), body: "…".into(), ..Default::default()
    };
    let id = sender.send(sender.header().action(b.as_str()), letter, None).await.unwrap();
    let item = loop {
        let item = tokio::time::timeout(PATIENCE, recipient.next_item()).await.unwrap().unwrap();
        if item.id == id {
            break item;
        }
        recipient.ack(&item.id).await.unwrap();
    };
    let ItemBody::Letter(received) = &item.body else { panic!("{:?}", item.body) };
    assert_eq!(received.subject, "طلب اجتماع تنسيقي");
    recipient.ack(&id).await.unwrap();
    recipient
        .set_status(
            &id,
            StatusUpdate::Registered { incoming_number: "B/IN/1".into(), incoming_date: String::new() },
        )
        .await
        .unwrap();

    let tracking = eventually(PATIENCE, "delivered and registered in A's tracking", || async {
        let tracking = sender.sent(&id).unwrap()?;
        let statuses: Vec<&str> = tracking.recipients[0].timeline.iter().map(|s| s.status.as_str()).collect();
        (statuses.contains(&"delivered") && statuses.contains(&"registered")).then_some(tracking)
    })
    .await;
    assert_eq!(tracking.state, "accepted");
    assert_eq!(tracking.recipients[0].status, "registered");

    sender.shutdown().await;
    recipient.shutdown().await;
    stop.cancel();
    router.await.unwrap().unwrap();
    for code in [&a, &b] {
        mirsal(dir.path(), &vhost, &["agency", "remove", code]);
    }
    vhost.cleanup().await;
}
