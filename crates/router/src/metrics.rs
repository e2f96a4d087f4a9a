//! The router's Prometheus metrics (`GET /metrics`, OpenMetrics text).
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `mirsal_envelopes_received_total` | | deliveries taken from `mirsal.ingress` |
//! | `mirsal_envelopes_accepted_total` | `kind`, `sender` | accepted letters, receipts and requests |
//! | `mirsal_envelopes_rejected_total` | `code`, `reason` | refusals, by stable reason code |
//! | `mirsal_receipts_total` | `agency`, `status` | receipts by recipient and status (`delivered`, `registered`, …) |
//! | `mirsal_in_flight` | | deliveries being processed now |
//! | `mirsal_overdue_total` | `kind` | overdue notices sent (`delivery`, `reply`) |
//! | `mirsal_dead_lettered_total` | `code` | refused envelopes copied to `mirsal.dead-letters` |
//! | `mirsal_dead_letters` | | dead letters the router keeps, waiting for replay or discard |
//! | `mirsal_queue_messages` | `queue` | messages in each Mirsal queue (from the management API) |
//! | `mirsal_submit_to_queued_seconds` | | the sender's `created_at` → in every recipient's inbox |
//! | `mirsal_queued_to_delivered_seconds` | | in the inbox → the `delivered` receipt |
//! | `mirsal_delivered_to_registered_seconds` | | `delivered` → `registered` |

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicI64, Ordering},
    },
};

use mirsal_envelope::ReasonCode;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::records::Kind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Accepted {
    kind: String,
    sender: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    code: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Receipt {
    agency: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OverdueKind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Code {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Queue {
    queue: String,
}

fn latency() -> Histogram {
    // 1 ms … about 9 hours.
    Histogram::new(exponential_buckets(0.001, 2.0, 25))
}

/// Everything the router counts while it runs.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    received: Counter,
    accepted: Family<Accepted, Counter>,
    rejected: Family<Reason, Counter>,
    receipts: Family<Receipt, Counter>,
    in_flight: Gauge,
    overdue: Family<OverdueKind, Counter>,
    dead_lettered: Family<Code, Counter>,
    dead_letters: Gauge,
    queue_messages: Family<Queue, Gauge>,
    submit_to_queued: Histogram,
    queued_to_delivered: Histogram,
    delivered_to_registered: Histogram,
    /// Totals kept beside the families, for the dashboard's summary.
    accepted_letters: AtomicI64,
    rejected_total: AtomicI64,
    receipts_total: AtomicI64,
    /// Recent submit → queued latencies (router time in ms, seconds), newest last.
    recent: Mutex<VecDeque<(i64, f64)>>,
}

/// How many recent latencies the summary keeps.
const RECENT: usize = 4096;

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Self {
            registry: Registry::default(),
            received: Counter::default(),
            accepted: Family::default(),
            rejected: Family::default(),
            receipts: Family::default(),
            in_flight: Gauge::default(),
            overdue: Family::default(),
            dead_lettered: Family::default(),
            dead_letters: Gauge::default(),
            queue_messages: Family::default(),
            submit_to_queued: latency(),
            queued_to_delivered: latency(),
            delivered_to_registered: latency(),
            accepted_letters: AtomicI64::new(0),
            rejected_total: AtomicI64::new(0),
            receipts_total: AtomicI64::new(0),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
        };
        metrics.register()
    }
}

impl Metrics {
    fn register(mut self) -> Self {
        let registry = &mut self.registry;
        registry.register(
            "mirsal_envelopes_received",
            "Deliveries taken from mirsal.ingress",
            self.received.clone(),
        );
        registry.register(
            "mirsal_envelopes_accepted",
            "Envelopes accepted, by kind and sender",
            self.accepted.clone(),
        );
        registry.register(
            "mirsal_envelopes_rejected",
            "Envelopes refused, by reason code",
            self.rejected.clone(),
        );
        registry.register(
            "mirsal_receipts",
            "Receipts, by recipient agency and status",
            self.receipts.clone(),
        );
        registry.register("mirsal_in_flight", "Deliveries being processed", self.in_flight.clone());
        registry.register("mirsal_overdue", "Overdue notices sent, by kind", self.overdue.clone());
        registry.register(
            "mirsal_dead_lettered",
            "Refused envelopes copied to the dead letters",
            self.dead_lettered.clone(),
        );
        registry.register(
            "mirsal_dead_letters",
            "Dead letters kept, waiting for replay or discard",
            self.dead_letters.clone(),
        );
        registry.register(
            "mirsal_queue_messages",
            "Messages in each Mirsal queue",
            self.queue_messages.clone(),
        );
        registry.register(
            "mirsal_submit_to_queued_seconds",
            "From the sender's created_at to every recipient's inbox",
            self.submit_to_queued.clone(),
        );
        registry.register(
            "mirsal_queued_to_delivered_seconds",
            "From the inbox to the delivered receipt",
            self.queued_to_delivered.clone(),
        );
        registry.register(
            "mirsal_delivered_to_registered_seconds",
            "From the delivered receipt to the registered receipt",
            self.delivered_to_registered.clone(),
        );
        self
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    pub(crate) fn received(&self) {
        self.received.inc();
    }

    pub(crate) fn accepted(&self, kind: Kind, sender: &str) {
        self.accepted
            .get_or_create(&Accepted { kind: kind.as_str().to_owned(), sender: sender.to_owned() })
            .inc();
        if kind.is_letter() {
            self.accepted_letters.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn rejected(&self, reason: ReasonCode) {
        let label = Reason { code: (reason as i32).to_string(), reason: reason.as_str_name().to_owned() };
        self.rejected.get_or_create(&label).inc();
        self.rejected_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_lettered(&self, reason: ReasonCode) {
        self.dead_lettered.get_or_create(&Code { code: (reason as i32).to_string() }).inc();
    }

    pub(crate) fn dead_letters_kept(&self, count: usize) {
        self.dead_letters.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub(crate) fn receipt(&self, agency: &str, status: &str) {
        self.receipts.get_or_create(&Receipt { agency: agency.to_owned(), status: status.to_owned() }).inc();
        self.receipts_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn overdue(&self, kind: &str) {
        self.overdue.get_or_create(&OverdueKind { kind: kind.to_owned() }).inc();
    }

    pub(crate) fn enter(&self) {
        self.in_flight.inc();
    }

    pub(crate) fn leave(&self) {
        self.in_flight.dec();
    }

    pub(crate) fn queue_depth(&self, queue: &str, messages: u64) {
        self.queue_messages
            .get_or_create(&Queue { queue: queue.to_owned() })
            .set(i64::try_from(messages).unwrap_or(i64::MAX));
    }

    pub(crate) fn submit_to_queued(&self, seconds: f64) {
        self.submit_to_queued.observe(seconds.max(0.0));
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back((chrono::Utc::now().timestamp_millis(), seconds.max(0.0)));
        }
    }

    pub(crate) fn queued_to_delivered(&self, seconds: f64) {
        self.queued_to_delivered.observe(seconds.max(0.0));
    }

    pub(crate) fn delivered_to_registered(&self, seconds: f64) {
        self.delivered_to_registered.observe(seconds.max(0.0));
    }

    /// Letters accepted, envelopes refused and receipts taken since the router started.
    pub fn totals(&self) -> (i64, i64, i64) {
        (
            self.accepted_letters.load(Ordering::Relaxed),
            self.rejected_total.load(Ordering::Relaxed),
            self.receipts_total.load(Ordering::Relaxed),
        )
    }

    /// The median and 99th percentile (seconds) of submit → queued over the letters
    /// queued in the last `window_ms`, and how many there were.
    pub fn recent_latency(&self, window_ms: i64) -> (Option<f64>, Option<f64>, usize) {
        let since = chrono::Utc::now().timestamp_millis() - window_ms;
        let mut values: Vec<f64> = self
            .recent
            .lock()
            .map(|recent| recent.iter().filter(|(at, _)| *at >= since).map(|(_, v)| *v).collect())
            .unwrap_or_default();
        values.sort_by(f64::total_cmp);
        let pick = |q: f64| values.get(((values.len() as f64 - 1.0) * q).round() as usize).copied();
        (pick(0.5), pick(0.99), values.len())
    }

    /// Deliveries being processed now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }
}
