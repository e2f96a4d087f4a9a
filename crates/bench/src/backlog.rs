//! Backlog: the router's memory while letters pile up in an inbox nobody reads.
//!
//! S sends `--letters` letters to R, whose inbox is never consumed (S's is, for the
//! `accepted` notices, which say the router is done with each letter). The router's
//! `VmRSS` is sampled every second from `/proc`, with the broker's for comparison.
//! Reported: RSS at the start, every tenth of the way, the peak (`VmHWM`) and at the
//! end, and the number of messages that arrived in R's inbox (management API).
//! "Flat" means the RSS grew by less than 10% over the second half of the backlog: a
//! router that kept something per waiting letter would grow in proportion.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use mirsal_bus::topology;
use mirsal_integration_tests::platform::Platform;

use crate::{
    Common, bars,
    e2e::sign,
    flow::{Flow, FlowConfig, Until},
    letters::{Party, Plan},
    procfs::{self, Memory},
    router::RouterProcess,
};

/// One sample of the router's (and broker's) memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) at: Duration,
    /// Letters the router had finished (their `accepted` notice was back).
    pub(crate) routed: u64,
    pub(crate) router: Memory,
    pub(crate) broker_rss_kib: Option<u64>,
}

/// What the backlog run measured.
#[derive(Debug, Clone)]
pub(crate) struct BacklogResult {
    pub(crate) letters: usize,
    pub(crate) envelope_bytes: usize,
    pub(crate) samples: Vec<Sample>,
    pub(crate) start: Memory,
    pub(crate) end: Memory,
    /// Messages in R's inbox at the end.
    pub(crate) in_queue: Option<u64>,
    pub(crate) elapsed: Duration,
}

impl BacklogResult {
    pub(crate) fn peak_kib(&self) -> u64 {
        self.samples.iter().map(|s| s.router.rss_kib).chain([self.end.peak_kib]).max().unwrap_or(0)
    }

    /// The sample nearest to `fraction` of the letters routed.
    pub(crate) fn at_fraction(&self, fraction: f64) -> Option<Sample> {
        let wanted = (self.letters as f64 * fraction) as u64;
        self.samples.iter().find(|s| s.routed >= wanted).copied()
    }

    /// RSS growth over the second half, as a share of the RSS at the halfway point.
    pub(crate) fn second_half_growth(&self) -> Option<f64> {
        let half = self.at_fraction(0.5)?.router.rss_kib as f64;
        (half > 0.0).then(|| (self.end.rss_kib as f64 - half) / half)
    }
}

/// Runs the backlog on a platform of its own, cleaned up afterwards.
///
/// # Errors
/// Any failure of the platform, the router or the flow.
pub(crate) async fn run(letters: usize, common: &Common) -> anyhow::Result<BacklogResult> {
    let names = ["S", "R"];
    let mut platform = Platform::new(&names).await;
    let result = measure(&mut platform, &names, letters, common).await;
    platform.cleanup().await;
    result
}

async fn measure(
    platform: &mut Platform,
    names: &[&str],
    letters: usize,
    common: &Common,
) -> anyhow::Result<BacklogResult> {
    let parties = Party::of(platform, names);
    let plans: Vec<Plan> = (0..letters).map(|_| Plan { sender: 0, recipients: vec![1] }).collect();
    let signed = sign(&parties, &plans, common, false)?;
    let envelope_bytes = crate::letters::mean_size(&signed, 0..letters);

    let mut router =
        RouterProcess::start(platform, common.router_prefetch, &common.log_dir, "backlog").await?;
    let config = FlowConfig {
        window: common.window,
        prefetch: common.prefetch,
        receipts: false,
        consume: vec![true, false],
    };
    let mut flow = Flow::start(platform, &parties, signed, &config).await?;
    let start = router.memory()?;
    let samples = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let sampler = {
        let (samples, table, pid) = (Arc::clone(&samples), Arc::clone(flow.table()), router.pid());
        let broker = procfs::find_broker();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            loop {
                interval.tick().await;
                let Ok(memory) = procfs::memory(pid) else { return };
                let sample = Sample {
                    at: started.elapsed(),
                    routed: table.counts().accepted,
                    router: memory,
                    broker_rss_kib: broker.and_then(|pid| procfs::memory(pid).ok()).map(|m| m.rss_kib),
                };
                samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(sample);
            }
        })
    };

    let bar = bars::bar(letters as u64, "backlog");
    flow.submit(0..letters, None)?;
    let waited = flow.wait(0..letters, Until::Accepted, &mut router, &bar).await;
    let elapsed = started.elapsed();
    let end = router.memory();
    sampler.abort();
    bar.finish_and_clear();
    waited?;
    let end = end?;
    flow.stop().await;

    let inbox = topology::inbox_queue(&parties[1].code);
    let in_queue = queue_depth(platform, &inbox, letters as u64).await;
    router.stop().await.context("stopping the router")?;
    let samples = samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    Ok(BacklogResult { letters, envelope_bytes, samples, start, end, in_queue, elapsed })
}

/// The depth of `queue` once the management API shows `expected` (its statistics lag
/// by a few seconds), or whatever it shows after 30 s.
async fn queue_depth(platform: &Platform, queue: &str, expected: u64) -> Option<u64> {
    let management = platform.vhost.management();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline {
        last = management.queue(platform.vhost.name(), queue).await.ok().and_then(|q| q.messages).or(last);
        if last == Some(expected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    last
}
