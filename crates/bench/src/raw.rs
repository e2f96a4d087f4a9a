//! (a) Raw lapin, one hop: the broker's own ceiling for this message size on this
//! machine.
//!
//! A quorum queue of its own in a fresh vhost; a publisher (the bus crate's confirmed
//! publisher, on its own connection) sends `--messages` persistent messages of
//! `--payload-bytes` with a window of `--window` outstanding confirms; a consumer (lapin
//! directly, on another connection, prefetch `--prefetch`) acks with `multiple = true`
//! every `--ack-every` messages (1: each message on its own). Both run at once.
//! Throughput = messages / (first publish → last consumed); the latency is publish →
//! consumed of each message, found by its `message_id`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use indicatif::ProgressBar;
use mirsal_bus::{
    Bus, Outgoing,
    lapin::{
        BasicProperties,
        options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions},
        types::{AMQPValue, FieldTable, LongString},
    },
};
use mirsal_integration_tests::TestVhost;

use crate::{
    Common, RawArgs,
    procfs::{self, ClockTicks, CpuSnapshot, CpuUsage},
    stats::Latency,
    window::ConfirmWindow,
};

const QUEUE: &str = "mirsal.bench.raw";
/// How long the consumer may see nothing before the run is given up.
const STALL: Duration = Duration::from_secs(60);

/// What the raw run measured.
#[derive(Debug, Clone)]
pub(crate) struct RawResult {
    pub(crate) messages: u64,
    pub(crate) payload_bytes: usize,
    pub(crate) ack_every: u16,
    /// First publish → last consumed.
    pub(crate) elapsed: Duration,
    /// First publish → last confirm.
    pub(crate) publish_elapsed: Duration,
    pub(crate) latency: Option<Latency>,
    /// CPU of the broker and the benchmark from the first publish to the last consume.
    pub(crate) cpu: CpuUsage,
}

impl RawResult {
    pub(crate) fn throughput(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    pub(crate) fn publish_rate(&self) -> f64 {
        self.messages as f64 / self.publish_elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Broker CPU per message (one publish and one delivery), in ms.
    pub(crate) fn broker_ms_per_message(&self) -> Option<f64> {
        self.cpu.broker_s.map(|s| 1000.0 * s / self.messages.max(1) as f64)
    }
}

/// Runs (a) in a vhost of its own, deleted afterwards.
///
/// # Errors
/// The broker refusing the queue, a failed publish or consume.
pub(crate) async fn run(
    args: &RawArgs,
    common: &Common,
    bar: ProgressBar,
    ticks: ClockTicks,
) -> anyhow::Result<RawResult> {
    anyhow::ensure!(
        args.ack_every >= 1 && args.ack_every <= common.prefetch,
        "--ack-every must be between 1 and --prefetch, or the consumer stalls"
    );
    let vhost = TestVhost::new().await;
    let result = measure(&vhost, args, common, bar, ticks).await;
    vhost.cleanup().await;
    result
}

async fn measure(
    vhost: &TestVhost,
    args: &RawArgs,
    common: &Common,
    bar: ProgressBar,
    ticks: ClockTicks,
) -> anyhow::Result<RawResult> {
    let messages = args.messages;
    let consumer_connection = mirsal_bus::connection::connect(&vhost.bus_config("raw-consumer"))
        .await
        .context("connecting the raw consumer")?;
    let channel = consumer_connection.create_channel().await.context("opening the consumer's channel")?;
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel
        .queue_declare(QUEUE.into(), durable, arguments)
        .await
        .context("declaring the raw quorum queue")?;
    channel.basic_qos(common.prefetch, BasicQosOptions::default()).await.context("setting the prefetch")?;
    let mut consumer = channel
        .basic_consume(
            QUEUE.into(),
            "mirsal-bench-raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("consuming the raw queue")?;

    let origin = Instant::now();
    let published: Arc<Vec<AtomicU64>> = Arc::new((0..messages).map(|_| AtomicU64::new(0)).collect());
    let consumed = Arc::new(AtomicU64::new(0));
    let ack_every = u64::from(args.ack_every);
    let consuming = {
        let (published, consumed) = (Arc::clone(&published), Arc::clone(&consumed));
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(usize::try_from(messages).unwrap_or(0));
            let mut last = Duration::ZERO;
            let mut count = 0u64;
            while count < messages {
                let delivery = consumer
                    .next()
                    .await
                    .context("the raw consumer's stream ended")?
                    .context("receiving from the raw queue")?;
                let at = origin.elapsed();
                last = at;
                let sent = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .and_then(|id| id.as_str().parse::<usize>().ok())
                    .and_then(|i| published.get(i))
                    .map(|stamp| stamp.load(Ordering::Relaxed));
                if let Some(sent) = sent.filter(|&s| s > 0) {
                    latencies.push(at.saturating_sub(Duration::from_nanos(sent - 1)));
                }
                count += 1;
                consumed.store(count, Ordering::Relaxed);
                if count.is_multiple_of(ack_every) || count == messages {
                    let options = BasicAckOptions { multiple: ack_every > 1 };
                    let acked = delivery.acker.ack(options).await.context("acking")?;
                    anyhow::ensure!(acked, "the consumer's channel closed while acking");
                }
            }
            anyhow::Ok((last, latencies))
        })
    };

    let bus = Bus::start_plain(vhost.bus_config("raw-publisher"));
    bus.connected().await.context("connecting the raw publisher")?;
    let publisher = bus.publisher();
    let payload = Bytes::from((0..common.payload_bytes).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let (window, drainer) = ConfirmWindow::start(common.window, "raw publisher".to_owned());
    let broker = procfs::find_broker();
    let before = CpuSnapshot::take(None, broker)?;
    let publishing = {
        let published = Arc::clone(&published);
        tokio::spawn(async move {
            for i in 0..messages {
                let message = Outgoing {
                    exchange: String::new(),
                    routing_key: QUEUE.to_owned(),
                    payload: payload.clone(),
                    properties: BasicProperties::default()
                        .with_message_id(i.to_string().as_str().into())
                        .with_delivery_mode(2),
                    mandatory: true,
                };
                let nanos = u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1;
                if let Some(stamp) = usize::try_from(i).ok().and_then(|i| published.get(i)) {
                    stamp.store(nanos, Ordering::Relaxed);
                }
                let pending = publisher.start(&message).await.context("publishing a raw message")?;
                window.push(pending).await?;
            }
            anyhow::Ok(())
        })
    };

    let first_publish = loop {
        if let Some(stamp) = published.first().map(|s| s.load(Ordering::Relaxed)).filter(|&s| s > 0) {
            break Duration::from_nanos(stamp - 1);
        }
        anyhow::ensure!(!publishing.is_finished(), "the raw publisher stopped before it published");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let (mut publishing, mut drainer) = (Some(publishing), Some(drainer));
    let mut confirmed = None;
    let (mut seen, mut last_change) = (0, Instant::now());
    while !consuming.is_finished() {
        if let Some(task) = publishing.take_if(|task| task.is_finished()) {
            task.await.context("the raw publisher task")??;
        }
        if let Some(task) = drainer.take_if(|task| task.is_finished()) {
            confirmed = Some(task.await.context("the raw confirm drainer")??);
        }
        let now = consumed.load(Ordering::Relaxed);
        bar.set_position(now);
        if now != seen {
            (seen, last_change) = (now, Instant::now());
        }
        anyhow::ensure!(
            last_change.elapsed() < STALL,
            "nothing consumed for {STALL:?} after {seen} messages"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bar.set_position(consumed.load(Ordering::Relaxed));
    let (last_consumed, latencies) = consuming.await.context("the raw consumer task")??;
    let after = CpuSnapshot::take(None, broker)?;
    if let Some(task) = publishing {
        task.await.context("the raw publisher task")??;
    }
    if let Some(task) = drainer {
        confirmed = Some(task.await.context("the raw confirm drainer")??);
    }
    let last_confirm = confirmed.and_then(|c| c.last).map_or(Duration::ZERO, |t| t.duration_since(origin));
    bus.shutdown().await;
    let _ = consumer_connection.close(200, "done".into()).await;
    Ok(RawResult {
        messages,
        payload_bytes: common.payload_bytes,
        ack_every: args.ack_every,
        elapsed: last_consumed.saturating_sub(first_publish),
        publish_elapsed: last_confirm.saturating_sub(first_publish),
        latency: Latency::of(latencies),
        cpu: before.until(&after, ticks),
    })
}
