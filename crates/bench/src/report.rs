//! What each phase prints, and the final table: every number beside its target.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::{
    backlog::BacklogResult,
    e2e::RingResult,
    fanout::Level,
    raw::RawResult,
    stats::{mib, ms, rate, thousands},
};

/// The targets.
pub(crate) const RATIO_WITH_RECEIPTS: f64 = 0.2;
pub(crate) const RATIO_WITHOUT_RECEIPTS: f64 = 0.4;
pub(crate) const P99_MS: f64 = 50.0;
/// A steady-rate run must hold at least this share of its rate to count.
const RATE_HELD: f64 = 0.99;
/// Fan-out may cost at most this much more than linear (noise).
const LINEAR_SLACK: f64 = 1.10;
/// "Flat" memory: at most this growth over the second half of the backlog.
const FLAT_GROWTH: f64 = 0.10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Miss,
    Info,
}

#[derive(Debug)]
struct Row {
    what: String,
    value: String,
    target: String,
    verdict: Verdict,
}

/// The summary, filled in as phases finish.
#[derive(Debug, Default)]
pub(crate) struct Report {
    rows: Vec<Row>,
    raw: Option<f64>,
    /// Broker CPU per raw message (one hop), to count the hops a letter costs.
    raw_broker_ms: Option<f64>,
}

fn judged(pass: bool) -> Verdict {
    if pass { Verdict::Pass } else { Verdict::Miss }
}

impl Report {
    fn row(
        &mut self,
        what: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        verdict: Verdict,
    ) {
        self.rows.push(Row { what: what.into(), value: value.into(), target: target.into(), verdict });
    }

    pub(crate) fn raw(&mut self, raw: &RawResult) {
        println!("(a) raw lapin, one hop, quorum queue, {} B persistent, confirms:", raw.payload_bytes);
        println!(
            "    {} messages in {:.2} s: {} publish → consume ({} publish → confirm); ack {}",
            thousands(raw.messages),
            raw.elapsed.as_secs_f64(),
            rate(raw.throughput()),
            rate(raw.publish_rate()),
            ack_mode(raw.ack_every)
        );
        if let Some(latency) = raw.latency {
            println!("    publish → consumed latency {}", latency.line());
        }
        if let Some(broker) = raw.broker_ms_per_message() {
            println!("    broker CPU {broker:.3} ms per message (publish + delivery)");
        }
        println!("    CPU split: {}", raw.cpu.split());
        self.raw = Some(raw.throughput());
        self.raw_broker_ms = raw.broker_ms_per_message();
        self.row("(a) raw one hop", rate(raw.throughput()), "baseline", Verdict::Info);
    }

    pub(crate) fn ring(&mut self, result: &RingResult) {
        let ring = &result.ring;
        let label = if ring.receipts { "(b) e2e with receipts" } else { "(b) e2e, no receipts" };
        println!(
            "{label}: {} agencies in a ring, {} letters of ~{} B{}",
            ring.agencies,
            thousands(ring.letters as u64),
            result.envelope_bytes,
            ring.rate.map_or_else(String::new, |r| format!(", offered at {}", rate(r)))
        );
        self.ring_lines(result);
        let throughput = result.throughput();
        self.row(label, rate(throughput), "", Verdict::Info);
        if let Some(raw) = self.raw {
            let ratio = throughput / raw;
            let (target, ceiling) =
                if ring.receipts { (RATIO_WITH_RECEIPTS, 0.25) } else { (RATIO_WITHOUT_RECEIPTS, 0.5) };
            println!("    (b)/(a) = {ratio:.3} (target ≥ {target}, ceiling {ceiling})");
            self.row(
                format!("{label} / (a)"),
                format!("{ratio:.3}"),
                format!("≥ {target} (ceiling {ceiling})"),
                judged(ratio >= target),
            );
        }
        self.cost_rows(label, result);
    }

    pub(crate) fn latency(&mut self, result: &RingResult) {
        let ring = &result.ring;
        let offered = ring.rate.unwrap_or(0.0);
        println!(
            "latency: {} letters/s offered for {} letters ({} agencies, receipts {})",
            thousands(offered as u64),
            thousands(ring.letters as u64),
            ring.agencies,
            if ring.receipts { "on" } else { "off" }
        );
        self.ring_lines(result);
        let achieved = result.outcome.submit_rate().unwrap_or(0.0);
        let held = achieved >= RATE_HELD * offered;
        self.row(
            "latency: submit rate held",
            rate(achieved),
            format!("≥ {:.0}% of {}", RATE_HELD * 100.0, rate(offered)),
            judged(held),
        );
        if let Some(latency) = result.outcome.delivery {
            self.row("latency: p50 submit → inbox", ms(latency.p50), "", Verdict::Info);
            let p99_ms = latency.p99.as_secs_f64() * 1000.0;
            self.row(
                "latency: p99 submit → inbox",
                ms(latency.p99),
                format!("≤ {P99_MS} ms at {}", rate(offered)),
                judged(p99_ms <= P99_MS && held),
            );
        }
        self.cost_rows("latency", result);
    }

    fn ring_lines(&self, result: &RingResult) {
        let outcome = &result.outcome;
        let end = if result.ring.receipts { outcome.last_receipted } else { outcome.last_delivered };
        println!(
            "    {} in {:.2} s (first submit → last {}); submitted at {}",
            rate(result.throughput()),
            outcome.span(end).map_or(0.0, |d| d.as_secs_f64()),
            if result.ring.receipts { "receipt back" } else { "letter in its inbox" },
            outcome.submit_rate().map_or_else(|| "-".to_owned(), rate)
        );
        if let Some(latency) = outcome.delivery {
            println!("    submit → inbox      {}", latency.line());
        }
        if let Some(latency) = outcome.acceptance {
            println!("    submit → accepted   {}", latency.line());
        }
        if let Some(latency) = outcome.round_trip {
            println!("    submit → receipt    {}", latency.line());
        }
        println!(
            "    router CPU {:.2} s = {:.3} ms/letter; router peak RSS (VmHWM) {}",
            result.cpu.router_s,
            result.router_cpu_ms_per_letter(),
            mib(result.router_peak.peak_kib)
        );
        println!("    CPU split: {}", result.cpu.split());
        if let Some(broker_s) = result.cpu.broker_s {
            let per_letter = 1000.0 * broker_s / result.ring.letters.max(1) as f64;
            let hops = self.raw_broker_ms.map_or_else(String::new, |raw| {
                format!(" = {:.1} raw hops' worth", per_letter / raw.max(f64::EPSILON))
            });
            println!("    broker CPU {per_letter:.3} ms/letter{hops}");
        }
        let c = &result.counts;
        println!(
            "    counted: {} copies, {} receipts, {} accepted, {} rejected, {} duplicates, {} unexpected, {} failed acks",
            c.copies, c.receipts, c.accepted, c.rejected, c.duplicates, c.unexpected, c.ack_failures
        );
    }

    fn cost_rows(&mut self, label: &str, result: &RingResult) {
        self.row(
            format!("{label}: router CPU"),
            format!(
                "{:.3} ms/letter ({:.0}% of a core)",
                result.router_cpu_ms_per_letter(),
                result.cpu.percent_of_core(result.cpu.router_s)
            ),
            "",
            Verdict::Info,
        );
        self.row(format!("{label}: router peak RSS"), mib(result.router_peak.peak_kib), "", Verdict::Info);
    }

    pub(crate) fn fanout(&mut self, levels: &[Level]) {
        println!("fan-out: router CPU per letter and per delivered copy (no receipts)");
        for level in levels {
            println!(
                "    ×{:<2} {:>6} letters: {}, router {:.3} ms/letter, {:.3} ms/copy, broker {} ms/letter; {}",
                level.recipients,
                level.letters,
                rate(level.throughput),
                level.router_ms_per_letter(),
                level.router_ms_per_copy(),
                level.broker_ms_per_letter().map_or_else(|| "n/a".to_owned(), |b| format!("{b:.3}")),
                level.cpu.split()
            );
            self.row(
                format!("fan-out ×{}: router CPU", level.recipients),
                format!(
                    "{:.3} ms/letter, {:.3} ms/copy",
                    level.router_ms_per_letter(),
                    level.router_ms_per_copy()
                ),
                "",
                Verdict::Info,
            );
        }
        let (Some(first), Some(last)) =
            (levels.iter().min_by_key(|l| l.recipients), levels.iter().max_by_key(|l| l.recipients))
        else {
            return;
        };
        if last.recipients > first.recipients && first.router_ms_per_letter() > 0.0 {
            let growth = last.router_ms_per_letter() / first.router_ms_per_letter();
            let linear = last.recipients as f64 / first.recipients as f64;
            let (a, b) = fit(levels);
            println!(
                "    cost ×{} / cost ×{} = {growth:.2} (linear would be {linear:.0}); fit: {a:.3} ms + {b:.3} ms per recipient",
                last.recipients, first.recipients
            );
            self.row(
                "fan-out: cost growth",
                format!(
                    "×{growth:.2} from {} to {} recipients (fit {a:.3} + {b:.3}·k ms)",
                    first.recipients, last.recipients
                ),
                format!("≤ linear (×{linear:.0}, +{:.0}% noise)", (LINEAR_SLACK - 1.0) * 100.0),
                judged(growth <= linear * LINEAR_SLACK),
            );
        }
    }

    pub(crate) fn backlog(&mut self, result: &BacklogResult) {
        println!(
            "backlog: {} letters of ~{} B into one inbox nobody consumes, in {:.0} s",
            thousands(result.letters as u64),
            result.envelope_bytes,
            result.elapsed.as_secs_f64()
        );
        println!("    router RSS at start {}", mib(result.start.rss_kib));
        for tenth in 1..=10 {
            if let Some(sample) = result.at_fraction(f64::from(tenth) / 10.0) {
                println!(
                    "    {:>3}% routed ({:>7}) at {:>4.0} s: router RSS {}, broker RSS {}",
                    tenth * 10,
                    sample.routed,
                    sample.at.as_secs_f64(),
                    mib(sample.router.rss_kib),
                    sample.broker_rss_kib.map_or_else(|| "n/a".to_owned(), mib)
                );
            }
        }
        println!(
            "    router RSS at end {}, peak {} (VmHWM {}); {} messages in the inbox",
            mib(result.end.rss_kib),
            mib(result.peak_kib()),
            mib(result.end.peak_kib),
            result.in_queue.map_or_else(|| "?".to_owned(), thousands)
        );
        let per_letter =
            (result.end.rss_kib.saturating_sub(result.start.rss_kib)) as f64 / result.letters.max(1) as f64;
        println!(
            "    router RSS grew {per_letter:.2} KiB per routed letter (compare the e2e runs' peak RSS, whose inboxes are consumed)"
        );
        self.row(
            "backlog: router RSS start / peak / end",
            format!(
                "{} / {} / {}",
                mib(result.start.rss_kib),
                mib(result.peak_kib()),
                mib(result.end.rss_kib)
            ),
            "",
            Verdict::Info,
        );
        if let Some(growth) = result.second_half_growth() {
            self.row(
                "backlog: RSS growth, second half",
                format!("{:+.1}%", growth * 100.0),
                format!("flat (< {:.0}%)", FLAT_GROWTH * 100.0),
                judged(growth < FLAT_GROWTH),
            );
        }
        let arrived = result.in_queue.unwrap_or(0);
        self.row(
            "backlog: letters waiting in the inbox",
            thousands(arrived),
            thousands(result.letters as u64),
            judged(arrived == result.letters as u64),
        );
    }

    /// The final table.
    pub(crate) fn print(&self) {
        let mut table = Table::new();
        table.load_style(UTF8_FULL_CONDENSED).set_header(["measurement", "value", "target", "result"]);
        for row in &self.rows {
            let verdict = match row.verdict {
                Verdict::Pass => "PASS",
                Verdict::Miss => "MISS",
                Verdict::Info => "",
            };
            table.add_row([row.what.as_str(), row.value.as_str(), row.target.as_str(), verdict]);
        }
        println!("\n{table}");
        let missed = self.rows.iter().filter(|r| r.verdict == Verdict::Miss).count();
        let passed = self.rows.iter().filter(|r| r.verdict == Verdict::Pass).count();
        println!(
            "{passed} targets met, {missed} missed (a measurement, not a test: the exit code says only that it ran)"
        );
    }
}

fn ack_mode(every: u16) -> String {
    if every <= 1 { "each message".to_owned() } else { format!("multiple=true every {every} messages") }
}

/// Least-squares fit of router ms/letter = a + b·recipients.
fn fit(levels: &[Level]) -> (f64, f64) {
    let n = levels.len() as f64;
    let xs: Vec<f64> = levels.iter().map(|l| l.recipients as f64).collect();
    let ys: Vec<f64> = levels.iter().map(Level::router_ms_per_letter).collect();
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - b * mx, b)
}
