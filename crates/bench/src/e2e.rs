//! (b) End to end through the router, and the latency at a steady rate.
//!
//! Agencies in a ring (A → B → C → D → A with the default four): every agency sends the
//! same share of the letters to the next one and receives as many from the previous
//! one, so each inbox carries letters, `accepted` notices and forwarded receipts alike.
//! A letter and its receipt cross the broker four times (submit → ingress → inbox, and
//! again for the receipt), plus the `accepted` notice. After `--warmup` letters that
//! are not counted, the timed phase submits `--letters`; its CPU is read from `/proc`
//! for the router, the broker and the benchmark around it.
//!
//! - Throughput = letters / (first submit → last receipt back at its sender), or → last
//!   letter in its inbox with `--no-receipts`.
//! - Latency = inbox arrival − submit, per letter.

use std::ops::Range;

use anyhow::Context as _;
use mirsal_integration_tests::platform::Platform;

use crate::{
    Common, bars,
    flow::{Counts, Flow, FlowConfig, Outcome, Until},
    letters::{self, Party},
    procfs::{self, ClockTicks, CpuSnapshot, CpuUsage, Memory},
    router::RouterProcess,
};

/// One ring run.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    pub(crate) agencies: usize,
    pub(crate) letters: usize,
    pub(crate) receipts: bool,
    /// Letters per second in all, or as fast as the confirm windows allow.
    pub(crate) rate: Option<f64>,
}

/// What a ring run measured.
#[derive(Debug, Clone)]
pub(crate) struct RingResult {
    pub(crate) ring: Ring,
    pub(crate) envelope_bytes: usize,
    pub(crate) outcome: Outcome,
    pub(crate) cpu: CpuUsage,
    pub(crate) router_peak: Memory,
    pub(crate) counts: Counts,
}

impl RingResult {
    /// Letters per second, to the last receipt (with receipts) or the last letter.
    pub(crate) fn throughput(&self) -> f64 {
        let end = if self.ring.receipts { self.outcome.last_receipted } else { self.outcome.last_delivered };
        self.outcome.throughput(end).unwrap_or(0.0)
    }

    pub(crate) fn router_cpu_ms_per_letter(&self) -> f64 {
        1000.0 * self.cpu.router_s / self.ring.letters.max(1) as f64
    }
}

/// The names of `n` agencies: A, B, C, …
pub(crate) fn names(n: usize) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!((2..=26).contains(&n), "between 2 and 26 agencies");
    Ok((0..n).map(|i| char::from(b'A' + i as u8).to_string()).collect())
}

/// Runs a ring on a platform of its own (vhost, users, router), cleaned up afterwards.
///
/// # Errors
/// Any failure of the platform, the router or the flow.
pub(crate) async fn run(
    ring: &Ring,
    common: &Common,
    phase: &str,
    ticks: ClockTicks,
) -> anyhow::Result<RingResult> {
    let names = names(ring.agencies)?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut platform = Platform::new(&names).await;
    let result = measure(&mut platform, &names, ring, common, phase, ticks).await;
    platform.cleanup().await;
    result
}

async fn measure(
    platform: &mut Platform,
    names: &[&str],
    ring: &Ring,
    common: &Common,
    phase: &str,
    ticks: ClockTicks,
) -> anyhow::Result<RingResult> {
    let parties = Party::of(platform, names);
    let total = common.warmup + ring.letters;
    let letters = sign(&parties, &letters::ring(parties.len(), total), common, ring.receipts)?;
    let timed: Range<usize> = common.warmup..total;
    let envelope_bytes = letters::mean_size(&letters, timed.clone());

    let mut router = RouterProcess::start(platform, common.router_prefetch, &common.log_dir, phase).await?;
    let config = FlowConfig {
        window: common.window,
        prefetch: common.prefetch,
        receipts: ring.receipts,
        consume: vec![true; parties.len()],
    };
    let mut flow = Flow::start(platform, &parties, letters, &config).await?;
    let until = if ring.receipts { Until::Receipted } else { Until::Delivered };
    if common.warmup > 0 {
        let bar = bars::bar(common.warmup as u64, "warm-up");
        flow.submit(0..common.warmup, None)?;
        flow.wait(0..common.warmup, until, &mut router, &bar).await?;
        bar.finish_and_clear();
    }

    let broker = procfs::find_broker();
    let before = CpuSnapshot::take(Some(router.pid()), broker)?;
    let bar = bars::bar(ring.letters as u64, phase);
    flow.submit(timed.clone(), ring.rate)?;
    flow.wait(timed.clone(), until, &mut router, &bar).await?;
    let after = CpuSnapshot::take(Some(router.pid()), broker)?;
    bar.finish_and_clear();
    let router_peak = router.memory()?;
    let counts = flow.table().counts();
    let outcome = flow.table().outcome(timed);
    flow.stop().await;
    router.stop().await.context("stopping the router")?;
    Ok(RingResult {
        ring: ring.clone(),
        envelope_bytes,
        outcome,
        cpu: before.until(&after, ticks),
        router_peak,
        counts,
    })
}

/// Signs the letters for `plans` with a progress bar.
///
/// # Errors
/// As [`letters::sign_all`].
pub(crate) fn sign(
    parties: &[Party],
    plans: &[letters::Plan],
    common: &Common,
    receipts: bool,
) -> anyhow::Result<Vec<letters::Letter>> {
    let bar = bars::bar(plans.len() as u64, "signing");
    let letters = letters::sign_all(parties, plans, common.payload_bytes, receipts, &|n| bar.inc(n))?;
    bar.finish_and_clear();
    Ok(letters)
}
