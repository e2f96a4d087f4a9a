//! `mirsal status | track | search | queues | dead-letters`: the platform team's view of
//! a running router, through its HTTP API (`crates/router/src/http.rs`, described in
//! `docs/router-openapi.yaml`).
//!
//! Every command takes `--router-url` (`MIRSAL_ROUTER_URL`, default
//! `http://127.0.0.1:8470`) and the API's bearer token from `--token-file`
//! (`MIRSAL_ROUTER_TOKEN_FILE`, the router's `http.token_file`) or, without one, from
//! `MIRSAL_ROUTER_TOKEN`. It prints tables, or with `--json` the API's JSON as it came.
//!
//! Failures are one line and exit code 2: the HTTP status with the API's `error` text,
//! a missing or wrong token (401), or the URL of a router that cannot be reached. A
//! dead letter that a replay did not deliver (refused again, or kept after a transient
//! failure) exits with 1 after printing the outcome ([`NotReplayed`]).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::Table;
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;

/// The environment variable with the router's HTTP API base URL.
pub(crate) const ROUTER_URL_ENV: &str = "MIRSAL_ROUTER_URL";
/// The environment variable with the path of the bearer token file.
pub(crate) const TOKEN_FILE_ENV: &str = "MIRSAL_ROUTER_TOKEN_FILE";
/// The environment variable with the bearer token itself (when there is no file).
pub(crate) const TOKEN_ENV: &str = "MIRSAL_ROUTER_TOKEN";

/// How long one API call may take. Replaying every dead letter at a bounded rate may
/// take much longer, so that call has no limit.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most pages `search --all` follows (50 000 letters at the default page size).
const MAX_PAGES: usize = 1000;

/// What a cell shows for a figure the router does not have (no management API sample).
const NONE: &str = "–";

#[derive(Debug, Subcommand)]
pub(crate) enum OpsCommand {
    /// The router's readiness, its live figures, and every agency with its health.
    ///
    /// With --json: `{"readyz": …, "summary": …, "agencies": …}`, the answers of
    /// /readyz, /api/v1/summary and /api/v1/agencies.
    Status(StatusArgs),
    /// One envelope: its header and each recipient's timeline.
    Track(TrackArgs),
    /// Find letters by agency, direction, thread, date, number, status, priority.
    ///
    /// Newest first, one page (`--limit`, default 50) at a time; `--all` follows the
    /// pages to the end (with --json, one `{"items": […], "next_cursor": null}`).
    Search(SearchArgs),
    /// Each agency's inbox (depth, consumers, unacked, undelivered, oldest pending,
    /// overdue), and the ingress and dead-letter queues.
    ///
    /// With --json: `{"agencies": […], "management": bool, "queues": {…}}`, from
    /// /api/v1/agencies and the `queues` of /api/v1/summary.
    Queues(QueuesArgs),
    /// The dead-letter queue: list, show, replay, discard.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeadLetterCommand {
    /// List the dead letters, oldest first.
    List(ListArgs),
    /// One dead letter with its envelope's JSON view (sealed letters stay sealed).
    Show(IdArgs),
    /// Run one dead letter (or all of them) through the router's pipeline again.
    ///
    /// Fix the cause first (reactivate the recipient, renew the certificate). Exits
    /// with 1 when a dead letter was refused again or kept.
    Replay(ReplayArgs),
    /// Remove a dead letter for good (the router records it in the audit log).
    Discard(IdArgs),
}

/// Where the router is, how to authenticate, how to print.
#[derive(Debug, Clone, Args)]
pub(crate) struct RouterArgs {
    /// The router's HTTP API.
    #[arg(long, env = ROUTER_URL_ENV, default_value = "http://127.0.0.1:8470")]
    router_url: String,
    /// A file holding the API's bearer token (the router's `http.token_file`). Without
    /// one, the token is read from the environment variable MIRSAL_ROUTER_TOKEN.
    #[arg(long, env = TOKEN_FILE_ENV)]
    token_file: Option<PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    router: RouterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct QueuesArgs {
    #[command(flatten)]
    router: RouterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TrackArgs {
    /// The envelope id.
    id: String,
    #[command(flatten)]
    router: RouterArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Direction {
    Sent,
    Received,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Priority {
    Normal,
    Urgent,
    Immediate,
}

/// The tracking statuses the search accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TrackingStatus {
    Accepted,
    Queued,
    Delivered,
    Registered,
    Referred,
    Answered,
    Closed,
    Refused,
}

fn value_name(value: &impl ValueEnum) -> String {
    value.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
}

#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    /// An agency that sent or received the letter.
    #[arg(long)]
    agency: Option<String>,
    /// With --agency: letters it sent, or received.
    #[arg(long, value_enum, requires = "agency")]
    direction: Option<Direction>,
    /// A thread id (the first letter's envelope id).
    #[arg(long)]
    thread: Option<String>,
    /// Accepted at or after this time (RFC 3339, e.g. 2026-03-01T00:00:00+03:00).
    #[arg(long, value_parser = rfc3339)]
    from: Option<DateTime<Utc>>,
    /// Accepted before this time (RFC 3339).
    #[arg(long, value_parser = rfc3339)]
    to: Option<DateTime<Utc>>,
    /// The sender's outgoing number.
    #[arg(long)]
    outgoing_number: Option<String>,
    /// A recipient's incoming number (from its `registered` receipt).
    #[arg(long)]
    incoming_number: Option<String>,
    /// Some recipient's tracking status.
    #[arg(long, value_enum)]
    status: Option<TrackingStatus>,
    /// The letter's priority.
    #[arg(long, value_enum)]
    priority: Option<Priority>,
    /// Only letters reported overdue (delivery or reply).
    #[arg(long)]
    overdue: bool,
    /// Results per page.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=500))]
    limit: Option<u16>,
    /// Start after this point (the `next_cursor` a previous page printed).
    #[arg(long)]
    cursor: Option<String>,
    /// Follow `next_cursor` to the last page and print every result.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    router: RouterArgs,
}

fn rfc3339(text: &str) -> std::result::Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 time such as 2026-03-01T08:00:00Z: {e}"))
}

impl SearchArgs {
    /// The API's query parameters, without the cursor.
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        let mut put = |name, value: Option<String>| {
            if let Some(value) = value {
                query.push((name, value));
            }
        };
        put("agency", self.agency.clone());
        put("direction", self.direction.as_ref().map(value_name));
        put("thread", self.thread.clone());
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        put("from", self.from.as_ref().map(time));
        put("to", self.to.as_ref().map(time));
        put("outgoing_number", self.outgoing_number.clone());
        put("incoming_number", self.incoming_number.clone());
        put("status", self.status.as_ref().map(value_name));
        put("priority", self.priority.as_ref().map(value_name));
        put("overdue", self.overdue.then(|| "true".to_owned()));
        put("limit", self.limit.map(|l| l.to_string()));
        query
    }
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// At most this many.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    limit: Option<u16>,
    #[command(flatten)]
    router: RouterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// The dead letter's id (16 hex digits, from `mirsal dead-letters list`).
    id: String,
    #[command(flatten)]
    router: RouterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The dead letter's id.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    id: Option<String>,
    /// Replay every dead letter.
    #[arg(long)]
    all: bool,
    /// With --all: at most this many a second (the router's default is 20).
    #[arg(long, conflicts_with = "id", value_parser = clap::value_parser!(u32).range(1..=1000))]
    per_second: Option<u32>,
    #[command(flatten)]
    router: RouterArgs,
}

/// A replay that did not deliver every dead letter it was asked to (the outcome has
/// been printed); exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NotReplayed(String);

/// A failed API call, in one line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("cannot reach the router at {url}: {detail} (set --router-url or MIRSAL_ROUTER_URL)")]
    Unreachable { url: String, detail: String },
    #[error("the router at {url} did not answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("{method} {url}: 401 Unauthorized: {why}")]
    Unauthorized { method: Method, url: String, why: String },
    #[error("{method} {url}: {status}{}", suffix(.message))]
    Status { method: Method, url: String, status: StatusCode, message: String },
    #[error("{method} {url}: the answer is not the JSON expected: {detail}")]
    Unexpected { method: Method, url: String, detail: String },
}

fn suffix(message: &str) -> String {
    if message.is_empty() { String::new() } else { format!(": {message}") }
}

/// Where the bearer token came from, for the 401 message.
#[derive(Debug, Clone)]
enum TokenSource {
    File(PathBuf),
    Environment,
    None,
}

/// The router's HTTP API.
struct Api {
    base: Url,
    token: Option<String>,
    source: TokenSource,
    http: reqwest::Client,
}

impl Api {
    fn new(args: &RouterArgs) -> Result<Self> {
        let base = Url::parse(&args.router_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .with_context(|| {
                format!(
                    "--router-url {:?} is not an http(s) URL such as http://127.0.0.1:8470",
                    args.router_url
                )
            })?;
        let (token, source) = match &args.token_file {
            Some(path) => (Some(read_token(path)?), TokenSource::File(path.clone())),
            None => match std::env::var(TOKEN_ENV) {
                Ok(token) if !token.trim().is_empty() => {
                    (Some(token.trim().to_owned()), TokenSource::Environment)
                }
                _ => (None, TokenSource::None),
            },
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .context("starting the HTTP client")?;
        Ok(Self { base, token, source, http })
    }

    /// The URL of `segments` under the base URL (each segment percent-encoded).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Calls the API; returns the status and the JSON body. `ok` lists the statuses
    /// that are answers rather than errors (besides 2xx).
    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        timeout: Option<Duration>,
        ok: &[StatusCode],
    ) -> Result<(StatusCode, Value), ApiError> {
        let url = self.url(segments);
        let shown = url.to_string();
        let mut request = self.http.request(method.clone(), url);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let failed = |error: reqwest::Error| {
            if error.is_timeout() {
                ApiError::Timeout {
                    url: self.base.to_string(),
                    seconds: timeout.unwrap_or(CONNECT_TIMEOUT).as_secs(),
                }
            } else if error.is_connect() || error.is_request() {
                ApiError::Unreachable { url: self.base.to_string(), detail: innermost(&error) }
            } else {
                ApiError::Unexpected { method: method.clone(), url: shown.clone(), detail: innermost(&error) }
            }
        };
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let text = response.text().await.map_err(failed)?;
        if status.is_success() || ok.contains(&status) {
            let value = serde_json::from_str(&text).map_err(|e| ApiError::Unexpected {
                method: method.clone(),
                url: shown.clone(),
                detail: e.to_string(),
            })?;
            return Ok((status, value));
        }
        let message = error_text(&text);
        if status == StatusCode::UNAUTHORIZED {
            let why = match &self.source {
                TokenSource::None => format!(
                    "no bearer token given: set --token-file, {TOKEN_FILE_ENV} or {TOKEN_ENV} (the router's \
                     http.token_file)"
                ),
                TokenSource::File(path) => {
                    format!("the bearer token in {} is wrong ({message})", path.display())
                }
                TokenSource::Environment => format!("the bearer token in {TOKEN_ENV} is wrong ({message})"),
            };
            return Err(ApiError::Unauthorized { method, url: shown, why });
        }
        Err(ApiError::Status { method, url: shown, status, message })
    }

    async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Value, ApiError> {
        Ok(self.call(Method::GET, segments, query, Some(CALL_TIMEOUT), &[]).await?.1)
    }
}

/// The innermost cause of `error` (e.g. "Connection refused (os error 111)").
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// The API's `error` text from an error body, or the body's first line.
fn error_text(body: &str) -> String {
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(body)
        && let Some(Value::String(error)) = object.get("error")
    {
        return error.replace('\n', " ");
    }
    let line = body.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    line.chars().take(300).collect()
}

fn read_token(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the router's token file {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the router's token file {} is empty", path.display());
    }
    Ok(token.to_owned())
}

fn typed<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T> {
    serde_json::from_value(value.clone())
        .with_context(|| format!("the router's {what} is not what this mirsal expects"))
}

fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) fn run(command: OpsCommand) -> Result<()> {
    crate::runtime()?.block_on(async {
        match command {
            OpsCommand::Status(args) => status(&args).await,
            OpsCommand::Track(args) => track(&args).await,
            OpsCommand::Search(args) => search(&args).await,
            OpsCommand::Queues(args) => queues(&args).await,
            OpsCommand::DeadLetters(command) => dead_letters(command).await,
        }
    })
}

// The API's shapes (crates/router/src/views.rs and deadletters.rs), as far as the
// tables need them.

#[derive(Debug, Deserialize)]
struct Ready {
    ready: bool,
    broker: bool,
    consuming: bool,
}

#[derive(Debug, Deserialize)]
struct Summary {
    accepted_letters: i64,
    rejected: i64,
    receipts: i64,
    in_flight: i64,
    latency_p50: Option<f64>,
    latency_p99: Option<f64>,
    latency_samples: usize,
    dead_letters: usize,
    #[serde(default)]
    queues: std::collections::BTreeMap<String, Option<u64>>,
}

#[derive(Debug, Deserialize)]
struct Agencies {
    agencies: Vec<Agency>,
    management: bool,
}

#[derive(Debug, Deserialize)]
struct Agency {
    code: String,
    name_en: String,
    name_ar: String,
    status: String,
    clearance: String,
    inbox: QueueFigures,
    undelivered: u64,
    oldest_pending_seconds: Option<i64>,
    overdue: u64,
    sent_today: u64,
    received_today: u64,
    health: String,
}

#[derive(Debug, Deserialize)]
struct QueueFigures {
    name: String,
    messages: Option<u64>,
    ready: Option<u64>,
    unacknowledged: Option<u64>,
    consumers: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct EnvelopeView {
    id: String,
    kind: String,
    sender: String,
    recipients: Vec<Recipient>,
    classification: String,
    priority: String,
    created_at: Option<DateTime<Utc>>,
    accepted_at: Option<DateTime<Utc>>,
    audit_sequence: u64,
    thread_id: String,
    in_reply_to: String,
    reply_due: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    subject: Option<String>,
    outgoing_number: Option<String>,
    attachments: Vec<Attachment>,
    sealed: bool,
    about: Option<String>,
    digest: String,
    size: usize,
    tracking: Vec<Tracking>,
}

#[derive(Debug, Deserialize)]
struct Recipient {
    agency: String,
    role: String,
}

#[derive(Debug, Deserialize)]
struct Attachment {
    name: String,
    media_type: String,
    size: usize,
    main_document: bool,
}

#[derive(Debug, Deserialize)]
struct Tracking {
    agency: String,
    status: String,
    incoming_number: String,
    delivery_overdue: bool,
    reply_overdue: bool,
    timeline: Vec<Step>,
}

#[derive(Debug, Deserialize)]
struct Step {
    status: String,
    at: Option<DateTime<Utc>>,
    receipt_id: String,
    detail: String,
}

#[derive(Debug, Deserialize)]
struct SearchPage {
    items: Vec<LetterSummary>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LetterSummary {
    id: String,
    kind: String,
    sender: String,
    recipients: Vec<String>,
    subject: Option<String>,
    classification: String,
    priority: String,
    accepted_at: Option<DateTime<Utc>>,
    statuses: Vec<StatusView>,
    overdue: bool,
}

#[derive(Debug, Deserialize)]
struct StatusView {
    agency: String,
    status: String,
}

#[derive(Debug, Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct DeadLetter {
    id: String,
    message_id: Option<String>,
    reason_code: Option<i32>,
    reason: Option<String>,
    origin: Option<String>,
    queue: Option<String>,
    death: String,
    size: usize,
    received_at: Option<DateTime<Utc>>,
    last_died_at: Option<DateTime<Utc>>,
    deaths: u32,
}

#[derive(Debug, Deserialize)]
struct Replayed {
    id: String,
    outcome: String,
    reason_code: Option<i32>,
    detail: Option<String>,
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED).set_header(header.to_vec());
    table
}

fn time(at: Option<&DateTime<Utc>>) -> String {
    at.map_or_else(|| NONE.to_owned(), |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
}

fn figure(value: Option<u64>) -> String {
    value.map_or_else(|| NONE.to_owned(), |v| v.to_string())
}

fn or_none(text: &str) -> String {
    if text.is_empty() { NONE.to_owned() } else { text.to_owned() }
}

/// `54s`, `12m 5s`, `3h 2m`, `2d 4h`.
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn milliseconds(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| NONE.to_owned(), |s| format!("{:.0} ms", s * 1000.0))
}

async fn status(args: &StatusArgs) -> Result<()> {
    let api = Api::new(&args.router)?;
    let (_, readyz) = api
        .call(Method::GET, &["readyz"], &[], Some(CALL_TIMEOUT), &[StatusCode::SERVICE_UNAVAILABLE])
        .await?;
    let summary = api.get(&["api", "v1", "summary"], &[]).await?;
    let agencies = api.get(&["api", "v1", "agencies"], &[]).await?;
    if args.router.json {
        return print_json(
            &serde_json::json!({ "readyz": readyz, "summary": summary, "agencies": agencies }),
        );
    }
    let ready: Ready = typed(&readyz, "readiness")?;
    let summary: Summary = typed(&summary, "summary")?;
    let agencies: Agencies = typed(&agencies, "agency list")?;
    println!(
        "router {}: {} (broker {}, {})",
        api.base,
        if ready.ready { "ready" } else { "NOT READY" },
        if ready.broker { "connected" } else { "disconnected" },
        if ready.consuming { "consuming mirsal.ingress" } else { "not consuming mirsal.ingress" },
    );
    let mut figures = table(&["FIGURE", "VALUE"]);
    figures.add_row(["letters accepted".to_owned(), summary.accepted_letters.to_string()]);
    figures.add_row(["envelopes refused".to_owned(), summary.rejected.to_string()]);
    figures.add_row(["receipts".to_owned(), summary.receipts.to_string()]);
    figures.add_row(["in flight".to_owned(), summary.in_flight.to_string()]);
    figures.add_row(["dead letters".to_owned(), summary.dead_letters.to_string()]);
    figures.add_row([
        "submit → queued, last minute".to_owned(),
        format!(
            "p50 {} · p99 {} · {} letters",
            milliseconds(summary.latency_p50),
            milliseconds(summary.latency_p99),
            summary.latency_samples
        ),
    ]);
    for (queue, messages) in &summary.queues {
        if !queue.starts_with(INBOX_PREFIX) {
            figures.add_row([format!("{queue} messages"), figure(*messages)]);
        }
    }
    println!("{figures}");
    let mut list = table(&[
        "CODE",
        "NAME",
        "الاسم",
        "STATUS",
        "HEALTH",
        "INBOX",
        "UNDELIVERED",
        "OVERDUE",
        "SENT TODAY",
        "RECEIVED TODAY",
    ]);
    for agency in &agencies.agencies {
        list.add_row([
            agency.code.clone(),
            agency.name_en.clone(),
            agency.name_ar.clone(),
            agency.status.clone(),
            agency.health.clone(),
            figure(agency.inbox.messages),
            agency.undelivered.to_string(),
            agency.overdue.to_string(),
            agency.sent_today.to_string(),
            agency.received_today.to_string(),
        ]);
    }
    println!("{list}");
    if !agencies.management {
        println!("(the router has no management API configured: no queue figures)");
    }
    Ok(())
}

const INBOX_PREFIX: &str = "mirsal.inbox.";

async fn track(args: &TrackArgs) -> Result<()> {
    let api = Api::new(&args.router)?;
    let value = api.get(&["api", "v1", "envelopes", &args.id], &[]).await?;
    if args.router.json {
        return print_json(&value);
    }
    let envelope: EnvelopeView = typed(&value, "envelope view")?;
    let mut header = table(&["FIELD", "VALUE"]);
    let recipients = envelope
        .recipients
        .iter()
        .map(|r| format!("{} ({})", r.agency, r.role))
        .collect::<Vec<_>>()
        .join("\n");
    let subject = match (&envelope.subject, envelope.sealed) {
        (Some(subject), _) => subject.clone(),
        (None, true) => "(sealed: not readable by the router)".to_owned(),
        (None, false) => NONE.to_owned(),
    };
    let rows: Vec<(&str, String)> = vec![
        ("id", envelope.id.clone()),
        ("kind", envelope.kind.clone()),
        ("sender", envelope.sender.clone()),
        ("recipients", recipients),
        ("classification", envelope.classification.clone()),
        ("priority", envelope.priority.clone()),
        ("subject", subject),
        ("outgoing number", or_none(envelope.outgoing_number.as_deref().unwrap_or_default())),
        ("created", time(envelope.created_at.as_ref())),
        ("accepted", time(envelope.accepted_at.as_ref())),
        ("audit sequence", envelope.audit_sequence.to_string()),
        ("thread", or_none(&envelope.thread_id)),
        ("in reply to", or_none(&envelope.in_reply_to)),
        ("reply due", time(envelope.reply_due.as_ref())),
        ("expires", time(envelope.expires_at.as_ref())),
        ("about", or_none(envelope.about.as_deref().unwrap_or_default())),
        (
            "attachments",
            or_none(
                &envelope
                    .attachments
                    .iter()
                    .map(|a| {
                        format!(
                            "{} ({}, {} bytes){}",
                            a.name,
                            a.media_type,
                            a.size,
                            if a.main_document { ", main document" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ),
        ("digest (SHA-256)", envelope.digest.clone()),
        ("size", format!("{} bytes", envelope.size)),
    ];
    for (field, value) in rows {
        header.add_row([field.to_owned(), value]);
    }
    println!("{header}");
    if envelope.tracking.is_empty() {
        return Ok(());
    }
    let mut timeline = table(&["RECIPIENT", "STEP", "AT", "RECEIPT", "DETAIL"]);
    for row in &envelope.tracking {
        let mut flags = vec![format!("now {}", row.status)];
        if !row.incoming_number.is_empty() {
            flags.push(format!("incoming no. {}", row.incoming_number));
        }
        if row.delivery_overdue {
            flags.push("delivery overdue".into());
        }
        if row.reply_overdue {
            flags.push("reply overdue".into());
        }
        for (index, step) in row.timeline.iter().enumerate() {
            let agency =
                if index == 0 { format!("{}\n{}", row.agency, flags.join("\n")) } else { String::new() };
            timeline.add_row([
                agency,
                step.status.clone(),
                time(step.at.as_ref()),
                or_none(&step.receipt_id),
                or_none(&step.detail),
            ]);
        }
    }
    println!("{timeline}");
    Ok(())
}

async fn search(args: &SearchArgs) -> Result<()> {
    let api = Api::new(&args.router)?;
    let base = args.query();
    let mut cursor = args.cursor.clone();
    let mut pages = Vec::new();
    loop {
        let mut query = base.clone();
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let page = api.get(&["api", "v1", "search"], &query).await?;
        let next = page.get("next_cursor").and_then(Value::as_str).map(str::to_owned);
        pages.push(page);
        match next {
            Some(next) if args.all => {
                if cursor.as_deref() == Some(next.as_str()) || pages.len() >= MAX_PAGES {
                    bail!("search --all: the router keeps answering with cursor {next:?}; stopped");
                }
                cursor = Some(next);
            }
            _ => break,
        }
    }
    let merged = if args.all {
        let items: Vec<Value> = pages
            .iter()
            .flat_map(|p| p.get("items").and_then(Value::as_array).cloned().unwrap_or_default())
            .collect();
        serde_json::json!({ "items": items, "next_cursor": null })
    } else {
        pages.pop().unwrap_or(Value::Null)
    };
    if args.router.json {
        return print_json(&merged);
    }
    let page: SearchPage = typed(&merged, "search page")?;
    let mut list = table(&[
        "ID",
        "ACCEPTED",
        "FROM",
        "TO",
        "SUBJECT",
        "PRIORITY",
        "CLASSIFICATION",
        "STATUS",
        "OVERDUE",
    ]);
    for letter in &page.items {
        let subject = match (&letter.subject, letter.kind.as_str()) {
            (Some(subject), _) => subject.clone(),
            (None, "sealed") => "(sealed)".to_owned(),
            (None, _) => NONE.to_owned(),
        };
        list.add_row([
            letter.id.clone(),
            time(letter.accepted_at.as_ref()),
            letter.sender.clone(),
            letter.recipients.join("\n"),
            subject,
            letter.priority.clone(),
            letter.classification.clone(),
            letter
                .statuses
                .iter()
                .map(|s| format!("{}: {}", s.agency, s.status))
                .collect::<Vec<_>>()
                .join("\n"),
            if letter.overdue { "yes" } else { "" }.to_owned(),
        ]);
    }
    println!("{list}");
    println!("{} letter(s)", page.items.len());
    if let Some(next) = page.next_cursor {
        println!("more: --cursor {next} (or --all)");
    }
    Ok(())
}

async fn queues(args: &QueuesArgs) -> Result<()> {
    let api = Api::new(&args.router)?;
    let agencies = api.get(&["api", "v1", "agencies"], &[]).await?;
    let summary = api.get(&["api", "v1", "summary"], &[]).await?;
    if args.router.json {
        let queues = summary.get("queues").cloned().unwrap_or(Value::Null);
        return print_json(&serde_json::json!({
            "agencies": agencies.get("agencies").cloned().unwrap_or(Value::Null),
            "management": agencies.get("management").cloned().unwrap_or(Value::Null),
            "queues": queues,
            "dead_letters": summary.get("dead_letters").cloned().unwrap_or(Value::Null),
        }));
    }
    let agencies: Agencies = typed(&agencies, "agency list")?;
    let summary: Summary = typed(&summary, "summary")?;
    let mut list = table(&[
        "QUEUE",
        "AGENCY",
        "MESSAGES",
        "READY",
        "UNACKED",
        "CONSUMERS",
        "UNDELIVERED",
        "OLDEST PENDING",
        "OVERDUE",
        "HEALTH",
    ]);
    for agency in &agencies.agencies {
        let inbox = &agency.inbox;
        list.add_row([
            inbox.name.clone(),
            format!("{} ({}, {})", agency.code, agency.status, agency.clearance),
            figure(inbox.messages),
            figure(inbox.ready),
            figure(inbox.unacknowledged),
            figure(inbox.consumers),
            agency.undelivered.to_string(),
            agency.oldest_pending_seconds.map_or_else(|| NONE.to_owned(), age),
            agency.overdue.to_string(),
            agency.health.clone(),
        ]);
    }
    for (queue, messages) in &summary.queues {
        if queue.starts_with(INBOX_PREFIX) {
            continue;
        }
        let blank = || NONE.to_owned();
        list.add_row([
            queue.clone(),
            blank(),
            figure(*messages),
            blank(),
            blank(),
            blank(),
            blank(),
            blank(),
            blank(),
            blank(),
        ]);
    }
    println!("{list}");
    println!(
        "{} dead letter(s) kept by the router, out of {} (mirsal dead-letters list)",
        summary.dead_letters,
        mirsal_bus::topology::DEAD_LETTER_QUEUE
    );
    if !agencies.management {
        println!("(the router has no management API configured: no queue figures)");
    } else if summary.queues.is_empty() {
        println!("(no queue figures yet: the router samples the management API every few seconds)");
    }
    Ok(())
}

async fn dead_letters(command: DeadLetterCommand) -> Result<()> {
    match command {
        DeadLetterCommand::List(args) => {
            let api = Api::new(&args.router)?;
            let query: Vec<(&str, String)> =
                args.limit.map(|l| ("limit", l.to_string())).into_iter().collect();
            let value = api.get(&["api", "v1", "dead-letters"], &query).await?;
            if args.router.json {
                return print_json(&value);
            }
            let list: Items<DeadLetter> = typed(&value, "dead-letter list")?;
            if list.items.is_empty() {
                println!("no dead letters");
                return Ok(());
            }
            let mut shown = table(&[
                "ID",
                "MESSAGE ID",
                "ORIGIN",
                "DIED IN",
                "DEATH",
                "REASON",
                "DEATHS",
                "LAST DIED",
                "SIZE",
            ]);
            for dead in &list.items {
                shown.add_row([
                    dead.id.clone(),
                    dead.message_id.clone().unwrap_or_else(|| NONE.to_owned()),
                    dead.origin.clone().unwrap_or_else(|| NONE.to_owned()),
                    dead.queue.clone().unwrap_or_else(|| NONE.to_owned()),
                    dead.death.clone(),
                    reason(dead.reason_code, dead.reason.as_deref()),
                    dead.deaths.to_string(),
                    time(dead.last_died_at.as_ref()),
                    dead.size.to_string(),
                ]);
            }
            println!("{shown}");
            println!("{} dead letter(s)", list.items.len());
            Ok(())
        }
        DeadLetterCommand::Show(args) => {
            let api = Api::new(&args.router)?;
            let value = api.get(&["api", "v1", "dead-letters", &args.id], &[]).await?;
            if args.router.json {
                return print_json(&value);
            }
            let dead: DeadLetter = typed(&value, "dead letter")?;
            print_dead_letter(&dead);
            match value.get("envelope") {
                Some(envelope) if !envelope.is_null() => {
                    println!("envelope:\n{}", serde_json::to_string_pretty(envelope)?);
                }
                _ => println!("(the body is not an envelope)"),
            }
            Ok(())
        }
        DeadLetterCommand::Replay(args) => {
            let api = Api::new(&args.router)?;
            let (value, items) = match &args.id {
                Some(id) if !args.all => {
                    let (_, value) = api
                        .call(
                            Method::POST,
                            &["api", "v1", "dead-letters", id, "replay"],
                            &[],
                            Some(CALL_TIMEOUT),
                            &[],
                        )
                        .await?;
                    let one: Replayed = typed(&value, "replay outcome")?;
                    (value, vec![one])
                }
                _ => {
                    let query: Vec<(&str, String)> =
                        args.per_second.map(|n| ("per_second", n.to_string())).into_iter().collect();
                    let (_, value) = api
                        .call(Method::POST, &["api", "v1", "dead-letters", "replay"], &query, None, &[])
                        .await?;
                    let all: Items<Replayed> = typed(&value, "replay outcomes")?;
                    (value, all.items)
                }
            };
            if args.router.json {
                print_json(&value)?;
            } else {
                let mut shown = table(&["ID", "OUTCOME", "REASON", "DETAIL"]);
                for item in &items {
                    shown.add_row([
                        item.id.clone(),
                        item.outcome.clone(),
                        item.reason_code.map_or_else(|| NONE.to_owned(), |c| c.to_string()),
                        item.detail.clone().unwrap_or_else(|| NONE.to_owned()),
                    ]);
                }
                println!("{shown}");
                let delivered = items.iter().filter(|i| delivered(i)).count();
                println!("{delivered} of {} replayed dead letter(s) delivered", items.len());
            }
            let failed: Vec<String> = items
                .iter()
                .filter(|i| !delivered(i))
                .map(|i| {
                    let code = i.reason_code.map(|c| format!(" [reason {c}]")).unwrap_or_default();
                    format!("{} {}{code}: {}", i.id, i.outcome, i.detail.as_deref().unwrap_or(""))
                })
                .collect();
            if failed.is_empty() {
                Ok(())
            } else {
                Err(NotReplayed(format!(
                    "{} dead letter(s) not delivered: {}",
                    failed.len(),
                    failed.join("; ")
                ))
                .into())
            }
        }
        DeadLetterCommand::Discard(args) => {
            let api = Api::new(&args.router)?;
            let (_, value) = api
                .call(Method::DELETE, &["api", "v1", "dead-letters", &args.id], &[], Some(CALL_TIMEOUT), &[])
                .await?;
            if args.router.json {
                return print_json(&value);
            }
            let dead: DeadLetter = typed(&value, "discarded dead letter")?;
            println!("discarded dead letter {} (recorded in the audit log)", dead.id);
            print_dead_letter(&dead);
            Ok(())
        }
    }
}

fn reason(code: Option<i32>, reason: Option<&str>) -> String {
    match (code, reason) {
        (Some(code), Some(reason)) => format!("{code} {reason}"),
        (Some(code), None) => code.to_string(),
        (None, Some(reason)) => reason.to_owned(),
        (None, None) => NONE.to_owned(),
    }
}

/// Accepted by the pipeline, or a copy put back into the inbox it died in.
fn delivered(replayed: &Replayed) -> bool {
    matches!(replayed.outcome.as_str(), "accepted" | "redelivered")
}

fn print_dead_letter(dead: &DeadLetter) {
    let mut shown = table(&["FIELD", "VALUE"]);
    let none = || NONE.to_owned();
    for (field, value) in [
        ("id", dead.id.clone()),
        ("message id", dead.message_id.clone().unwrap_or_else(none)),
        ("origin", dead.origin.clone().unwrap_or_else(none)),
        ("died in", dead.queue.clone().unwrap_or_else(none)),
        ("death", dead.death.clone()),
        ("reason", reason(dead.reason_code, dead.reason.as_deref())),
        ("first died", time(dead.received_at.as_ref())),
        ("last died", time(dead.last_died_at.as_ref())),
        ("deaths", dead.deaths.to_string()),
        ("size", format!("{} bytes", dead.size)),
    ] {
        shown.add_row([field.to_owned(), value]);
    }
    println!("{shown}");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: OpsCommand,
    }

    fn parse(args: &[&str]) -> std::result::Result<OpsCommand, clap::Error> {
        Cli::try_parse_from([&["mirsal"][..], args].concat()).map(|cli| cli.command)
    }

    #[test]
    fn search_flags_become_the_apis_query_parameters() {
        let Ok(OpsCommand::Search(args)) = parse(&[
            "search",
            "--agency",
            "MOF",
            "--direction",
            "sent",
            "--from",
            "2026-03-01T08:00:00+03:00",
            "--status",
            "registered",
            "--priority",
            "urgent",
            "--overdue",
            "--limit",
            "2",
            "--incoming-number",
            "IN/7",
        ]) else {
            panic!("not parsed")
        };
        assert_eq!(
            args.query(),
            vec![
                ("agency", "MOF".to_owned()),
                ("direction", "sent".to_owned()),
                ("from", "2026-03-01T05:00:00Z".to_owned()),
                ("incoming_number", "IN/7".to_owned()),
                ("status", "registered".to_owned()),
                ("priority", "urgent".to_owned()),
                ("overdue", "true".to_owned()),
                ("limit", "2".to_owned()),
            ]
        );
    }

    #[test]
    fn bad_flags_are_refused_before_any_call() {
        for args in [
            &["search", "--direction", "sent"][..],
            &["search", "--from", "yesterday"],
            &["search", "--priority", "low"],
            &["search", "--limit", "0"],
            &["dead-letters", "replay"],
            &["dead-letters", "replay", "0123456789abcdef", "--all"],
            &["dead-letters", "replay", "0123456789abcdef", "--per-second", "5"],
            &["dead-letters", "replay", "--all", "--per-second", "0"],
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
        assert!(parse(&["dead-letters", "replay", "--all", "--per-second", "5"]).is_ok());
        assert!(parse(&["dead-letters", "replay", "0123456789abcdef"]).is_ok());
    }

    #[test]
    fn urls_keep_a_base_path_and_encode_ids() {
        let args =
            RouterArgs { router_url: "http://127.0.0.1:8470/mirsal/".into(), token_file: None, json: false };
        let api = Api::new(&args).unwrap();
        assert_eq!(
            api.url(&["api", "v1", "envelopes", "a/b c"]).as_str(),
            "http://127.0.0.1:8470/mirsal/api/v1/envelopes/a%2Fb%20c"
        );
        let bare =
            Api::new(&RouterArgs { router_url: "http://127.0.0.1:8470".into(), ..args.clone() }).unwrap();
        assert_eq!(bare.url(&["readyz"]).as_str(), "http://127.0.0.1:8470/readyz");
        assert!(Api::new(&RouterArgs { router_url: "127.0.0.1:8470".into(), ..args }).is_err());
    }

    #[test]
    fn error_bodies_give_one_line() {
        assert_eq!(error_text(r#"{"error":"no envelope x"}"#), "no envelope x");
        assert_eq!(
            error_text("Failed to deserialize query string: limit\nmore"),
            "Failed to deserialize query string: limit"
        );
        assert_eq!(error_text(""), "");
    }

    #[test]
    fn ages_read_like_people_write_them() {
        assert_eq!(age(54), "54s");
        assert_eq!(age(725), "12m 5s");
        assert_eq!(age(3 * 3600 + 120), "3h 2m");
        assert_eq!(age(2 * 86_400 + 4 * 3600), "2d 4h");
        assert_eq!(age(-3), "0s");
    }
}
