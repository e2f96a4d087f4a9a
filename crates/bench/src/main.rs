//! `mirsal-bench`: how fast Mirsal moves letters, measured on a real RabbitMQ.
//!
//! Every phase runs on the same broker in the same run, each in a vhost of its own with
//! its own RabbitMQ users (the integration tests' fixture), all deleted at the end, also
//! on Ctrl-C. The router is the real `mirsal-router` release binary, started as a child
//! process. Nothing is mocked.
//!
//! ```text
//! mirsal-bench raw        (a) raw lapin, one hop: the broker's ceiling for 2 KiB messages
//! mirsal-bench e2e        (b) letters end to end through the router, with receipts
//!                         (--no-receipts: letters only), and the ratio (b)/(a)
//! mirsal-bench latency    submit → inbox latency at a steady rate (1,000/s for 20 s)
//! mirsal-bench fanout     router CPU per letter and per copy for 1, 2, 4, 8 recipients
//! mirsal-bench backlog    router memory while 500,000 letters wait in an inbox
//! mirsal-bench all        raw, e2e with and without receipts, latency, fanout
//!                         (and backlog with --backlog)
//! ```
//!
//! # What is measured, and how
//! - **(a) raw** ([`raw`]): a quorum queue, persistent messages of `--payload-bytes`, a
//!   publisher with `--window` outstanding confirms and a consumer with prefetch
//!   `--prefetch` acking `multiple` every `--ack-every` messages, both at once.
//!   Throughput = messages / (first publish → last consumed).
//! - **(b) e2e** ([`e2e`], [`flow`]): four agencies in a ring A → B → C → D → A, each
//!   on its own connection as its own RabbitMQ user. Letters (padded to about
//!   `--payload-bytes`) and their `delivered` receipts are all signed before the timed
//!   phase ([`letters`]). Senders submit with a confirm window; recipients consume,
//!   record each arrival by `message_id`, ack, and publish the pre-signed receipt;
//!   senders consume their `accepted` notices and the forwarded receipts. Throughput =
//!   letters / (first submit → last receipt back), or → last letter in its inbox with
//!   `--no-receipts`. A letter and its receipt cross the broker four times, so (b)/(a)
//!   is at most 0.25 (0.5 without receipts); the targets are 0.2 and 0.4.
//! - **latency**: the same ring at a steady offered rate; p50/p99 of inbox arrival −
//!   submit (target: p99 ≤ 50 ms at 1,000 letters/s).
//! - **fanout** ([`fanout`]): one sender, 1…8 recipients; router CPU-seconds per letter
//!   and per delivered copy (target: growth no worse than linear).
//! - **backlog** ([`backlog`]): router RSS sampled every second while letters pile up in
//!   an unconsumed inbox (target: flat).
//! - **CPU and memory** ([`procfs`]): `utime + stime` of the router, the broker
//!   (`beam.smp`) and this process from `/proc/<pid>/stat` before and after each timed
//!   phase (clock ticks from `getconf CLK_TCK`, 100 if that fails), and the router's
//!   `VmHWM` (peak RSS) from `/proc/<pid>/status`.
//!
//! It prints what it measured after each phase and a table of every number beside its
//! target. Missing a target is a result, not an error: the exit code is 0 whenever the
//! benchmark ran, and non-zero only when it could not. Timings never go in tests.
//!
//! # Layout
//! - [`raw`], [`e2e`], [`fanout`], [`backlog`]: the phases.
//! - [`flow`]: agencies submitting, consuming and answering; per-letter timestamps.
//! - [`letters`]: signing letters and receipts ahead of time.
//! - [`router`]: the router child process.
//! - [`procfs`], [`stats`], [`window`], [`bars`], [`report`]: measuring and showing.

mod backlog;
mod bars;
mod e2e;
mod fanout;
mod flow;
mod letters;
mod procfs;
mod raw;
mod report;
mod router;
mod stats;
mod window;

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};

use crate::{e2e::Ring, procfs::ClockTicks, report::Report};

/// Measures Mirsal on a real RabbitMQ (MIRSAL_AMQP_URL, MIRSAL_MANAGEMENT_URL; default
/// the development broker on 127.0.0.1).
#[derive(Debug, Parser)]
#[command(name = "mirsal-bench", version)]
struct Cli {
    #[command(flatten)]
    common: Common,
    /// What to measure (default: all).
    #[command(subcommand)]
    command: Option<Command>,
}

/// Settings every phase shares.
#[derive(Debug, Clone, Args)]
pub(crate) struct Common {
    /// Size of a raw message, and the size letters are padded to.
    #[arg(long, global = true, default_value_t = 2048)]
    pub(crate) payload_bytes: usize,
    /// Outstanding publisher confirms per publisher.
    #[arg(long, global = true, default_value_t = 1000)]
    pub(crate) window: usize,
    /// Prefetch of the raw consumer and of every inbox consumer.
    #[arg(long, global = true, default_value_t = 500)]
    pub(crate) prefetch: u16,
    /// The router's ingress prefetch (its `broker.prefetch`).
    #[arg(long, global = true, default_value_t = 512)]
    pub(crate) router_prefetch: u16,
    /// Letters sent through each new router before timing starts.
    #[arg(long, global = true, default_value_t = 500)]
    pub(crate) warmup: usize,
    /// Where the router's logs go.
    #[arg(long, global = true, default_value = "target/bench")]
    pub(crate) log_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// (a) Raw lapin, one hop: publish → consume on a quorum queue.
    Raw(RawArgs),
    /// (b) End to end through the router, after a raw baseline for the ratio.
    E2e(E2eArgs),
    /// Submit → inbox latency at a steady rate.
    Latency(LatencyArgs),
    /// Router CPU per letter and per copy as recipients grow.
    Fanout(FanoutArgs),
    /// Router memory while letters pile up in an inbox nobody reads.
    Backlog(BacklogArgs),
    /// raw, e2e with and without receipts, latency, fanout (and backlog if asked).
    All(AllArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct RawArgs {
    /// Messages to publish and consume.
    #[arg(long, default_value_t = 50_000)]
    pub(crate) messages: u64,
    /// Ack with `multiple = true` every this many messages (1: ack each one).
    #[arg(long, default_value_t = 100)]
    pub(crate) ack_every: u16,
}

#[derive(Debug, Clone, Args)]
struct E2eArgs {
    /// Letters in the timed phase.
    #[arg(long, default_value_t = 20_000)]
    letters: usize,
    /// Agencies in the ring.
    #[arg(long, default_value_t = 4)]
    agencies: usize,
    /// Recipients do not answer with receipts.
    #[arg(long)]
    no_receipts: bool,
    /// Skip the raw baseline (no ratio then).
    #[arg(long)]
    skip_raw: bool,
    #[command(flatten)]
    raw: RawArgs,
}

#[derive(Debug, Clone, Args)]
struct LatencyArgs {
    /// Letters per second, offered at a steady pace.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Agencies in the ring.
    #[arg(long, default_value_t = 4)]
    agencies: usize,
    /// Recipients do not answer with receipts.
    #[arg(long)]
    no_receipts: bool,
}

#[derive(Debug, Clone, Args)]
struct FanoutArgs {
    /// Letters per level.
    #[arg(long, default_value_t = 5_000)]
    letters: usize,
    /// Recipients per letter, one level each.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    recipients: Vec<usize>,
}

#[derive(Debug, Clone, Args)]
struct BacklogArgs {
    /// Letters into the unconsumed inbox.
    #[arg(long, default_value_t = 500_000)]
    letters: usize,
}

#[derive(Debug, Clone, Args)]
struct AllArgs {
    /// Also run the backlog (it takes minutes).
    #[arg(long)]
    backlog: bool,
    #[command(flatten)]
    raw: RawArgs,
    /// Letters in each e2e run.
    #[arg(long, default_value_t = 20_000)]
    e2e_letters: usize,
    /// Agencies in the ring of the e2e and latency runs.
    #[arg(long, default_value_t = 4)]
    agencies: usize,
    /// The latency run's steady rate.
    #[arg(long, default_value_t = 1000.0)]
    latency_rate: f64,
    /// The latency run's length.
    #[arg(long, default_value_t = 20.0)]
    latency_seconds: f64,
    /// Letters per fan-out level.
    #[arg(long, default_value_t = 5_000)]
    fanout_letters: usize,
    /// Fan-out levels.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    recipients: Vec<usize>,
    /// Letters in the backlog.
    #[arg(long, default_value_t = 500_000)]
    backlog_letters: usize,
}

impl Default for AllArgs {
    fn default() -> Self {
        Self {
            backlog: false,
            raw: RawArgs { messages: 50_000, ack_every: 100 },
            e2e_letters: 20_000,
            agencies: 4,
            latency_rate: 1000.0,
            latency_seconds: 20.0,
            fanout_letters: 5_000,
            recipients: vec![1, 2, 4, 8],
            backlog_letters: 500_000,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mirsal-bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_until_interrupted(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mirsal-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark in a task of its own, so that a panic in the fixture becomes an
/// error and Ctrl-C can cancel it: cancelling drops the platform, whose vhost and users
/// are then deleted, and the router child, which is killed.
async fn run_until_interrupted(cli: Cli) -> anyhow::Result<()> {
    let mut benchmark = tokio::spawn(run(cli));
    tokio::select! {
        joined = &mut benchmark => match joined {
            Ok(result) => result,
            Err(error) if error.is_panic() => Err(anyhow::anyhow!("the benchmark panicked (see above)")),
            Err(error) => Err(error.into()),
        },
        interrupted = tokio::signal::ctrl_c() => {
            interrupted.map_err(|e| anyhow::anyhow!("listening for Ctrl-C: {e}"))?;
            eprintln!("mirsal-bench: interrupted; deleting what this run created on the broker");
            benchmark.abort();
            let _ = benchmark.await;
            anyhow::bail!("interrupted")
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let common = cli.common;
    let ticks = procfs::clock_ticks();
    let broker = procfs::find_broker();
    println!(
        "mirsal-bench: {} cores; clock ticks {}/s ({}); broker process {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        ticks.per_second,
        ticks.source,
        broker.map_or_else(|| "not found on this machine".to_owned(), |pid| format!("beam.smp pid {pid}"))
    );
    let mut report = Report::default();
    match cli.command.unwrap_or(Command::All(AllArgs::default())) {
        Command::Raw(args) => raw_phase(&args, &common, ticks, &mut report).await?,
        Command::E2e(args) => {
            if !args.skip_raw {
                raw_phase(&args.raw, &common, ticks, &mut report).await?;
            }
            let ring = Ring {
                agencies: args.agencies,
                letters: args.letters,
                receipts: !args.no_receipts,
                rate: None,
            };
            ring_phase(&ring, &common, ticks, &mut report).await?;
        }
        Command::Latency(args) => {
            latency_phase(
                args.rate,
                args.seconds,
                args.agencies,
                !args.no_receipts,
                &common,
                ticks,
                &mut report,
            )
            .await?
        }
        Command::Fanout(args) => {
            fanout_phase(args.letters, &args.recipients, &common, ticks, &mut report).await?
        }
        Command::Backlog(args) => backlog_phase(args.letters, &common, &mut report).await?,
        Command::All(args) => {
            raw_phase(&args.raw, &common, ticks, &mut report).await?;
            for receipts in [true, false] {
                let ring = Ring { agencies: args.agencies, letters: args.e2e_letters, receipts, rate: None };
                ring_phase(&ring, &common, ticks, &mut report).await?;
            }
            latency_phase(
                args.latency_rate,
                args.latency_seconds,
                args.agencies,
                true,
                &common,
                ticks,
                &mut report,
            )
            .await?;
            fanout_phase(args.fanout_letters, &args.recipients, &common, ticks, &mut report).await?;
            if args.backlog {
                backlog_phase(args.backlog_letters, &common, &mut report).await?;
            }
        }
    }
    report.print();
    Ok(())
}

async fn raw_phase(
    args: &RawArgs,
    common: &Common,
    ticks: ClockTicks,
    report: &mut Report,
) -> anyhow::Result<()> {
    let bar = bars::bar(args.messages, "raw one hop");
    let result = raw::run(args, common, bar.clone(), ticks).await;
    bar.finish_and_clear();
    report.raw(&result?);
    Ok(())
}

async fn ring_phase(
    ring: &Ring,
    common: &Common,
    ticks: ClockTicks,
    report: &mut Report,
) -> anyhow::Result<()> {
    let phase = if ring.receipts { "e2e" } else { "e2e-no-receipts" };
    let result = e2e::run(ring, common, phase, ticks).await?;
    report.ring(&result);
    Ok(())
}

async fn latency_phase(
    rate: f64,
    seconds: f64,
    agencies: usize,
    receipts: bool,
    common: &Common,
    ticks: ClockTicks,
    report: &mut Report,
) -> anyhow::Result<()> {
    anyhow::ensure!(rate > 0.0 && seconds > 0.0, "the latency run needs a rate and a length above zero");
    let letters = (rate * seconds).round() as usize;
    let ring = Ring { agencies, letters, receipts, rate: Some(rate) };
    let result = e2e::run(&ring, common, "latency", ticks).await?;
    report.latency(&result);
    Ok(())
}

async fn fanout_phase(
    letters: usize,
    levels: &[usize],
    common: &Common,
    ticks: ClockTicks,
    report: &mut Report,
) -> anyhow::Result<()> {
    let result = fanout::run(letters, levels, common, ticks).await?;
    report.fanout(&result);
    Ok(())
}

async fn backlog_phase(letters: usize, common: &Common, report: &mut Report) -> anyhow::Result<()> {
    let result = backlog::run(letters, common).await?;
    report.backlog(&result);
    Ok(())
}
