//! A whole Mirsal platform in one test: a vhost of its own, a platform CA with agencies
//! issued by the PKI code, their RabbitMQ users with exactly the agency permissions,
//! the directory file, and the router, run in-process ([`Platform::start_router`]) or
//! as the real `mirsal-router` binary ([`Platform::router_binary`]).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use chrono::{Duration as TimeDelta, Utc};
use mirsal_bus::{Bus, Deliveries, Outgoing, headers, topology};
use mirsal_envelope::{
    AgencyCode, Draft, HeaderDraft, Policy, SealingKey, SigningIdentity, Time, TrustStore, VerifiedEnvelope,
    Verifier, pb,
    pki::{AgencyCredentials, Authority, Issued, KeyKind, Revocation, serial_hex},
};
use mirsal_router::{
    config::RouterConfig,
    directory::{AgencyEntry, AgencyStatus, Clearance, Directory},
    store::Store,
};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::{AgencyUser, TestVhost, eventually, unique_code, within};

/// How long tests wait for anything the router does.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One agency of the test platform.
#[derive(Debug)]
pub struct Agency {
    pub code: String,
    pub user: AgencyUser,
    pub credentials: AgencyCredentials,
    /// The agency's own connection, as its adapter would have it.
    pub bus: Bus,
}

impl Agency {
    pub fn signer(&self) -> SigningIdentity {
        SigningIdentity::new(
            self.credentials.signing.key.clone(),
            std::slice::from_ref(&self.credentials.signing.certificate),
        )
        .unwrap()
    }

    pub fn sealing_key(&self) -> SealingKey {
        SealingKey::new(self.credentials.sealing.key.clone(), &self.credentials.sealing.certificate).unwrap()
    }

    /// Publishes `bytes` to `mirsal.submit` as this agency (with its `user_id`) and waits
    /// for the broker's confirm.
    pub async fn submit(&self, bytes: impl Into<Bytes>) {
        self.submit_as(bytes, &self.code).await.unwrap();
    }

    /// Publishes with an arbitrary `user_id` (RabbitMQ refuses a forged one).
    ///
    /// # Errors
    /// The publish error, e.g. a closed channel for a forged user id.
    pub async fn submit_as(
        &self,
        bytes: impl Into<Bytes>,
        user_id: &str,
    ) -> Result<(), mirsal_bus::PublishError> {
        let properties = headers::envelope_properties("").with_user_id(user_id.into());
        let message = Outgoing {
            exchange: topology::SUBMIT_EXCHANGE.to_owned(),
            routing_key: String::new(),
            payload: bytes.into(),
            properties,
            mandatory: true,
        };
        self.bus.publisher().publish_reliably(&message, PATIENCE).await
    }

    /// Consumes this agency's inbox over its own connection.
    pub fn inbox(&self, verifier: Arc<Verifier>) -> Inbox {
        let deliveries = self.bus.consume(&topology::inbox_queue(&self.code), 100, "test-inbox");
        Inbox { deliveries, verifier }
    }
}

/// An agency's inbox as a test reads it: each message is acked and verified.
#[derive(Debug)]
pub struct Inbox {
    deliveries: Deliveries,
    verifier: Arc<Verifier>,
}

/// One message taken from an inbox.
#[derive(Debug)]
pub struct Received {
    pub bytes: Bytes,
    pub kind: Option<String>,
    pub origin: Option<String>,
    pub message_id: Option<String>,
    pub verified: VerifiedEnvelope,
}

impl Received {
    /// The notice inside, if it is one.
    pub fn notice(&self) -> Option<&pb::Notice> {
        match &self.verified.body {
            pb::signed_content::Body::Notice(notice) => Some(notice),
            _ => None,
        }
    }

    /// The reason code of a rejected notice.
    pub fn rejected_code(&self) -> Option<mirsal_envelope::ReasonCode> {
        match self.notice()?.kind.as_ref()? {
            pb::notice::Kind::Rejected(rejected) => Some(rejected.code()),
            _ => None,
        }
    }
}

impl Inbox {
    /// The next message, acked and verified (at its own creation time, so a test can
    /// read old messages after certificates changed).
    ///
    /// # Panics
    /// When nothing arrives within [`PATIENCE`] or the message does not verify.
    pub async fn next(&mut self) -> Received {
        let mut incoming =
            within(PATIENCE, "a message in the inbox", self.deliveries.next()).await.expect("inbox closed");
        let kind = incoming.header(headers::KIND).map(str::to_owned);
        let origin = incoming.header(headers::ORIGIN).map(str::to_owned);
        let message_id = incoming.message_id().map(str::to_owned);
        assert!(incoming.user_id().is_none(), "the router must not copy user_id when it republishes");
        let bytes = incoming.take_body();
        incoming.ack().await.unwrap();
        let verified = self
            .verifier
            .verify(bytes.clone(), Utc::now())
            .unwrap_or_else(|e| panic!("an inbox message does not verify: {e}"));
        Received { bytes, kind, origin, message_id, verified }
    }

    /// Skips messages until one satisfies `wanted`, returning it.
    pub async fn next_matching(&mut self, what: &str, mut wanted: impl FnMut(&Received) -> bool) -> Received {
        within(PATIENCE, what, async {
            loop {
                let received = self.next().await;
                if wanted(&received) {
                    return received;
                }
            }
        })
        .await
    }
}

struct RouterTask {
    shutdown: CancellationToken,
    join: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The platform.
pub struct Platform {
    pub vhost: TestVhost,
    root: tempfile::TempDir,
    pub authority: Authority,
    pub platform_identity: Issued,
    agencies: BTreeMap<String, Agency>,
    revoked: Vec<Revocation>,
    router: Option<RouterTask>,
    /// Extra lines for the router's TOML configuration (per section, e.g. `[policy]`).
    pub config_overrides: BTreeMap<&'static str, Vec<String>>,
    pub metrics: mirsal_router::SharedMetrics,
    /// Where the router's HTTP API listens (a free loopback port).
    pub http: std::net::SocketAddr,
    /// The bearer token of the router's HTTP API.
    pub http_token: String,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("vhost", &self.vhost)
            .field("agencies", &self.agencies.keys())
            .finish()
    }
}

impl Platform {
    /// A platform with one agency per name (codes made unique with [`unique_code`]).
    pub async fn new(names: &[&str]) -> Self {
        let vhost = TestVhost::new().await;
        let root = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let authority =
            Authority::create("Mirsal Test CA", KeyKind::EcP256, now - TimeDelta::days(1), 365).unwrap();
        let platform_identity =
            authority.issue_platform(KeyKind::EcP256, now - TimeDelta::days(1), 365).unwrap();
        let mut platform = Self {
            vhost,
            root,
            authority,
            platform_identity,
            agencies: BTreeMap::new(),
            revoked: Vec::new(),
            router: None,
            config_overrides: BTreeMap::new(),
            metrics: Arc::default(),
            http: free_port(),
            http_token: format!("{}{}", uuid::Uuid::now_v7().simple(), uuid::Uuid::now_v7().simple()),
        };
        std::fs::create_dir_all(platform.pki_dir()).unwrap();
        write(&platform.pki_dir().join("ca.pem"), &platform.authority.certificate().to_pem().unwrap());
        write(
            &platform.pki_dir().join("platform.pem"),
            &platform.platform_identity.certificate_pem().unwrap(),
        );
        write(&platform.pki_dir().join("platform.key"), &platform.platform_identity.key_pem().unwrap());
        platform.write_crl();
        for name in names {
            platform.add_agency(name).await;
        }
        platform.save_directory(|_| {});
        platform
    }

    /// Adds agency `name`: certificates, RabbitMQ user and connection, directory entry.
    pub async fn add_agency(&mut self, name: &str) -> &Agency {
        let code = unique_code(name);
        let user = self.vhost.add_agency(&code).await;
        let credentials = self
            .authority
            .issue_agency(
                &AgencyCode::new(code.as_str()).unwrap(),
                &format!("Agency {name}"),
                KeyKind::EcP256,
                Utc::now() - TimeDelta::hours(1),
                30,
            )
            .unwrap();
        let bus = Bus::start_plain(user.bus_config(name));
        self.agencies.insert(name.to_owned(), Agency { code, user, credentials, bus });
        self.save_directory(|_| {});
        &self.agencies[name]
    }

    pub fn agency(&self, name: &str) -> &Agency {
        self.agencies.get(name).unwrap_or_else(|| panic!("no agency {name} in this platform"))
    }

    pub fn code(&self, name: &str) -> &str {
        &self.agency(name).code
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.root().join("pki")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }

    pub fn directory_path(&self) -> PathBuf {
        self.root().join("directory.json")
    }

    /// Rewrites the directory file; `edit` may change entries (the router reloads it).
    pub fn save_directory(&self, edit: impl FnOnce(&mut Directory)) {
        let mut directory = Directory::default();
        for (name, agency) in &self.agencies {
            directory.upsert(AgencyEntry {
                code: agency.code.clone(),
                name_en: format!("Agency {name}"),
                name_ar: format!("الجهة {name}"),
                status: AgencyStatus::Active,
                max_classification: Clearance::Secret,
                signing_certificate: String::from_utf8(agency.credentials.signing.certificate_pem().unwrap())
                    .unwrap(),
                sealing_certificate: String::from_utf8(agency.credentials.sealing.certificate_pem().unwrap())
                    .unwrap(),
            });
        }
        edit(&mut directory);
        directory.save(&self.directory_path()).unwrap();
    }

    /// Sets agency `name`'s status in the directory file.
    pub fn set_status(&self, name: &str, status: AgencyStatus) {
        let code = self.code(name).to_owned();
        self.save_directory(|directory| directory.get_mut(&code).unwrap().status = status);
    }

    fn write_crl(&self) {
        let crl = self
            .authority
            .crl(&self.revoked, self.revoked.len() as u64 + 1, Utc::now() - TimeDelta::minutes(5), 30)
            .unwrap();
        write(&self.pki_dir().join("crl.pem"), &crl.to_pem().unwrap());
    }

    /// Revokes agency `name`'s signing certificate and publishes the CRL.
    pub fn revoke(&mut self, name: &str) {
        let certificate = self.agency(name).credentials.signing.certificate.clone();
        self.revoked.push(Revocation {
            serial_hex: serial_hex(&certificate).unwrap(),
            revoked_at: Utc::now() - TimeDelta::minutes(1),
        });
        self.write_crl();
    }

    /// A verifier that trusts this platform's CA, as agencies' adapters would: letters
    /// may have waited in an inbox, so it accepts old ones.
    pub fn verifier(&self) -> Arc<Verifier> {
        let ca = self.authority.certificate().to_pem().unwrap();
        let crl =
            self.authority.crl(&[], 1, Utc::now() - TimeDelta::minutes(5), 30).unwrap().to_pem().unwrap();
        let policy = Policy { max_age: Duration::from_secs(30 * 24 * 3600), ..Policy::default() };
        Arc::new(Verifier::new(TrustStore::from_pem(&ca, &[&crl]).unwrap(), policy))
    }

    /// The router's configuration file's text, with short intervals for tests.
    pub fn config_toml(&self) -> String {
        let pki = self.pki_dir();
        write(&self.root().join("router.token"), self.http_token.as_bytes());
        let sections: [(&str, Vec<String>); 10] = [
            ("broker", vec![format!("url = {:?}", self.vhost.amqp_url()), "prefetch = 256".into()]),
            (
                "pki",
                vec![
                    format!("ca = {:?}", pki.join("ca.pem")),
                    format!("crl = {:?}", pki.join("crl.pem")),
                    format!("platform_key = {:?}", pki.join("platform.key")),
                    format!("platform_certificate = {:?}", pki.join("platform.pem")),
                ],
            ),
            ("storage", vec![format!("data_dir = {:?}", self.data_dir())]),
            (
                "directory",
                vec![format!("path = {:?}", self.directory_path()), "reload_interval = \"100ms\"".into()],
            ),
            ("policy", vec![]),
            ("overdue", vec!["check_interval = \"200ms\"".into()]),
            ("audit", vec!["sign_interval = \"500ms\"".into()]),
            ("log", vec!["level = \"warn,mirsal_router=info\"".into()]),
            (
                "http",
                vec![
                    format!("listen = \"{}\"", self.http),
                    format!("token_file = {:?}", self.root().join("router.token")),
                ],
            ),
            (
                "management",
                vec![
                    format!("url = {:?}", crate::management_base()),
                    format!("user = {:?}", self.vhost.management().user()),
                    format!("password = {:?}", crate::admin_password()),
                    format!("vhost = {:?}", self.vhost.name()),
                ],
            ),
        ];
        let mut text = String::new();
        for (section, mut lines) in sections {
            lines.extend(self.config_overrides.get(section).cloned().unwrap_or_default());
            text.push_str(&format!("[{section}]\n{}\n\n", lines.join("\n")));
        }
        text
    }

    /// Writes the configuration file and returns its path.
    pub fn config_path(&self) -> PathBuf {
        let path = self.root().join("router.toml");
        write(&path, self.config_toml().as_bytes());
        path
    }

    pub fn config(&self) -> RouterConfig {
        RouterConfig::parse(&self.config_toml(), Path::new("router.toml"), |_| None).unwrap()
    }

    /// The router's HTTP API base URL.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Starts the router in this process and waits until it consumes the ingress queue.
    pub async fn start_router(&mut self) {
        assert!(self.router.is_none(), "the router is already running");
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let join = tokio::spawn(mirsal_router::run(self.config(), Arc::clone(&self.metrics), async move {
            stop.cancelled().await;
        }));
        self.router = Some(RouterTask { shutdown, join });
        self.wait_for_router().await;
    }

    /// Waits until the router says it is ready: connected and consuming the ingress
    /// queue (`/readyz`).
    pub async fn wait_for_router(&self) {
        let client = reqwest::Client::new();
        let url = format!("{}/readyz", self.http_url());
        eventually(PATIENCE, "the router to be ready (/readyz)", || async {
            let response = client.get(&url).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
    }

    /// Stops the in-process router gracefully and waits for it.
    pub async fn stop_router(&mut self) {
        let task = self.router.take().expect("the router is not running");
        task.shutdown.cancel();
        within(PATIENCE, "the router to stop", task.join).await.unwrap().unwrap();
    }

    /// Opens the (stopped) router's store.
    pub fn store(&self) -> Store {
        Store::open(&self.data_dir()).unwrap()
    }

    /// The real `mirsal-router` binary with this platform's configuration. It must have
    /// been built (`scripts/test` builds every binary first).
    pub fn router_binary(&self) -> tokio::process::Command {
        let binary = binary_path("mirsal-router");
        let mut command = tokio::process::Command::new(binary);
        command.arg("--config").arg(self.config_path()).kill_on_drop(true);
        command
    }

    /// A letter draft from `from` to `to` (action recipients).
    pub fn letter(&self, from: &str, to: &[&str], subject: &str) -> Draft {
        let header = to.iter().fold(HeaderDraft::new(self.code(from)), |h, name| h.action(self.code(name)));
        Draft::letter(
            header,
            pb::Letter {
                subject: subject.to_owned(),
                body: "تحية طيبة وبعد".into(),
                language: "ar".into(),
                ..Default::default()
            },
        )
    }

    /// Builds and signs `draft` as agency `from`; returns the envelope id and its bytes.
    pub fn sign(&self, from: &str, draft: Draft) -> (String, Bytes) {
        let content = draft.build(&Policy::default(), Utc::now()).unwrap();
        self.sign_content(from, &content)
    }

    /// Signs ready content as agency `from` (no validation: for bad-input tests).
    pub fn sign_content(&self, from: &str, content: &pb::SignedContent) -> (String, Bytes) {
        let id = content.header.as_ref().map(|h| h.envelope_id.clone()).unwrap_or_default();
        let envelope = self.agency(from).signer().sign_encoded(Bytes::from(content.encode_to_vec())).unwrap();
        (id, Bytes::from(envelope.encode_to_vec()))
    }

    /// A receipt by agency `by` about the letter `letter` (as received), signed.
    pub fn receipt(
        &self,
        by: &str,
        letter: &VerifiedEnvelope,
        status: pb::receipt::Status,
    ) -> (String, Bytes) {
        self.sign(by, Draft::receipt(self.code(by), &letter.header, letter.digest, status))
    }

    /// Cleans up the broker side (the temporary directory goes with `self`).
    pub async fn cleanup(mut self) {
        if self.router.is_some() {
            self.stop_router().await;
        }
        for agency in self.agencies.values() {
            agency.bus.shutdown().await;
        }
        let Self { vhost, .. } = self;
        vhost.cleanup().await;
    }
}

/// Now, for drafts.
pub fn now() -> Time {
    Utc::now()
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

/// Where cargo put the workspace binary `name`: beside the running executable (a binary
/// such as `target/release/mirsal-bench`), else one folder up (a test executable in
/// `target/debug/deps`). `None` when it is in neither.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let own = exe.parent()?;
    [Some(own), own.parent()].into_iter().flatten().map(|dir| dir.join(name)).find(|path| path.is_file())
}

/// Where cargo put the workspace binary `name` (see [`find_binary`]).
///
/// # Panics
/// When it has not been built.
pub fn binary_path(name: &str) -> PathBuf {
    find_binary(name).unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap();
        panic!(
            "{name} is not built beside {} or in its parent folder; run `cargo build --workspace --bins` \
             first (scripts/test does)",
            exe.display()
        )
    })
}

/// Collects what arrives in an agency's inbox in the background: every envelope id
/// with its bytes, checking that a redelivered id always carries the same bytes.
#[derive(Debug)]
pub struct Collector {
    seen: Arc<std::sync::Mutex<BTreeMap<String, (Bytes, usize)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    /// Starts collecting from `agency`'s inbox (letters only; notices are skipped).
    pub fn start(agency: &Agency) -> Self {
        let seen = Arc::new(std::sync::Mutex::new(BTreeMap::<String, (Bytes, usize)>::new()));
        let mut deliveries = agency.bus.consume(&topology::inbox_queue(&agency.code), 200, "collector");
        let shared = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Some(mut incoming) = deliveries.next().await {
                let id = incoming.message_id().unwrap_or_default().to_owned();
                let kind = incoming.header(headers::KIND).unwrap_or_default().to_owned();
                let bytes = incoming.take_body();
                if kind == "letter" || kind == "sealed" {
                    let mut seen = shared.lock().unwrap();
                    let entry = seen.entry(id.clone()).or_insert_with(|| (bytes.clone(), 0));
                    assert_eq!(entry.0, bytes, "envelope {id} arrived twice with different bytes");
                    entry.1 += 1;
                }
                // A failed ack (the connection went away) means the broker redelivers.
                let _ = incoming.ack().await;
            }
        });
        Self { seen, task }
    }

    /// How many distinct envelope ids arrived.
    pub fn distinct(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// How many deliveries arrived in all (duplicates included).
    pub fn deliveries(&self) -> usize {
        self.seen.lock().unwrap().values().map(|(_, n)| n).sum()
    }

    /// The ids seen, with their bytes.
    pub fn snapshot(&self) -> BTreeMap<String, Bytes> {
        self.seen.lock().unwrap().iter().map(|(id, (bytes, _))| (id.clone(), bytes.clone())).collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Signs `count` letters from `from` to `to`, returning them by id.
pub fn letters(platform: &Platform, from: &str, to: &str, count: usize) -> BTreeMap<String, Bytes> {
    (0..count).map(|i| platform.sign(from, platform.letter(from, &[to], &format!("letter {i}")))).collect()
}

/// Publishes every letter as agency `from`, many at a time, each retried across broker
/// outages for up to `patience`.
pub async fn submit_all(agency: &Agency, letters: &BTreeMap<String, Bytes>, patience: Duration) {
    use futures_util::StreamExt as _;
    let publisher = agency.bus.publisher();
    futures_util::stream::iter(letters.iter())
        .for_each_concurrent(64, |(id, bytes)| {
            let publisher = publisher.clone();
            async move {
                let properties = headers::envelope_properties(id).with_user_id(agency.code.as_str().into());
                let message = Outgoing {
                    exchange: topology::SUBMIT_EXCHANGE.to_owned(),
                    routing_key: String::new(),
                    payload: bytes.clone(),
                    properties,
                    mandatory: true,
                };
                publisher
                    .publish_reliably(&message, patience)
                    .await
                    .unwrap_or_else(|e| panic!("submitting {id}: {e}"));
            }
        })
        .await;
}

/// A folder like the bundle `mirsal agency add` writes, for agency `name` of `platform`:
/// its keys and certificates, the CA and CRL, a bearer token and `adapter.toml` (HTTP
/// bridge on a free loopback port).
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub listen: std::net::SocketAddr,
    pub token: String,
}

impl Bundle {
    pub fn config(&self) -> mirsal_adapter::AdapterConfig {
        mirsal_adapter::AdapterConfig::load(&self.config_path).unwrap()
    }

    /// The HTTP bridge's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }
}

impl Platform {
    /// Writes agency `name`'s adapter bundle (see [`Bundle`]).
    pub fn bundle(&self, name: &str) -> Bundle {
        let agency = self.agency(name);
        let dir = self.root().join("bundles").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let credentials = &agency.credentials;
        for (file, bytes) in [
            ("signing.key", credentials.signing.key_pem().unwrap()),
            ("signing.pem", credentials.signing.certificate_pem().unwrap()),
            ("sealing.key", credentials.sealing.key_pem().unwrap()),
            ("sealing.pem", credentials.sealing.certificate_pem().unwrap()),
        ] {
            write(&dir.join(file), &bytes);
        }
        for file in ["ca.pem", "crl.pem"] {
            std::fs::copy(self.pki_dir().join(file), dir.join(file)).unwrap();
        }
        let token = uuid::Uuid::now_v7().simple().to_string();
        write(&dir.join("http.token"), token.as_bytes());
        let listen = free_port();
        let config = format!(
            "agency = {:?}\ndata_dir = \"data\"\n\n[broker]\nurl = {:?}\n\n[pki]\nca = \"ca.pem\"\ncrl = \"crl.pem\"\n\
             signing_key = \"signing.key\"\nsigning_certificate = \"signing.pem\"\nsealing_key = \"sealing.key\"\n\
             sealing_certificate = \"sealing.pem\"\n\n[http]\nlisten = \"{listen}\"\ntoken_file = \"http.token\"\n\n\
             [log]\nlevel = \"warn\"\n",
            agency.code, agency.user.amqp_url,
        );
        let config_path = dir.join("adapter.toml");
        write(&config_path, config.as_bytes());
        Bundle { dir, config_path, listen, token }
    }

    /// Opens agency `name`'s SDK in this process, from its bundle.
    pub async fn adapter(&self, name: &str) -> (mirsal_adapter::Adapter, Bundle) {
        let bundle = self.bundle(name);
        let adapter = mirsal_adapter::Adapter::open(bundle.config()).await.unwrap();
        (adapter, bundle)
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
