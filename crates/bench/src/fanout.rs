//! Fan-out: what one letter costs the router as its recipients grow.
//!
//! One sender S and as many recipients R1, R2, … as the largest level asks. For each
//! level k (1, 2, 4, 8 by default), `--letters` letters from S to R1…Rk go through one
//! router, one level after the other, with every inbox consumed and acked and no
//! receipts (so the cost is the fan-out alone). The router's CPU-seconds over each
//! level give its cost per letter and per delivered copy; a cost that grows linearly
//! (or slower) with k is the target.

use std::ops::Range;

use anyhow::Context as _;
use mirsal_integration_tests::platform::Platform;

use crate::{
    Common, bars,
    e2e::sign,
    flow::{Flow, FlowConfig, Until},
    letters::{Party, Plan},
    procfs::{self, ClockTicks, CpuSnapshot, CpuUsage},
    router::RouterProcess,
};

/// One level's measurements.
#[derive(Debug, Clone)]
pub(crate) struct Level {
    pub(crate) recipients: usize,
    pub(crate) letters: usize,
    pub(crate) cpu: CpuUsage,
    /// Letters per second, first submit → last copy in its inbox.
    pub(crate) throughput: f64,
}

impl Level {
    pub(crate) fn router_ms_per_letter(&self) -> f64 {
        1000.0 * self.cpu.router_s / self.letters.max(1) as f64
    }

    pub(crate) fn router_ms_per_copy(&self) -> f64 {
        self.router_ms_per_letter() / self.recipients.max(1) as f64
    }

    pub(crate) fn broker_ms_per_letter(&self) -> Option<f64> {
        self.cpu.broker_s.map(|s| 1000.0 * s / self.letters.max(1) as f64)
    }
}

/// Runs every level on one platform, cleaned up afterwards.
///
/// # Errors
/// Any failure of the platform, the router or the flow.
pub(crate) async fn run(
    letters: usize,
    levels: &[usize],
    common: &Common,
    ticks: ClockTicks,
) -> anyhow::Result<Vec<Level>> {
    let widest = levels.iter().copied().max().context("no fan-out levels given")?;
    anyhow::ensure!(
        levels.iter().all(|&k| (1..=crate::flow::MAX_RECIPIENTS).contains(&k)),
        "fan-out levels are 1 to {} recipients",
        crate::flow::MAX_RECIPIENTS
    );
    let mut names = vec!["S".to_owned()];
    names.extend((1..=widest).map(|r| format!("R{r}")));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut platform = Platform::new(&names).await;
    let result = measure(&mut platform, &names, letters, levels, common, ticks).await;
    platform.cleanup().await;
    result
}

async fn measure(
    platform: &mut Platform,
    names: &[&str],
    letters: usize,
    levels: &[usize],
    common: &Common,
    ticks: ClockTicks,
) -> anyhow::Result<Vec<Level>> {
    let parties = Party::of(platform, names);
    let to = |k: usize| Plan { sender: 0, recipients: (1..=k).collect() };
    let mut plans: Vec<Plan> = (0..common.warmup).map(|_| to(1)).collect();
    let mut ranges: Vec<(usize, Range<usize>)> = Vec::new();
    for &k in levels {
        let start = plans.len();
        plans.extend((0..letters).map(|_| to(k)));
        ranges.push((k, start..plans.len()));
    }
    let signed = sign(&parties, &plans, common, false)?;

    let mut router =
        RouterProcess::start(platform, common.router_prefetch, &common.log_dir, "fanout").await?;
    let config = FlowConfig {
        window: common.window,
        prefetch: common.prefetch,
        receipts: false,
        consume: vec![true; parties.len()],
    };
    let mut flow = Flow::start(platform, &parties, signed, &config).await?;
    if common.warmup > 0 {
        let bar = bars::bar(common.warmup as u64, "warm-up");
        flow.submit(0..common.warmup, None)?;
        flow.wait(0..common.warmup, Until::Delivered, &mut router, &bar).await?;
        bar.finish_and_clear();
    }
    let broker = procfs::find_broker();
    let mut results = Vec::new();
    for (k, range) in ranges {
        let bar = bars::bar(range.len() as u64, &format!("fan-out ×{k}"));
        let before = CpuSnapshot::take(Some(router.pid()), broker)?;
        flow.submit(range.clone(), None)?;
        flow.wait(range.clone(), Until::Delivered, &mut router, &bar).await?;
        let after = CpuSnapshot::take(Some(router.pid()), broker)?;
        bar.finish_and_clear();
        let outcome = flow.table().outcome(range.clone());
        results.push(Level {
            recipients: k,
            letters: range.len(),
            cpu: before.until(&after, ticks),
            throughput: outcome.throughput(outcome.last_delivered).unwrap_or(0.0),
        });
    }
    flow.stop().await;
    router.stop().await.context("stopping the router")?;
    Ok(results)
}
