//! The fixture of Mirsal's integration tests, which run against a real RabbitMQ.
//!
//! Every test gets a [`TestVhost`]: a vhost of its own (`mirsal-test-<uuid>`) on the
//! broker, so tests run in parallel without seeing each other's queues, and the
//! topology each one declares starts from nothing. Agency users are global on a broker,
//! not per vhost, so their codes come from [`unique_code`]. Everything a test creates is
//! deleted by [`TestVhost::cleanup`], or, if the test panicked before it got there, when
//! the [`TestVhost`] is dropped.
//!
//! Where the broker is comes from the environment, defaulting to the development broker
//! that `bash deploy/dev/rabbitmq.sh` starts:
//! - [`AMQP_URL_ENV`] (`amqp://guest:guest@127.0.0.1:5672/%2f`): an administrator's AMQP
//!   URL; its user and password are also used for the management API;
//! - [`MANAGEMENT_URL_ENV`] (`http://127.0.0.1:15672`).
//!
//! Tests wait for conditions with [`eventually`] (polling) and [`within`] (a deadline
//! on one future), never with fixed sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    future::Future,
    sync::Mutex,
    time::{Duration, Instant},
};

use mirsal_bus::{
    Backoff, BusConfig, Management, connection::redact, lapin::uri::AMQPUri, management::agency_permissions,
};
use uuid::Uuid;

pub mod adapter_process;
pub mod platform;

/// The environment variable with the administrator's AMQP URL.
pub const AMQP_URL_ENV: &str = "MIRSAL_AMQP_URL";
/// The environment variable with the management API's base URL.
pub const MANAGEMENT_URL_ENV: &str = "MIRSAL_MANAGEMENT_URL";
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const DEFAULT_MANAGEMENT_URL: &str = "http://127.0.0.1:15672";
/// How long the reachability check waits for each of AMQP and the management API.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often [`eventually`] asks again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The administrator's AMQP URL ([`AMQP_URL_ENV`], or the development broker's).
pub fn amqp_base() -> String {
    std::env::var(AMQP_URL_ENV).unwrap_or_else(|_| DEFAULT_AMQP_URL.to_owned())
}

/// The administrator's password, from the AMQP URL.
pub fn admin_password() -> String {
    let url = amqp_base();
    url.parse::<AMQPUri>().map(|uri| uri.authority.userinfo.password).unwrap_or_else(|_| "guest".to_owned())
}

/// The management API's base URL ([`MANAGEMENT_URL_ENV`], or the development broker's).
pub fn management_base() -> String {
    std::env::var(MANAGEMENT_URL_ENV).unwrap_or_else(|_| DEFAULT_MANAGEMENT_URL.to_owned())
}

/// Where the broker is and who the administrator is.
#[derive(Clone)]
struct Broker {
    amqp: AMQPUri,
    management_url: String,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("amqp", &redact(&self.amqp.to_string()))
            .field("management_url", &self.management_url)
            .finish()
    }
}

impl Broker {
    fn from_env() -> Self {
        let url = amqp_base();
        let amqp: AMQPUri = url
            .parse()
            .unwrap_or_else(|error| panic!("{AMQP_URL_ENV}={}: not an AMQP URL: {error}", redact(&url)));
        Self { amqp, management_url: management_base() }
    }

    fn user(&self) -> &str {
        &self.amqp.authority.userinfo.username
    }

    fn management(&self) -> Management {
        let password = &self.amqp.authority.userinfo.password;
        Management::new(&self.management_url, self.user(), password)
            .unwrap_or_else(|error| panic!("{MANAGEMENT_URL_ENV}: {error}"))
    }

    /// The AMQP URL of `user` into `vhost`, everything percent-encoded.
    fn url(&self, vhost: &str, user: &str, password: &str) -> String {
        let mut uri = self.amqp.clone();
        uri.vhost = vhost.to_owned();
        uri.authority.userinfo.username = user.to_owned();
        uri.authority.userinfo.password = password.to_owned();
        uri.to_string()
    }

    /// Panics with one clear message unless both AMQP and the management API answer.
    async fn check_reachable(&self, management: &Management) {
        let hint = "These tests need a real RabbitMQ: start the development broker with \
                    `bash deploy/dev/rabbitmq.sh`, or point MIRSAL_AMQP_URL and MIRSAL_MANAGEMENT_URL \
                    at one.";
        let address = (self.amqp.authority.host.as_str(), self.amqp.authority.port);
        match tokio::time::timeout(REACH_TIMEOUT, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                panic!("RabbitMQ is not reachable at {}: {error}. {hint}", redact(&self.amqp.to_string()))
            }
            Err(_) => panic!(
                "RabbitMQ did not answer at {} within {REACH_TIMEOUT:?}. {hint}",
                redact(&self.amqp.to_string())
            ),
        }
        match tokio::time::timeout(REACH_TIMEOUT, management.overview()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                panic!(
                    "the RabbitMQ management API is not usable at {}: {error}. {hint}",
                    self.management_url
                )
            }
            Err(_) => panic!(
                "the RabbitMQ management API did not answer at {} within {REACH_TIMEOUT:?}. {hint}",
                self.management_url
            ),
        }
    }
}

/// A vhost of one's own on the real broker, and the agency users made for it.
#[derive(Debug)]
pub struct TestVhost {
    name: String,
    broker: Broker,
    management: Management,
    /// Users created by [`add_agency`](Self::add_agency), to delete afterwards.
    users: Mutex<Vec<String>>,
    cleaned_up: bool,
}

/// An agency's RabbitMQ user, with exactly the permissions DESIGN.md gives agencies.
#[derive(Debug, Clone)]
pub struct AgencyUser {
    /// The agency code, which is also the user name.
    pub code: String,
    pub password: String,
    /// Its AMQP URL into the test vhost.
    pub amqp_url: String,
}

impl AgencyUser {
    /// A bus configuration for this agency, named `what` (see
    /// [`TestVhost::bus_config`]).
    pub fn bus_config(&self, what: &str) -> BusConfig {
        fast(BusConfig::new(self.amqp_url.clone(), format!("{}/{what}", self.code)))
    }
}

impl TestVhost {
    /// Creates a fresh vhost and gives the administrator full permissions on it.
    ///
    /// # Panics
    /// When the broker or its management API cannot be reached (saying which URL and how
    /// to start the development broker), or refuses to create the vhost.
    pub async fn new() -> Self {
        let broker = Broker::from_env();
        let management = broker.management();
        broker.check_reachable(&management).await;
        let name = format!("mirsal-test-{}", Uuid::now_v7().simple());
        management.put_vhost(&name).await.unwrap_or_else(|error| panic!("creating vhost {name}: {error}"));
        // From here on Drop deletes the vhost, whatever happens next.
        let vhost = Self { name, broker, management, users: Mutex::new(Vec::new()), cleaned_up: false };
        vhost
            .management
            .set_permissions(&vhost.name, vhost.broker.user(), ".*", ".*", ".*")
            .await
            .unwrap_or_else(|error| panic!("granting the administrator vhost {}: {error}", vhost.name));
        vhost
    }

    /// The vhost's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The administrator's AMQP URL into this vhost.
    pub fn amqp_url(&self) -> String {
        let password = &self.broker.amqp.authority.userinfo.password;
        self.broker.url(&self.name, self.broker.user(), password)
    }

    /// `user`'s AMQP URL into this vhost.
    pub fn amqp_url_for(&self, user: &str, password: &str) -> String {
        self.broker.url(&self.name, user, password)
    }

    /// The management API, as the administrator.
    pub fn management(&self) -> &Management {
        &self.management
    }

    /// An administrator's bus configuration into this vhost, named `<vhost>/<what>` in
    /// the management UI (so a test can find its connection), reconnecting quickly.
    pub fn bus_config(&self, what: &str) -> BusConfig {
        fast(BusConfig::new(self.amqp_url(), format!("{}/{what}", self.name)))
    }

    /// Creates the RabbitMQ user of agency `code` with a random password and exactly
    /// the agency permissions of DESIGN.md on this vhost (configure `^$`, write
    /// `^mirsal\.submit$`, read `^mirsal\.inbox\.CODE$`). Users are global on the
    /// broker: take `code` from [`unique_code`].
    ///
    /// # Panics
    /// On an invalid code or a refusal by the broker.
    pub async fn add_agency(&self, code: &str) -> AgencyUser {
        assert!(is_agency_code(code), "{code:?} is not an agency code (^[A-Z][A-Z0-9-]{{1,31}}$)");
        // Random enough for a throwaway user: the random bits of two UUIDv7s.
        let password = format!("{}{}", Uuid::now_v7().simple(), Uuid::now_v7().simple());
        self.management
            .put_user(code, Some(&password), "")
            .await
            .unwrap_or_else(|error| panic!("creating user {code}: {error}"));
        self.users.lock().unwrap().push(code.to_owned());
        let (configure, write, read) = agency_permissions(code);
        self.management
            .set_permissions(&self.name, code, &configure, &write, &read)
            .await
            .unwrap_or_else(|error| panic!("setting the permissions of {code}: {error}"));
        let amqp_url = self.amqp_url_for(code, &password);
        AgencyUser { code: code.to_owned(), password, amqp_url }
    }

    /// Deletes the users this vhost created, then the vhost (which closes its
    /// connections and deletes its queues).
    ///
    /// # Panics
    /// When the broker refuses a deletion (after trying all of them).
    pub async fn cleanup(mut self) {
        self.cleaned_up = true;
        let users = std::mem::take(&mut *self.users.lock().unwrap());
        let errors = delete_all(&self.management, &self.name, &users).await;
        assert!(errors.is_empty(), "cleaning up vhost {}: {}", self.name, errors.join("; "));
    }
}

impl Drop for TestVhost {
    /// Best effort for a test that did not reach [`cleanup`](TestVhost::cleanup)
    /// (usually because it panicked). Drop cannot await, and may run on a runtime
    /// thread, where starting another runtime panics: the deletes run on a thread of
    /// their own with their own runtime and HTTP client, and this waits for them.
    fn drop(&mut self) {
        if self.cleaned_up {
            return;
        }
        let users =
            std::mem::take(&mut *self.users.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let name = std::mem::take(&mut self.name);
        let broker = self.broker.clone();
        let worker = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => return vec![format!("starting a runtime: {error}")],
            };
            let password = &broker.amqp.authority.userinfo.password;
            match Management::new(&broker.management_url, broker.user(), password) {
                Ok(management) => runtime.block_on(delete_all(&management, &name, &users)),
                Err(error) => vec![error.to_string()],
            }
        });
        match worker.join() {
            Ok(errors) if errors.is_empty() => {}
            Ok(errors) => {
                eprintln!("mirsal-integration-tests: cleaning up after a test: {}", errors.join("; "))
            }
            Err(_) => eprintln!("mirsal-integration-tests: the clean-up thread panicked"),
        }
    }
}

/// Deletes `users` and `vhost`, trying every one; returns what failed.
async fn delete_all(management: &Management, vhost: &str, users: &[String]) -> Vec<String> {
    let mut errors = Vec::new();
    for user in users {
        if let Err(error) = management.delete_user(user).await {
            errors.push(error.to_string());
        }
    }
    if let Err(error) = management.delete_vhost(vhost).await {
        errors.push(error.to_string());
    }
    errors
}

/// Tests reconnect in milliseconds, not the production default.
fn fast(mut config: BusConfig) -> BusConfig {
    config.backoff = Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(500) };
    config
}

/// An agency code unique to this test run: `T`, six random hex digits, `-`, `name`
/// (e.g. `T3FA09C-SENDER`). RabbitMQ users are global across vhosts and tests run in
/// parallel, so fixed codes would collide.
///
/// # Panics
/// When the result is not an agency code (`name` must be uppercase letters, digits and
/// `-`, at most 24 of them).
pub fn unique_code(name: &str) -> String {
    // The last bytes of a UUIDv7 are random (the leading ones are time and a counter).
    let random = Uuid::now_v7().into_bytes();
    let code = format!("T{:02X}{:02X}{:02X}-{name}", random[13], random[14], random[15]);
    assert!(is_agency_code(&code), "unique_code({name:?}) made {code:?}, which is not an agency code");
    code
}

/// `^[A-Z][A-Z0-9-]{1,31}$`.
fn is_agency_code(code: &str) -> bool {
    let bytes = code.as_bytes();
    (2..=32).contains(&bytes.len())
        && bytes[0].is_ascii_uppercase()
        && bytes[1..].iter().all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

/// Calls `f` every 50 ms until it returns `Some`, and returns that.
///
/// # Panics
/// When `timeout` passes first, naming `what` was awaited.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(Some(value)) = tokio::time::timeout_at(deadline, f()).await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Awaits `future` for at most `timeout`.
///
/// # Panics
/// When `timeout` passes first, naming `what` was awaited.
pub async fn within<F: Future>(timeout: Duration, what: &str, future: F) -> F::Output {
    let started = Instant::now();
    match tokio::time::timeout(timeout, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {:?} waiting for {what}", started.elapsed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_codes_are_agency_codes_and_differ() {
        let a = unique_code("SENDER");
        let b = unique_code("SENDER");
        assert!(is_agency_code(&a), "{a}");
        assert_ne!(a, b);
        assert!(a.starts_with('T') && a.ends_with("-SENDER") && a.len() == 14);
    }

    #[test]
    fn agency_codes_are_checked() {
        assert!(is_agency_code("MOF-HR"));
        assert!(is_agency_code("A1"));
        assert!(!is_agency_code("A"));
        assert!(!is_agency_code("1A"));
        assert!(!is_agency_code("mof"));
        assert!(!is_agency_code(&"A".repeat(33)));
    }

    #[test]
    fn urls_into_the_vhost_are_encoded() {
        let broker = Broker {
            amqp: "amqp://guest:guest@127.0.0.1:5672/%2f".parse().unwrap(),
            management_url: DEFAULT_MANAGEMENT_URL.to_owned(),
        };
        assert_eq!(broker.url("/", "guest", "guest"), "amqp://guest:guest@127.0.0.1:5672/%2F");
        let parsed: AMQPUri = broker.url("a/b c", "A-B", "p@ss:/").parse().unwrap();
        assert_eq!(parsed.vhost, "a/b c");
        assert_eq!(parsed.authority.userinfo.username, "A-B");
        assert_eq!(parsed.authority.userinfo.password, "p@ss:/");
        assert_eq!((parsed.authority.host.as_str(), parsed.authority.port), ("127.0.0.1", 5672));
    }
}
