//! Onboarding against the real broker, through the real `mirsal` binary: `mirsal agency
//! add` creates the agency's user with exactly the permissions of DESIGN.md, its inbox
//! with the router's own arguments, and an adapter bundle that works; `suspend` only
//! changes the directory; `remove` takes the user away and revokes the certificates.
//!
//! The binary must have been built (`cargo build -p mirsal-cli`; `scripts/test` builds
//! every binary first).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt as _,
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    time::Duration,
};

use bytes::Bytes;
use futures_util::FutureExt as _;
use mirsal_bus::{
    Backoff, Bus, BusConfig, Outgoing, headers,
    lapin::{
        Connection, ConnectionProperties, options::BasicConsumeOptions, types::FieldTable, uri::AMQPUri,
    },
    management::Permissions,
    topology::{self, DELIVER_EXCHANGE, INGRESS_QUEUE, QueueSettings, SUBMIT_EXCHANGE},
};
use mirsal_integration_tests::{
    TestVhost, amqp_base, eventually, management_base, platform::binary_path, unique_code, within,
};
use serde_json::Value;
use uuid::Uuid;

/// The longest any one step may take.
const WAIT: Duration = Duration::from_secs(20);

/// The `mirsal` binary, run in a temporary folder of its own against the test vhost.
struct Cli {
    dir: tempfile::TempDir,
    broker_flags: Vec<String>,
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Cli {
    fn new(vhost: &TestVhost) -> Self {
        let admin: AMQPUri = amqp_base().parse().unwrap();
        let broker_flags = [
            "--vhost",
            vhost.name(),
            "--management-url",
            &management_base(),
            "--management-user",
            &admin.authority.userinfo.username,
            "--management-password",
            &admin.authority.userinfo.password,
        ]
        .map(str::to_owned)
        .to_vec();
        Self { dir: tempfile::tempdir().unwrap(), broker_flags }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `mirsal ARGS`, with the PKI and the directory in this folder (and `--broker`
    /// flags when `broker`).
    async fn output(&self, args: &[&str], broker: bool) -> Output {
        let mut command = tokio::process::Command::new(binary_path("mirsal"));
        command.current_dir(self.dir.path()).args(args);
        if args.first() != Some(&"pki") {
            command.args(["--directory", "directory.json"]);
        }
        command.args(["--pki-dir", "pki"]);
        if broker {
            command.args(&self.broker_flags);
        }
        let output = within(WAIT, "the mirsal command", command.output()).await.unwrap();
        Output {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// Runs a command that must succeed; returns its stdout.
    async fn run(&self, args: &[&str], broker: bool) -> String {
        let output = self.output(args, broker).await;
        assert_eq!(output.code, Some(0), "mirsal {args:?} failed: {}{}", output.stdout, output.stderr);
        output.stdout
    }

    async fn list(&self, what: &str) -> Vec<Value> {
        let json = self.run(&[what, "list", "--json"], false).await;
        serde_json::from_str(&json).unwrap()
    }

    async fn status(&self, code: &str) -> String {
        let agencies = self.list("agency").await;
        let agency =
            agencies.iter().find(|a| a["code"] == code).unwrap_or_else(|| panic!("{code} not listed"));
        agency["status"].as_str().unwrap().to_owned()
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// The `section.key = "string"` pairs of `adapter.toml` (top-level keys without a
/// section). The file `mirsal agency add` writes holds only strings; the CLI's own unit
/// tests parse it with a full TOML parser, this checks the file on disk.
fn adapter_toml(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut section = String::new();
    let mut keys = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = format!("{name}.");
            continue;
        }
        let (key, rest) = line.split_once('=').unwrap_or_else(|| panic!("not a key = value line: {line:?}"));
        let rest = rest.trim().strip_prefix('"').unwrap_or_else(|| panic!("not a string: {line:?}"));
        let (value, after) = rest.split_once('"').unwrap_or_else(|| panic!("unterminated string: {line:?}"));
        let after = after.trim();
        assert!(after.is_empty() || after.starts_with('#'), "trailing text in {line:?}");
        assert!(!value.contains('\\'), "an escape in {line:?}");
        let previous = keys.insert(format!("{section}{}", key.trim()), value.to_owned());
        assert!(previous.is_none(), "{key} twice in {}", path.display());
    }
    keys
}

fn fast(mut config: BusConfig) -> BusConfig {
    config.backoff = Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(500) };
    config
}

fn message(exchange: &str, routing_key: &str, id: &str, user_id: Option<&str>) -> Outgoing {
    let properties = headers::envelope_properties(id);
    Outgoing {
        exchange: exchange.to_owned(),
        routing_key: routing_key.to_owned(),
        payload: Bytes::from(format!("envelope {id}")),
        properties: match user_id {
            Some(user_id) => properties.with_user_id(user_id.into()),
            None => properties,
        },
        mandatory: true,
    }
}

fn new_id() -> String {
    Uuid::now_v7().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_creates_exactly_what_an_agency_needs_and_removal_takes_it_away() {
    let vhost = TestVhost::new().await;
    let (a, b) = (unique_code("ONBOARD-A"), unique_code("ONBOARD-B"));
    let outcome = AssertUnwindSafe(scenario(&vhost, &a, &b)).catch_unwind().await;
    // The CLI made these users, so the fixture does not know them: delete them whatever
    // happened (a user that is already gone is not an error).
    for code in [&a, &b] {
        vhost.management().delete_user(code).await.unwrap();
    }
    vhost.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(vhost: &TestVhost, a: &str, b: &str) {
    let management = vhost.management();
    let cli = Cli::new(vhost);
    cli.run(&["pki", "init"], false).await;

    // B's user is left over from earlier, with a password and far too much power on the
    // vhost: onboarding says so and resets it.
    management.put_user(b, Some("left-over"), "").await.unwrap();
    management.set_permissions(vhost.name(), b, ".*", ".*", ".*").await.unwrap();

    let out = cli.run(&["agency", "add", a, "--name", "Ministry A", "--name-ar", "وزارة أ"], true).await;
    assert!(out.contains(&format!("created the RabbitMQ user {a}")), "{out}");
    let out = cli
        .run(
            &["agency", "add", b, "--name", "Ministry B", "--certificate-login", "--bundle-dir", "out/b"],
            true,
        )
        .await;
    assert!(out.contains("already exists"), "{out}");

    // Each user: no tags, exactly the three patterns, on this vhost only.
    for code in [a, b] {
        let user = management.get_user(code).await.unwrap();
        assert!(user.tags.is_empty(), "{user:?}");
        assert_eq!(
            management.user_permissions(code).await.unwrap(),
            [Permissions {
                user: code.to_owned(),
                vhost: vhost.name().to_owned(),
                configure: "^$".to_owned(),
                write: r"^mirsal\.submit$".to_owned(),
                read: format!(r"^mirsal\.inbox\.{code}$"),
            }]
        );
    }
    assert!(!management.get_user(a).await.unwrap().password_hash.is_empty(), "A logs in with a password");
    assert_eq!(
        management.get_user(b).await.unwrap().password_hash,
        "",
        "B logs in with its certificate only"
    );

    // Each inbox: a durable quorum queue with the router's arguments, bound under the code.
    let expected_arguments =
        topology::arguments_json(&topology::work_queue_arguments(QueueSettings::default()));
    for code in [a, b] {
        let inbox = topology::inbox_queue(code);
        let queue = management.queue(vhost.name(), &inbox).await.unwrap();
        assert_eq!(queue.queue_type.as_deref(), Some("quorum"), "{queue:?}");
        assert!(queue.durable, "{queue:?}");
        assert_eq!(queue.arguments, expected_arguments, "{queue:?}");
        let bindings = management.queue_bindings(vhost.name(), &inbox).await.unwrap();
        let from_deliver: Vec<_> = bindings.iter().filter(|b| b.source == DELIVER_EXCHANGE).collect();
        assert_eq!(from_deliver.len(), 1, "{bindings:?}");
        assert_eq!(from_deliver[0].routing_key, code, "{bindings:?}");
        assert_eq!(from_deliver[0].destination, inbox, "{bindings:?}");
        assert_eq!(from_deliver[0].destination_type, "queue", "{bindings:?}");
    }

    // The bundles: every file, secrets 0600 in a 0700 folder, the PKI's own files.
    let bundles = [(a, cli.path(&format!("bundles/{a}"))), (b, cli.path("out/b"))];
    let mut tokens = Vec::new();
    for (code, bundle) in &bundles {
        assert_eq!(mode(bundle), 0o700, "{}", bundle.display());
        for (file, expected) in [
            ("adapter.toml", 0o600),
            ("signing.key", 0o600),
            ("sealing.key", 0o600),
            ("http.token", 0o600),
            ("signing.pem", 0o644),
            ("sealing.pem", 0o644),
            ("ca.pem", 0o644),
            ("crl.pem", 0o644),
            ("README.txt", 0o644),
        ] {
            assert_eq!(mode(&bundle.join(file)), expected, "{code}: {file}");
        }
        for (file, source) in [
            ("signing.key", format!("pki/agencies/{code}/signing.key")),
            ("signing.pem", format!("pki/agencies/{code}/signing.pem")),
            ("sealing.key", format!("pki/agencies/{code}/sealing.key")),
            ("sealing.pem", format!("pki/agencies/{code}/sealing.pem")),
            ("ca.pem", "pki/ca.pem".to_owned()),
            ("crl.pem", "pki/crl.pem".to_owned()),
        ] {
            let copy = std::fs::read(bundle.join(file)).unwrap();
            assert_eq!(copy, std::fs::read(cli.path(&source)).unwrap(), "{code}: {file}");
        }
        let token = std::fs::read_to_string(bundle.join("http.token")).unwrap();
        assert!(token.len() == 64 && token.bytes().all(|c| c.is_ascii_hexdigit()), "{token:?}");
        tokens.push(token);
        let readme = std::fs::read_to_string(bundle.join("README.txt")).unwrap();
        assert!(readme.contains("SECRETS"), "{readme}");
        for file in ["adapter.toml", "signing.key", "sealing.key", "ca.pem", "crl.pem", "http.token"] {
            assert!(readme.contains(file), "the README does not explain {file}: {readme}");
        }
    }
    assert_ne!(tokens[0], tokens[1], "every adapter gets its own HTTP token");

    // adapter.toml: the expected keys, each file it names in the bundle.
    let config_a = adapter_toml(&bundles[0].1.join("adapter.toml"));
    let config_b = adapter_toml(&bundles[1].1.join("adapter.toml"));
    let common = [
        "agency",
        "data_dir",
        "broker.url",
        "pki.ca",
        "pki.crl",
        "pki.signing_key",
        "pki.signing_certificate",
        "pki.sealing_key",
        "pki.sealing_certificate",
        "http.listen",
        "http.token_file",
    ];
    assert_eq!(config_a.keys().map(String::as_str).collect::<Vec<_>>(), sorted(&common));
    let tls = ["broker.tls_ca", "broker.tls_certificate", "broker.tls_key"];
    assert_eq!(
        config_b.keys().map(String::as_str).collect::<Vec<_>>(),
        sorted(&[&common[..], &tls].concat())
    );
    for ((code, bundle), config) in bundles.iter().zip([&config_a, &config_b]) {
        assert_eq!(config["agency"], *code);
        assert_eq!(config["data_dir"], "data");
        assert_eq!(config["http.listen"], "127.0.0.1:8480");
        for key in common.iter().filter(|k| k.starts_with("pki.")).chain(&["http.token_file"]) {
            assert!(bundle.join(&config[*key]).is_file(), "{code}: {key} = {}", config[*key]);
        }
    }
    assert_eq!(config_a["pki.signing_key"], "signing.key");
    let url_a = &config_a["broker.url"];
    assert!(url_a.starts_with(&format!("amqp://{a}:")), "{url_a}");
    assert!(url_a.ends_with(&format!("@127.0.0.1:5672/{}", vhost.name())), "{url_a}");
    assert_eq!(
        config_b["broker.url"],
        format!("amqps://127.0.0.1:5671/{}?auth_mechanism=external", vhost.name())
    );

    // The router's own declarations match what onboarding declared: no-ops, where other
    // properties or arguments would close the channel with PRECONDITION_FAILED.
    let router = Bus::start_plain(vhost.bus_config("router"));
    let channel = router.create_channel().await.unwrap();
    topology::declare_core(&channel, QueueSettings::default()).await.unwrap();
    for code in [a, b] {
        topology::declare_inbox(&channel, code, QueueSettings::default()).await.unwrap();
    }
    let mut ingress = router.consume(INGRESS_QUEUE, 10, "router");

    // The bundle's URL works: A submits as itself and reads its own inbox.
    let adapter_name = format!("{}/adapter-{a}", vhost.name());
    let adapter = Bus::start_plain(fast(BusConfig::new(url_a.clone(), adapter_name.clone())));
    let id = new_id();
    adapter.publisher().publish(&message(SUBMIT_EXCHANGE, "", &id, Some(a))).await.unwrap();
    let submitted = within(WAIT, "A's submission in mirsal.ingress", ingress.next()).await.unwrap();
    assert_eq!(submitted.message_id(), Some(id.as_str()));
    assert_eq!(submitted.user_id(), Some(a));
    submitted.ack().await.unwrap();

    let mut inbox = adapter.consume(&topology::inbox_queue(a), 10, "adapter");
    let letter = new_id();
    router.publisher().publish(&message(DELIVER_EXCHANGE, a, &letter, None)).await.unwrap();
    let delivered = within(WAIT, "the letter in A's inbox", inbox.next()).await.unwrap();
    assert_eq!(delivered.message_id(), Some(letter.as_str()));
    delivered.ack().await.unwrap();

    // ... and nobody else's.
    let spy = adapter.create_channel().await.unwrap();
    let error = spy
        .basic_consume(
            topology::inbox_queue(b).as_str().into(),
            "spy".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("ACCESS_REFUSED"), "{error}");

    // A second add of an active agency is refused, and changes nothing.
    let refused = cli.output(&["agency", "add", a, "--name", "Ministry A"], true).await;
    assert_eq!(refused.code, Some(2), "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("already registered"), "{}", refused.stderr);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert_eq!(adapter_toml(&bundles[0].1.join("adapter.toml"))["broker.url"], *url_a);

    // Suspended: the directory says so; the user stays and still reads its inbox.
    cli.run(&["agency", "suspend", a], false).await;
    assert_eq!(cli.status(a).await, "suspended");
    assert_eq!(cli.status(b).await, "active");
    assert!(management.get_user(a).await.unwrap().tags.is_empty());
    let pending = new_id();
    router.publisher().publish(&message(DELIVER_EXCHANGE, a, &pending, None)).await.unwrap();
    let delivered = within(WAIT, "a letter for the suspended A", inbox.next()).await.unwrap();
    assert_eq!(delivered.message_id(), Some(pending.as_str()));
    delivered.ack().await.unwrap();
    cli.run(&["agency", "reactivate", a], false).await;
    assert_eq!(cli.status(a).await, "active");

    // Removed: the user is gone, its connection closed, its certificates revoked, its
    // inbox kept.
    eventually(WAIT, "A's adapter connection in the management API", || async {
        let connections = management.list_connections().await.unwrap();
        connections.iter().any(|c| c.connection_name.as_deref() == Some(adapter_name.as_str())).then_some(())
    })
    .await;
    let out = cli.run(&["agency", "remove", a], true).await;
    assert!(out.contains(&format!("deleted the RabbitMQ user {a}")), "{out}");
    let error = management.get_user(a).await.unwrap_err();
    assert!(error.is_not_found(), "{error}");
    eventually(WAIT, "A's connections to be closed", || async {
        let connections = management.list_connections().await.unwrap();
        (!connections.iter().any(|c| c.user == a)).then_some(())
    })
    .await;
    adapter.shutdown().await;
    let refused = within(
        WAIT,
        "a connection attempt as A",
        Connection::connect(url_a, ConnectionProperties::default()),
    )
    .await;
    assert!(refused.is_err(), "A can still connect");
    assert_eq!(cli.status(a).await, "removed");
    let certificates = cli.list("pki").await;
    let of_a: Vec<&Value> = certificates.iter().filter(|c| c["code"] == a).collect();
    assert_eq!(of_a.len(), 2, "{certificates:?}");
    assert!(of_a.iter().all(|c| c["revoked_at"].is_string()), "{of_a:?}");
    assert!(certificates.iter().filter(|c| c["code"] == b).all(|c| c.get("revoked_at").is_none()));
    management.queue(vhost.name(), &topology::inbox_queue(a)).await.unwrap();

    cli.run(&["agency", "remove", b], true).await;
    assert!(management.get_user(b).await.unwrap_err().is_not_found());
    router.shutdown().await;
}

fn sorted<'a>(keys: &[&'a str]) -> Vec<&'a str> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys
}
