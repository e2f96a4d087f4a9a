//! The end-to-end engine: agencies submitting signed letters through the router,
//! consuming their inboxes, and answering with pre-signed receipts.
//!
//! Every agency uses its own connection (the fixture's [`Platform`] gives each one a
//! `Bus` under its own RabbitMQ user, as its adapter would). Per agency:
//! - a **sender** publishes its letters to `mirsal.submit` with its `user_id`, keeping a
//!   window of outstanding confirms ([`ConfirmWindow`]), either as fast as the window
//!   allows or on a schedule (letter `k` of a phase at `k / rate` seconds);
//! - a **consumer** reads its inbox (prefetch `--prefetch`), records the arrival time
//!   of each envelope by its `message_id`, and acks each delivery; for a letter it then
//!   queues the letter's pre-signed `delivered` receipt (when receipts are on);
//! - a **receipt publisher** publishes those receipts, with a confirm window of its own.
//!
//! Senders' inboxes receive the router's signed `accepted` notices (decoded, not
//! verified, to tell `accepted` from `rejected` and to find the letter they are about)
//! and the forwarded receipts. Times are nanoseconds since one origin, kept in one
//! atomic per letter, so the hot path takes no lock. A copy seen twice (a redelivery)
//! counts as a duplicate and is not answered again.

use std::{
    collections::HashMap,
    ops::Range,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use bytes::Bytes;
use indicatif::ProgressBar;
use mirsal_bus::{Deliveries, Outgoing, Publisher, headers, topology};
use mirsal_envelope::pb::{self, notice::Kind as NoticeKind, signed_content::Body};
use mirsal_integration_tests::platform::Platform;
use prost::Message as _;
use tokio::{sync::mpsc, task::JoinSet};

use crate::{
    letters::{Entry, Letter, Party, index},
    router::RouterProcess,
    stats::Latency,
    window::ConfirmWindow,
};

/// How long the flow may see no progress at all before the run is given up.
const STALL: Duration = Duration::from_secs(60);
/// At most this many recipients per letter (one bit each per letter).
pub(crate) const MAX_RECIPIENTS: usize = 16;

/// How a flow runs.
#[derive(Debug, Clone)]
pub(crate) struct FlowConfig {
    /// Outstanding confirms per publisher.
    pub(crate) window: usize,
    /// Prefetch of every inbox consumer.
    pub(crate) prefetch: u16,
    /// Recipients answer each letter with its `delivered` receipt.
    pub(crate) receipts: bool,
    /// Which parties' inboxes are consumed (an unconsumed inbox fills up).
    pub(crate) consume: Vec<bool>,
}

/// What a phase waits for before it counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// Every copy in its recipients' inboxes and every `accepted` notice back.
    Delivered,
    /// That, and every receipt back at the letter's sender.
    Receipted,
    /// Every `accepted` notice back (the letters may stay in their inboxes).
    Accepted,
}

#[derive(Debug, Default)]
struct Counters {
    copies: AtomicU64,
    delivered: AtomicU64,
    receipts: AtomicU64,
    receipted: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    duplicates: AtomicU64,
    unexpected: AtomicU64,
    ack_failures: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) copies: u64,
    pub(crate) delivered: u64,
    pub(crate) receipts: u64,
    pub(crate) receipted: u64,
    pub(crate) accepted: u64,
    pub(crate) rejected: u64,
    pub(crate) duplicates: u64,
    pub(crate) unexpected: u64,
    pub(crate) ack_failures: u64,
}

/// The letters of a flow and what happened to each.
#[derive(Debug)]
pub(crate) struct Table {
    origin: Instant,
    letters: Vec<Letter>,
    index: HashMap<String, Entry>,
    /// Nanoseconds since `origin` (+1, so that 0 means "not yet").
    submitted: Vec<AtomicU64>,
    /// When the last of the letter's copies reached its inbox.
    delivered: Vec<AtomicU64>,
    /// When the last of its receipts reached its sender.
    receipted: Vec<AtomicU64>,
    /// When its `accepted` notice reached its sender.
    accepted: Vec<AtomicU64>,
    copies_seen: Vec<AtomicU16>,
    receipts_seen: Vec<AtomicU16>,
    counters: Counters,
    first_rejection: Mutex<Option<String>>,
}

impl Table {
    fn new(letters: Vec<Letter>) -> Self {
        let n = letters.len();
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Self {
            origin: Instant::now(),
            index: index(&letters),
            letters,
            submitted: zeros(n),
            delivered: zeros(n),
            receipted: zeros(n),
            accepted: zeros(n),
            copies_seen: (0..n).map(|_| AtomicU16::new(0)).collect(),
            receipts_seen: (0..n).map(|_| AtomicU16::new(0)).collect(),
            counters: Counters::default(),
            first_rejection: Mutex::new(None),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    fn time(stamp: &AtomicU64) -> Option<Duration> {
        match stamp.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos - 1)),
        }
    }

    pub(crate) fn counts(&self) -> Counts {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counts {
            copies: get(&c.copies),
            delivered: get(&c.delivered),
            receipts: get(&c.receipts),
            receipted: get(&c.receipted),
            accepted: get(&c.accepted),
            rejected: get(&c.rejected),
            duplicates: get(&c.duplicates),
            unexpected: get(&c.unexpected),
            ack_failures: get(&c.ack_failures),
        }
    }

    /// Records copy of letter `i` arriving at `party`; returns its recipient position
    /// when this is the first time.
    fn letter_arrived(&self, i: usize, party: usize, at: u64) -> Option<usize> {
        let letter = &self.letters[i];
        let Some(position) = letter.recipients.iter().position(|&r| r == party) else {
            self.counters.unexpected.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let bit = 1u16 << position;
        let before = self.copies_seen[i].fetch_or(bit, Ordering::Relaxed);
        if before & bit != 0 {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.counters.copies.fetch_add(1, Ordering::Relaxed);
        if (before | bit).count_ones() as usize == letter.recipients.len() {
            self.delivered[i].store(at, Ordering::Relaxed);
            self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        }
        Some(position)
    }

    fn receipt_arrived(&self, i: usize, position: usize, at: u64) {
        let bit = 1u16 << position;
        let before = self.receipts_seen[i].fetch_or(bit, Ordering::Relaxed);
        if before & bit != 0 {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.counters.receipts.fetch_add(1, Ordering::Relaxed);
        if (before | bit).count_ones() as usize == self.letters[i].recipients.len() {
            self.receipted[i].store(at, Ordering::Relaxed);
            self.counters.receipted.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn notice_arrived(&self, body: &[u8], at: u64) {
        match notice(body) {
            Some((subject, NoticeKind::Accepted(_))) => {
                if let Some(&Entry::Letter(i)) = self.index.get(&subject) {
                    if self.accepted[i].compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed).is_ok()
                    {
                        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    self.counters.unexpected.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some((subject, NoticeKind::Rejected(rejected))) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                let mut first =
                    self.first_rejection.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                first.get_or_insert_with(|| format!("{subject}: code {}: {}", rejected.code, rejected.text));
            }
            _ => {
                self.counters.unexpected.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn first_rejection(&self) -> Option<String> {
        self.first_rejection.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// What happened to the letters in `range`.
    pub(crate) fn outcome(&self, range: Range<usize>) -> Outcome {
        let mut outcome = Outcome { letters: range.len(), ..Outcome::default() };
        let (mut delivery, mut acceptance, mut round_trip) = (Vec::new(), Vec::new(), Vec::new());
        for i in range {
            let Some(submitted) = Self::time(&self.submitted[i]) else { continue };
            outcome.first_submit = Some(outcome.first_submit.map_or(submitted, |t| t.min(submitted)));
            outcome.last_submit = outcome.last_submit.max(Some(submitted));
            if let Some(at) = Self::time(&self.delivered[i]) {
                outcome.last_delivered = outcome.last_delivered.max(Some(at));
                delivery.push(at.saturating_sub(submitted));
            }
            if let Some(at) = Self::time(&self.accepted[i]) {
                outcome.last_accepted = outcome.last_accepted.max(Some(at));
                acceptance.push(at.saturating_sub(submitted));
            }
            if let Some(at) = Self::time(&self.receipted[i]) {
                outcome.last_receipted = outcome.last_receipted.max(Some(at));
                round_trip.push(at.saturating_sub(submitted));
            }
        }
        outcome.delivery = Latency::of(delivery);
        outcome.acceptance = Latency::of(acceptance);
        outcome.round_trip = Latency::of(round_trip);
        outcome
    }
}

/// The subject and kind of a notice, decoded without verifying (the benchmark trusts
/// its own broker; the router's signature is not what is measured here).
fn notice(body: &[u8]) -> Option<(String, NoticeKind)> {
    let envelope = pb::Envelope::decode(body).ok()?;
    let content = pb::SignedContent::decode(envelope.signed_content).ok()?;
    match content.body? {
        Body::Notice(notice) => Some((notice.subject_id, notice.kind?)),
        _ => None,
    }
}

/// Times (since the flow's origin) and latencies of one phase's letters.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub(crate) letters: usize,
    pub(crate) first_submit: Option<Duration>,
    pub(crate) last_submit: Option<Duration>,
    pub(crate) last_delivered: Option<Duration>,
    pub(crate) last_accepted: Option<Duration>,
    pub(crate) last_receipted: Option<Duration>,
    /// Submit → the last copy in its inbox.
    pub(crate) delivery: Option<Latency>,
    /// Submit → the `accepted` notice at the sender.
    pub(crate) acceptance: Option<Latency>,
    /// Submit → the last receipt back at the sender.
    pub(crate) round_trip: Option<Latency>,
}

impl Outcome {
    /// From the first submit to `end`.
    pub(crate) fn span(&self, end: Option<Duration>) -> Option<Duration> {
        Some(end?.saturating_sub(self.first_submit?))
    }

    /// Letters per second from the first submit to `end`.
    pub(crate) fn throughput(&self, end: Option<Duration>) -> Option<f64> {
        let span = self.span(end)?.as_secs_f64();
        (span > 0.0).then(|| self.letters as f64 / span)
    }

    /// The rate at which letters were submitted.
    pub(crate) fn submit_rate(&self) -> Option<f64> {
        let span = self.span(self.last_submit)?.as_secs_f64();
        (span > 0.0).then(|| self.letters.saturating_sub(1) as f64 / span)
    }
}

/// A running flow.
#[derive(Debug)]
pub(crate) struct Flow {
    table: Arc<Table>,
    publishers: Vec<(Publisher, String)>,
    window: usize,
    receipts: bool,
    tasks: JoinSet<anyhow::Result<()>>,
    /// Letters handed to senders so far (phases run in order from letter 0).
    sent: usize,
    copies_sent: u64,
}

impl Flow {
    /// Starts consuming the inboxes of `parties` (as `config.consume` says) and waits
    /// until the broker shows a consumer on each.
    ///
    /// # Errors
    /// A letter with too many recipients, or a consumer that does not appear.
    pub(crate) async fn start(
        platform: &Platform,
        parties: &[Party],
        letters: Vec<Letter>,
        config: &FlowConfig,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            letters.iter().all(|l| l.recipients.len() <= MAX_RECIPIENTS),
            "at most {MAX_RECIPIENTS} recipients per letter"
        );
        let table = Arc::new(Table::new(letters));
        let mut tasks = JoinSet::new();
        let mut publishers = Vec::new();
        for (j, party) in parties.iter().enumerate() {
            let bus = &platform.agency(&party.name).bus;
            publishers.push((bus.publisher(), party.code.clone()));
            if !config.consume.get(j).copied().unwrap_or(false) {
                continue;
            }
            let receipts = if config.receipts {
                let (queue, receiver) = mpsc::channel(config.window.max(1));
                let (window, drainer) =
                    ConfirmWindow::start(config.window, format!("{} receipts", party.code));
                tasks.spawn(async move { drainer.await.context("the receipt confirm drainer")?.map(|_| ()) });
                let (table, publisher, code) = (Arc::clone(&table), bus.publisher(), party.code.clone());
                tasks.spawn(send_receipts(table, publisher, code, receiver, window));
                Some(queue)
            } else {
                None
            };
            let inbox = topology::inbox_queue(&party.code);
            let deliveries = bus.consume(&inbox, config.prefetch, "mirsal-bench");
            tasks.spawn(consume(Arc::clone(&table), j, deliveries, receipts));
        }
        let management = platform.vhost.management();
        for (j, party) in parties.iter().enumerate() {
            if !config.consume.get(j).copied().unwrap_or(false) {
                continue;
            }
            let inbox = topology::inbox_queue(&party.code);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let consumers =
                    management.queue(platform.vhost.name(), &inbox).await.ok().and_then(|q| q.consumers);
                if consumers.unwrap_or(0) > 0 {
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "no consumer on {inbox} after 30 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(Self {
            table,
            publishers,
            window: config.window,
            receipts: config.receipts,
            tasks,
            sent: 0,
            copies_sent: 0,
        })
    }

    pub(crate) fn table(&self) -> &Arc<Table> {
        &self.table
    }

    /// Starts submitting letters `range` (which must follow the previous phase's),
    /// as fast as the confirm windows allow, or at `rate` letters per second in all.
    ///
    /// # Errors
    /// A range that does not follow on.
    pub(crate) fn submit(&mut self, range: Range<usize>, rate: Option<f64>) -> anyhow::Result<()> {
        anyhow::ensure!(
            range.start == self.sent && range.end <= self.table.letters.len(),
            "phases submit their letters in order"
        );
        let start = Instant::now();
        let mut schedules: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.publishers.len()];
        for (k, i) in range.clone().enumerate() {
            let letter = &self.table.letters[i];
            schedules[letter.sender].push((k, i));
            self.copies_sent += letter.recipients.len() as u64;
        }
        for (j, schedule) in schedules.into_iter().enumerate() {
            if schedule.is_empty() {
                continue;
            }
            let (publisher, code) = self.publishers[j].clone();
            let (window, drainer) = ConfirmWindow::start(self.window, format!("{code} letters"));
            self.tasks.spawn(async move { drainer.await.context("the letter confirm drainer")?.map(|_| ()) });
            let table = Arc::clone(&self.table);
            self.tasks.spawn(async move {
                for (k, i) in schedule {
                    if let Some(rate) = rate {
                        let due = start + Duration::from_secs_f64(k as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let letter = &table.letters[i].letter;
                    table.submitted[i].store(table.now(), Ordering::Relaxed);
                    let pending = publisher
                        .start(&submission(&letter.id, &letter.bytes, &code))
                        .await
                        .with_context(|| format!("{code} submitting letter {}", letter.id))?;
                    window.push(pending).await?;
                }
                Ok(())
            });
        }
        self.sent = range.end;
        Ok(())
    }

    /// Waits until every letter submitted so far is as far as `until` says, showing
    /// progress for the phase `range` on `bar`.
    ///
    /// # Errors
    /// A rejected letter, a failed publish or consumer, the router exiting, or no
    /// progress at all for a minute.
    pub(crate) async fn wait(
        &mut self,
        range: Range<usize>,
        until: Until,
        router: &mut RouterProcess,
        bar: &ProgressBar,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(until != Until::Receipted || self.receipts, "receipts are off in this flow");
        let letters = self.sent as u64;
        let before = range.start as u64;
        let mut last = self.table.counts();
        let mut last_change = Instant::now();
        loop {
            let counts = self.table.counts();
            if let Some(rejection) = self.table.first_rejection() {
                anyhow::bail!("the router rejected a letter: {rejection}");
            }
            router.check_running()?;
            let done = match until {
                Until::Delivered => counts.delivered,
                Until::Receipted => counts.receipted,
                Until::Accepted => counts.accepted,
            };
            bar.set_position(done.saturating_sub(before));
            let complete = counts.accepted >= letters
                && match until {
                    Until::Accepted => true,
                    Until::Delivered => counts.copies >= self.copies_sent,
                    Until::Receipted => {
                        counts.copies >= self.copies_sent && counts.receipts >= self.copies_sent
                    }
                };
            if complete {
                return Ok(());
            }
            if counts != last {
                last = counts;
                last_change = Instant::now();
            } else if last_change.elapsed() > STALL {
                anyhow::bail!(
                    "no progress for {STALL:?} with {letters} letters submitted: {counts:?}; router log: {}",
                    router.log().display()
                );
            }
            tokio::select! {
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    joined.context("a benchmark task panicked or was cancelled")??;
                }
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    /// Stops the consumers and publishers.
    pub(crate) async fn stop(mut self) {
        self.tasks.shutdown().await;
    }
}

/// A submission to `mirsal.submit` as agency `code` (with its `user_id`).
fn submission(id: &str, bytes: &Bytes, code: &str) -> Outgoing {
    Outgoing {
        exchange: topology::SUBMIT_EXCHANGE.to_owned(),
        routing_key: String::new(),
        payload: bytes.clone(),
        properties: headers::envelope_properties(id).with_user_id(code.into()),
        mandatory: true,
    }
}

async fn consume(
    table: Arc<Table>,
    party: usize,
    mut deliveries: Deliveries,
    receipts: Option<mpsc::Sender<(usize, usize)>>,
) -> anyhow::Result<()> {
    while let Some(incoming) = deliveries.next().await {
        let at = table.now();
        let entry = incoming.message_id().and_then(|id| table.index.get(id)).copied();
        let mut answer = None;
        match (incoming.header(headers::KIND), entry) {
            (Some("letter"), Some(Entry::Letter(i))) => {
                answer = table.letter_arrived(i, party, at).map(|position| (i, position));
            }
            (Some("receipt"), Some(Entry::Receipt(i, position))) => table.receipt_arrived(i, position, at),
            (Some("notice"), _) => table.notice_arrived(incoming.body(), at),
            _ => {
                table.counters.unexpected.fetch_add(1, Ordering::Relaxed);
            }
        }
        // As an adapter does: ack once stored, then send the receipt.
        if incoming.ack().await.is_err() {
            table.counters.ack_failures.fetch_add(1, Ordering::Relaxed);
        }
        if let (Some(queue), Some(answer)) = (&receipts, answer) {
            queue.send(answer).await.map_err(|_| anyhow::anyhow!("the receipt publisher stopped"))?;
        }
    }
    Ok(())
}

async fn send_receipts(
    table: Arc<Table>,
    publisher: Publisher,
    code: String,
    mut queue: mpsc::Receiver<(usize, usize)>,
    window: ConfirmWindow,
) -> anyhow::Result<()> {
    while let Some((i, position)) = queue.recv().await {
        let receipt = &table.letters[i].receipts[position];
        let pending = publisher
            .start(&submission(&receipt.id, &receipt.bytes, &code))
            .await
            .with_context(|| format!("{code} submitting receipt {}", receipt.id))?;
        window.push(pending).await?;
    }
    Ok(())
}
