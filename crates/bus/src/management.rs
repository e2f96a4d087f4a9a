//! A client for the RabbitMQ management HTTP API (`/api/...`).
//!
//! AMQP cannot create users, vhosts or permissions, list connections or look at queue
//! depths, and the operators' tools, the router's dashboard and the integration tests
//! all need to. This is the small part of the API Mirsal uses, typed where Mirsal reads
//! the answer and left as JSON where it only passes it on (message properties).
//!
//! Names go into the URL as percent-encoded path segments, so the default vhost `/`
//! becomes `%2F` and a connection name such as `127.0.0.1:5000 -> 127.0.0.1:5672`
//! survives the trip.
//!
//! Statistics (message counts, consumers) are sampled by the broker every few seconds
//! (`collect_statistics_interval`, 5 s by default): a count read right after a publish
//! can be stale, and is absent altogether on a queue that has not been sampled yet.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::topology;

/// How long one API call may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an error body to keep in a [`ManagementError::Status`].
const MAX_ERROR_BODY: usize = 4096;

/// A failed management API call, naming the call (`METHOD /api/path`).
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    #[error("invalid management URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    // The messages already include the causes, so the errors are not `source`s: an
    // `anyhow` chain printed with `{:#}` would repeat them.
    #[error("{call}: {}", with_causes(.error))]
    Http { call: String, error: reqwest::Error },
    #[error("{call}: HTTP {status}: {body}")]
    Status { call: String, status: StatusCode, body: String },
    #[error("{call}: unexpected answer: {error}")]
    Decode { call: String, error: serde_json::Error },
    #[error("{call}: message payload is not valid base64")]
    Payload { call: String },
}

/// `error` and its causes: reqwest's own message ("error sending request") leaves out
/// the part that says what went wrong ("connection refused").
fn with_causes(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

impl ManagementError {
    /// Whether the broker answered 404: the vhost, user, queue or connection does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

/// The management API of one broker (or cluster), with one user's credentials. Cheap to
/// clone (the HTTP connection pool is shared).
#[derive(Clone)]
pub struct Management {
    base: Url,
    user: String,
    password: String,
    client: Client,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("base", &self.base.as_str())
            .field("user", &self.user)
            .field("password", &"***")
            .finish_non_exhaustive()
    }
}

/// What `GET /api/overview` says about the broker.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Overview {
    /// e.g. `3.10.8`.
    pub rabbitmq_version: String,
    pub management_version: Option<String>,
    /// `RabbitMQ` (or a distribution's name).
    pub product_name: Option<String>,
    pub product_version: Option<String>,
    pub erlang_version: Option<String>,
    pub cluster_name: Option<String>,
    /// The node that answered.
    pub node: Option<String>,
}

/// A queue as the management API reports it. The counts are sampled (see the module
/// docs) and missing until the first sample.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct QueueInfo {
    pub name: String,
    pub vhost: String,
    /// `classic`, `quorum` or `stream`.
    #[serde(rename = "type")]
    pub queue_type: Option<String>,
    #[serde(default)]
    pub durable: bool,
    /// The `x-` arguments the queue was declared with.
    #[serde(default)]
    pub arguments: Map<String, Value>,
    /// `running`, or why not.
    pub state: Option<String>,
    /// Ready plus unacknowledged.
    pub messages: Option<u64>,
    pub messages_ready: Option<u64>,
    pub messages_unacknowledged: Option<u64>,
    /// Quorum queues: messages held for at-least-once dead-lettering.
    pub messages_dlx: Option<u64>,
    pub message_bytes: Option<u64>,
    pub consumers: Option<u64>,
    /// The `timestamp` property (seconds since the epoch) of the message at the head of
    /// the queue, when it has one: the age of the oldest pending message. Classic
    /// queues only; quorum queues do not report it.
    pub head_message_timestamp: Option<i64>,
    /// Since when the queue has been idle (RFC 3339-like text), when it is.
    pub idle_since: Option<String>,
}

/// A client connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RawConnection")]
pub struct ConnectionInfo {
    /// The broker's name for the connection (`peer -> listener`), the key for
    /// [`Management::close_connection`].
    pub name: String,
    pub user: String,
    pub vhost: String,
    /// The name the client gave itself (lapin's `connection_name`), if any.
    pub connection_name: Option<String>,
}

#[derive(Deserialize)]
struct RawConnection {
    name: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    vhost: String,
    #[serde(default)]
    client_properties: Value,
}

impl From<RawConnection> for ConnectionInfo {
    fn from(raw: RawConnection) -> Self {
        let connection_name =
            raw.client_properties.get("connection_name").and_then(Value::as_str).map(str::to_owned);
        Self { name: raw.name, user: raw.user, vhost: raw.vhost, connection_name }
    }
}

/// A message fetched with [`Management::get_messages`].
#[derive(Debug, Clone, PartialEq)]
pub struct PeekedMessage {
    /// The body, decoded.
    pub payload: Vec<u8>,
    pub redelivered: bool,
    pub exchange: String,
    pub routing_key: String,
    /// Messages left in the queue after this one was fetched.
    pub message_count: u64,
    /// The AMQP properties as the API renders them (`message_id`, `headers`, ...). An
    /// empty set of properties comes as `[]`, not `{}`.
    pub properties: Value,
}

impl PeekedMessage {
    /// The message's headers, if it has any.
    pub fn headers(&self) -> Option<&Map<String, Value>> {
        self.properties.get("headers")?.as_object()
    }

    /// One header.
    pub fn header(&self, name: &str) -> Option<&Value> {
        self.headers()?.get(name)
    }

    /// The `message_id` property.
    pub fn message_id(&self) -> Option<&str> {
        self.properties.get("message_id")?.as_str()
    }
}

#[derive(Deserialize)]
struct RawMessage {
    payload: String,
    #[serde(default)]
    payload_encoding: String,
    #[serde(default)]
    redelivered: bool,
    #[serde(default)]
    exchange: String,
    #[serde(default)]
    routing_key: String,
    #[serde(default)]
    message_count: u64,
    #[serde(default)]
    properties: Value,
}

/// A user as `GET /api/users/NAME` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserInfo {
    pub name: String,
    /// Empty for a user that cannot log in with a password (certificate login).
    #[serde(default)]
    pub password_hash: String,
    /// `administrator`, `monitoring`, ...; none for an agency.
    #[serde(default, deserialize_with = "tags")]
    pub tags: Vec<String>,
}

/// RabbitMQ 3.9 and later list a user's tags as an array; earlier versions as one
/// comma-separated string.
fn tags<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Tags::deserialize(deserializer)? {
        Tags::List(tags) => tags,
        Tags::Text(text) => {
            text.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
        }
    })
}

/// One user's permissions on one vhost: regular expressions over resource names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Permissions {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// A binding as `GET /api/queues/VHOST/NAME/bindings` reports it. Every queue has one
/// from the default exchange (`source` empty, key = the queue's name).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BindingInfo {
    /// The exchange.
    pub source: String,
    /// The queue (or exchange).
    pub destination: String,
    /// `queue` or `exchange`.
    pub destination_type: String,
    pub routing_key: String,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// The permissions DESIGN.md gives agency `code`, as `(configure, write, read)` regular
/// expressions: it may declare nothing, publish only to [`topology::SUBMIT_EXCHANGE`]
/// (so it cannot write to another agency's inbox or to the router's exchange), and read
/// only its own inbox. The names are escaped, so the dots match dots and no code can
/// widen its own pattern.
pub fn agency_permissions(code: &str) -> (String, String, String) {
    (
        "^$".to_owned(),
        format!("^{}$", regex_escape(topology::SUBMIT_EXCHANGE)),
        format!("^{}$", regex_escape(&topology::inbox_queue(code))),
    )
}

/// Escapes `text` for RabbitMQ's (PCRE) regular expressions. Backslash before any ASCII
/// punctuation is a literal in PCRE; `-` and `_` are literals outside a character class
/// already and are left alone, so an agency code reads as itself.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_ascii_punctuation() && c != '-' && c != '_' {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl Management {
    /// A client for the API at `base_url` (e.g. `http://127.0.0.1:15672`, or with the
    /// broker's `management.path_prefix`), authenticating as `user`.
    ///
    /// # Errors
    /// A URL that is not `http(s)://`, or an HTTP client that cannot be built (TLS
    /// initialisation).
    pub fn new(base_url: &str, user: &str, password: &str) -> Result<Self, ManagementError> {
        let invalid = |reason: String| ManagementError::InvalidUrl { url: base_url.to_owned(), reason };
        let base = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid("expected http:// or https://".to_owned()));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(invalid("pass the credentials separately, not in the URL".to_owned()));
        }
        let client = Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|error| ManagementError::Http { call: "building the HTTP client".to_owned(), error })?;
        Ok(Self { base, user: user.to_owned(), password: password.to_owned(), client })
    }

    /// The API's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The user the calls authenticate as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The broker's product and version; also a cheap "is it up and do the credentials
    /// work" check.
    ///
    /// # Errors
    /// See [`ManagementError`].
    pub async fn overview(&self) -> Result<Overview, ManagementError> {
        self.get_json(&["overview"]).await
    }

    /// Creates vhost `name`, or leaves it as it is if it exists.
    ///
    /// # Errors
    /// See [`ManagementError`].
    pub async fn put_vhost(&self, name: &str) -> Result<(), ManagementError> {
        self.send(Method::PUT, &["vhosts", name], Some(&json!({})), false).await.map(drop)
    }

    /// Deletes vhost `name` with everything in it (queues, exchanges, permissions) and
    /// closes its connections. A vhost that does not exist is not an error.
    ///
    /// # Errors
    /// See [`ManagementError`].
    pub async fn delete_vhost(&self, name: &str) -> Result<(), ManagementError> {
        self.send(Method::DELETE, &["vhosts", name], None, true).await.map(drop)
    }

    /// Creates or replaces user `name`. `password: None` creates a user that cannot log
    /// in with a password (an empty `password_hash`): the user of an agency that logs in
    /// with its client certificate (`EXTERNAL`). `tags` is comma-separated
    /// (`""`, `monitoring`, `administrator`, ...).
    ///
    /// # Errors
    /// See [`ManagementError`].
    pub async fn put_user(
        &self,
        name: &str,
        password: Option<&str>,
        tags: &str,
    ) -> Result<(), ManagementError> {
        let body = match password {
            Some(password) => json!({ "password": password, "tags": tags }),
            None => json!({ "password_hash": "", "tags": tags }),
        };
        self.send(Method::PUT, &["users", name], Some(&body), false).await.map(drop)
    }

    /// Deletes user `name` (with its permissions; its connections are closed). A user
    /// that does not exist is not an error.
    ///
    /// # Errors
    /// See [`ManagementError`].
    pub async fn delete_user(&self, name: &str) -> Result<(), ManagementError> {
        self.send(Method::DELETE, &["users", name], None, true).await.map(drop)
    }

    /// Sets `user`'s permissions on `vhost`: regular expressions over the resource names
    /// it may configure (declare, delete), write (publish to) and read (consume, bind
    /// from). See [`agency_permissions`].
    ///
    /// # Errors
    /// See [`ManagementError`].
    pub async fn set_permissions(
        &self,
        vhost: &str,
        user: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<(), ManagementError> {
        let body = json!({ "configure": configure, "write": write, "read": read });
        self.send(Method::PUT, &["permissions", vhost, user], Some(&body), false).await.map(drop)
    }

    /// Removes `user`'s permissions on `vhost` (suspending it there).
    ///
    /// # Errors
    /// See [`ManagementError`]; 404 when the user had none
    /// ([`ManagementError::is_not_found`]).
    pub async fn clear_permissions(&self, vhost: &str, user: &str) -> Result<(), ManagementError> {
        self.send(Method::DELETE, &["permissions", vhost, user], None, false).await.map(drop)
    }

    /// Whether vhost `name` exists.
    ///
    /// # Errors
    /// See [`ManagementError`].
    pub async fn vhost_exists(&self, name: &str) -> Result<bool, ManagementError> {
        match self.send(Method::GET, &["vhosts", name], None, false).await {
            Ok(_) => Ok(true),
            Err(error) if error.is_not_found() => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// User `name`.
    ///
    /// # Errors
    /// See [`ManagementError`]; 404 when there is no such user
    /// ([`ManagementError::is_not_found`]).
    pub async fn get_user(&self, name: &str) -> Result<UserInfo, ManagementError> {
        self.get_json(&["users", name]).await
    }

    /// `user`'s permissions on every vhost where it has some.
    ///
    /// # Errors
    /// See [`ManagementError`]; 404 when there is no such user.
    pub async fn user_permissions(&self, user: &str) -> Result<Vec<Permissions>, ManagementError> {
        self.get_json(&["users", user, "permissions"]).await
    }

    /// Declares exchange `name` of type `kind` (`fanout`, `direct`, ...) in `vhost`:
    /// durable, not auto-deleted, not internal, no arguments, as
    /// [`topology::declare_core`] declares its exchanges. An existing exchange with the
    /// same properties is left as it is.
    ///
    /// # Errors
    /// See [`ManagementError`]; 400 when the exchange exists with other properties.
    pub async fn put_exchange(&self, vhost: &str, name: &str, kind: &str) -> Result<(), ManagementError> {
        let body = json!({ "type": kind, "durable": true, "auto_delete": false, "internal": false, "arguments": {} });
        self.send(Method::PUT, &["exchanges", vhost, name], Some(&body), false).await.map(drop)
    }

    /// Declares durable queue `name` in `vhost` with `arguments` (the `x-` arguments,
    /// e.g. [`topology::arguments_json`] of [`topology::work_queue_arguments`]). An
    /// existing queue with the same arguments is left as it is.
    ///
    /// # Errors
    /// See [`ManagementError`]; 400 when the queue exists with other arguments
    /// (PRECONDITION_FAILED).
    pub async fn put_queue(
        &self,
        vhost: &str,
        name: &str,
        arguments: &Map<String, Value>,
    ) -> Result<(), ManagementError> {
        let body = json!({ "durable": true, "auto_delete": false, "arguments": arguments });
        self.send(Method::PUT, &["queues", vhost, name], Some(&body), false).await.map(drop)
    }

    /// Binds `queue` to `exchange` with `routing_key` in `vhost`. Bindings are a set:
    /// binding again with the same key changes nothing.
    ///
    /// # Errors
    /// See [`ManagementError`]; 404 when the exchange or the queue does not exist.
    pub async fn put_binding(
        &self,
        vhost: &str,
        exchange: &str,
        queue: &str,
        routing_key: &str,
    ) -> Result<(), ManagementError> {
        let body = json!({ "routing_key": routing_key, "arguments": {} });
        let segments = ["bindings", vhost, "e", exchange, "q", queue];
        self.send(Method::POST, &segments, Some(&body), false).await.map(drop)
    }

    /// The bindings of queue `name` of `vhost`, the default exchange's included.
    ///
    /// # Errors
    /// See [`ManagementError`]; 404 when there is no such queue.
    pub async fn queue_bindings(&self, vhost: &str, name: &str) -> Result<Vec<BindingInfo>, ManagementError> {
        self.get_json(&["queues", vhost, name, "bindings"]).await
    }

    /// Queue `name` of `vhost`.
    ///
    /// # Errors
    /// See [`ManagementError`]; 404 when there is no such queue.
    pub async fn queue(&self, vhost: &str, name: &str) -> Result<QueueInfo, ManagementError> {
        self.get_json(&["queues", vhost, name]).await
    }

    /// Every queue of `vhost`.
    ///
    /// # Errors
    /// See [`ManagementError`].
    pub async fn list_queues(&self, vhost: &str) -> Result<Vec<QueueInfo>, ManagementError> {
        self.get_json(&["queues", vhost]).await
    }

    /// Every client connection to the broker, in every vhost.
    ///
    /// # Errors
    /// See [`ManagementError`].
    pub async fn list_connections(&self) -> Result<Vec<ConnectionInfo>, ManagementError> {
        self.get_json(&["connections"]).await
    }

    /// Force-closes connection `name` ([`ConnectionInfo::name`]), e.g. to cut off a
    /// suspended agency at once.
    ///
    /// # Errors
    /// See [`ManagementError`]; 404 when there is no such connection (any more).
    pub async fn close_connection(&self, name: &str) -> Result<(), ManagementError> {
        self.send(Method::DELETE, &["connections", name], None, false).await.map(drop)
    }

    /// Takes up to `count` messages from the head of `queue`. With `requeue` they go
    /// back (a peek); without, they are acknowledged and gone.
    ///
    /// A requeued fetch is still a delivery: the message comes back `redelivered`, and
    /// on a quorum queue it counts against `x-delivery-limit`, so peeking a message
    /// often enough dead-letters it.
    ///
    /// # Errors
    /// See [`ManagementError`]; 404 when there is no such queue.
    pub async fn get_messages(
        &self,
        vhost: &str,
        queue: &str,
        count: u32,
        requeue: bool,
    ) -> Result<Vec<PeekedMessage>, ManagementError> {
        let ackmode = if requeue { "ack_requeue_true" } else { "ack_requeue_false" };
        let body = json!({ "count": count, "ackmode": ackmode, "encoding": "base64" });
        let segments = ["queues", vhost, queue, "get"];
        let (call, text) = self.send(Method::POST, &segments, Some(&body), false).await?;
        let raw: Vec<RawMessage> = serde_json::from_str(&text)
            .map_err(|error| ManagementError::Decode { call: call.clone(), error })?;
        raw.into_iter()
            .map(|message| {
                let payload = if message.payload_encoding == "base64" {
                    base64_decode(&message.payload)
                        .ok_or_else(|| ManagementError::Payload { call: call.clone() })?
                } else {
                    message.payload.into_bytes()
                };
                Ok(PeekedMessage {
                    payload,
                    redelivered: message.redelivered,
                    exchange: message.exchange,
                    routing_key: message.routing_key,
                    message_count: message.message_count,
                    properties: message.properties,
                })
            })
            .collect()
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            // `new` made sure the base can have a path; this cannot fail.
            path.pop_if_empty().push("api").extend(segments);
        }
        url
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
    ) -> Result<T, ManagementError> {
        let (call, text) = self.send(Method::GET, segments, None, false).await?;
        serde_json::from_str(&text).map_err(|error| ManagementError::Decode { call, error })
    }

    /// One call; returns its name and the body of a 2xx answer (or of a 404 when
    /// `not_found_ok`).
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
        not_found_ok: bool,
    ) -> Result<(String, String), ManagementError> {
        let url = self.url(segments);
        let call = format!("{method} {}", url.path());
        let mut request = self.client.request(method, url).basic_auth(&self.user, Some(&self.password));
        if let Some(body) = body {
            request = request.json(body);
        }
        let http = |error| ManagementError::Http { call: call.clone(), error };
        let response = request.send().await.map_err(http)?;
        let status = response.status();
        let text = response.text().await.map_err(http)?;
        if status.is_success() || (not_found_ok && status == StatusCode::NOT_FOUND) {
            Ok((call, text))
        } else {
            let mut body = text;
            if body.len() > MAX_ERROR_BODY {
                let mut end = MAX_ERROR_BODY;
                while !body.is_char_boundary(end) {
                    end -= 1;
                }
                body.truncate(end);
            }
            Err(ManagementError::Status { call, status, body })
        }
    }
}

/// Decodes standard base64 (with or without `=` padding), as the API encodes payloads.
/// Small enough to keep here rather than add a dependency for one call site.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let digits = text.trim_end_matches('=').as_bytes();
    if digits.len() % 4 == 1 || text.len() - digits.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut bits = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            bits |= value(c)? << (18 - 6 * i);
        }
        let [_, a, b, c] = bits.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..chunk.len() - 1]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agency_permissions_are_exactly_the_design() {
        let (configure, write, read) = agency_permissions("MOF-HR");
        assert_eq!(configure, "^$");
        assert_eq!(write, r"^mirsal\.submit$");
        assert_eq!(read, r"^mirsal\.inbox\.MOF-HR$");
        // Whatever it is given, nothing in the name acts as a regex operator.
        let (_, _, read) = agency_permissions("A.*|B");
        assert_eq!(read, r"^mirsal\.inbox\.A\.\*\|B$");
    }

    #[test]
    fn names_are_single_path_segments() {
        let management = Management::new("http://127.0.0.1:15672", "guest", "guest").unwrap();
        assert_eq!(
            management.url(&["queues", "/", "mirsal.inbox.A"]).path(),
            "/api/queues/%2F/mirsal.inbox.A"
        );
        assert_eq!(
            management.url(&["connections", "127.0.0.1:1 -> 127.0.0.1:5672"]).path(),
            "/api/connections/127.0.0.1:1%20-%3E%20127.0.0.1:5672"
        );
        let prefixed = Management::new("https://broker.example/rabbitmq/", "u", "p").unwrap();
        assert_eq!(prefixed.url(&["overview"]).as_str(), "https://broker.example/rabbitmq/api/overview");
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let management = Management::new("http://127.0.0.1:15672", "guest", "s3cret").unwrap();
        assert!(!format!("{management:?}").contains("s3cret"));
    }

    #[test]
    fn bad_base_urls_are_refused() {
        assert!(Management::new("amqp://127.0.0.1:5672", "u", "p").is_err());
        assert!(Management::new("http://guest:guest@127.0.0.1:15672", "u", "p").is_err());
        assert!(Management::new("not a url", "u", "p").is_err());
    }

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("AP8=").unwrap(), [0x00, 0xff]);
        assert_eq!(base64_decode("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
        assert_eq!(base64_decode("AAECAwQF").unwrap(), [0, 1, 2, 3, 4, 5]);
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a$==").is_none());
        assert!(base64_decode("aa===").is_none());
    }

    #[test]
    fn user_tags_are_read_in_either_form() {
        let new: UserInfo =
            serde_json::from_str(r#"{"name":"A","password_hash":"","tags":["monitoring","management"]}"#)
                .unwrap();
        assert_eq!(new.tags, ["monitoring", "management"]);
        let old: UserInfo = serde_json::from_str(r#"{"name":"A","tags":"monitoring, management"}"#).unwrap();
        assert_eq!(old.tags, ["monitoring", "management"]);
        let none: UserInfo = serde_json::from_str(r#"{"name":"A","tags":""}"#).unwrap();
        assert!(none.tags.is_empty());
    }

    #[test]
    fn bindings_go_to_their_own_path() {
        let management = Management::new("http://127.0.0.1:15672", "guest", "guest").unwrap();
        assert_eq!(
            management.url(&["bindings", "mirsal", "e", "mirsal.deliver", "q", "mirsal.inbox.A"]).path(),
            "/api/bindings/mirsal/e/mirsal.deliver/q/mirsal.inbox.A"
        );
    }

    #[test]
    fn connections_carry_the_client_name() {
        let json = r#"[{"name":"127.0.0.1:1 -> 127.0.0.1:5672","user":"A","vhost":"/",
            "client_properties":{"connection_name":"router"}},{"name":"x","user":"B","vhost":"v"}]"#;
        let connections: Vec<ConnectionInfo> = serde_json::from_str(json).unwrap();
        assert_eq!(connections[0].connection_name.as_deref(), Some("router"));
        assert_eq!(connections[1].connection_name, None);
    }
}
