//! CPU time and memory of processes, read from Linux's `/proc`.
//!
//! CPU is `utime + stime` of `/proc/<pid>/stat` (every thread of the process), in clock
//! ticks; [`clock_ticks`] asks `getconf CLK_TCK` how long a tick is and assumes 100 per
//! second (Linux's value on every common architecture) when it cannot. Memory is
//! `VmRSS` (resident now) and `VmHWM` (the peak resident set since the process started)
//! of `/proc/<pid>/status`.

use std::time::{Duration, Instant};

use anyhow::Context as _;

/// How many clock ticks make a second, and where that number came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClockTicks {
    pub(crate) per_second: u64,
    pub(crate) source: &'static str,
}

impl ClockTicks {
    pub(crate) fn seconds(self, ticks: u64) -> f64 {
        ticks as f64 / self.per_second as f64
    }
}

/// `getconf CLK_TCK`, or 100 when it cannot be asked.
pub(crate) fn clock_ticks() -> ClockTicks {
    let asked = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse::<u64>().ok())
        .filter(|&ticks| ticks > 0);
    match asked {
        Some(per_second) => ClockTicks { per_second, source: "getconf CLK_TCK" },
        None => ClockTicks { per_second: 100, source: "assumed (getconf CLK_TCK failed)" },
    }
}

/// `utime + stime` of process `pid`, in clock ticks.
///
/// # Errors
/// The process is gone or its stat line does not parse.
pub(crate) fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_ticks(&stat).with_context(|| format!("parsing {path}"))
}

/// Fields 14 and 15 (utime, stime) of a stat line. The command name (field 2) is in
/// parentheses and may hold spaces, so counting starts after the last `)`.
fn parse_cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    let after_name = stat.rfind(')').map(|at| &stat[at + 1..]).context("no `)` after the command name")?;
    // After the name come field 3 (state) onwards: utime is field 14, index 11 here.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |index: usize, name: &str| -> anyhow::Result<u64> {
        fields
            .get(index)
            .with_context(|| format!("no {name} field"))?
            .parse()
            .with_context(|| name.to_owned())
    };
    Ok(field(11, "utime")? + field(12, "stime")?)
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Memory {
    /// `VmRSS`: resident now.
    pub(crate) rss_kib: u64,
    /// `VmHWM`: the largest resident set so far.
    pub(crate) peak_kib: u64,
}

/// `VmRSS` and `VmHWM` of process `pid`.
///
/// # Errors
/// The process is gone or its status does not have them.
pub(crate) fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kib = |key: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .with_context(|| format!("{path} has no {key}"))?;
        line.trim().trim_end_matches("kB").trim().parse().with_context(|| format!("{path}: {key}{line}"))
    };
    Ok(Memory { rss_kib: kib("VmRSS:")?, peak_kib: kib("VmHWM:")? })
}

/// The pid of the RabbitMQ node, if one runs on this machine: the largest `beam.smp`
/// process (`rabbitmqctl` runs a short-lived `beam.smp` of its own too).
pub(crate) fn find_broker() -> Option<u32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == "beam.smp").then_some(pid)
        })
        .max_by_key(|&pid| memory(pid).map_or(0, |m| m.rss_kib))
}

/// Busy and total clock ticks of the whole machine, all cores (`cpu` line of
/// `/proc/stat`; idle and iowait count as not busy).
fn machine_ticks() -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().find(|line| line.starts_with("cpu ")).context("/proc/stat has no cpu line")?;
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Ok((total.saturating_sub(idle), total))
}

/// CPU counters of the router, the broker, this process and the machine at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSnapshot {
    at: Instant,
    router: Option<u64>,
    broker: Option<u64>,
    bench: u64,
    machine: (u64, u64),
}

impl CpuSnapshot {
    /// Reads them all now. The router is absent in the raw run; the broker may run
    /// elsewhere.
    ///
    /// # Errors
    /// The router's or this process's counters cannot be read.
    pub(crate) fn take(router: Option<u32>, broker: Option<u32>) -> anyhow::Result<Self> {
        Ok(Self {
            at: Instant::now(),
            router: router.map(|pid| cpu_ticks(pid).context("the router's CPU time")).transpose()?,
            broker: broker.and_then(|pid| cpu_ticks(pid).ok()),
            bench: cpu_ticks(std::process::id()).context("the benchmark's own CPU time")?,
            machine: machine_ticks()?,
        })
    }

    /// What was used from `self` to `later`.
    pub(crate) fn until(&self, later: &Self, ticks: ClockTicks) -> CpuUsage {
        let (busy, total) =
            (later.machine.0.saturating_sub(self.machine.0), later.machine.1.saturating_sub(self.machine.1));
        CpuUsage {
            wall: later.at.duration_since(self.at),
            router_s: match (self.router, later.router) {
                (Some(before), Some(after)) => ticks.seconds(after.saturating_sub(before)),
                _ => 0.0,
            },
            router: self.router.is_some(),
            broker_s: match (self.broker, later.broker) {
                (Some(before), Some(after)) => Some(ticks.seconds(after.saturating_sub(before))),
                _ => None,
            },
            bench_s: ticks.seconds(later.bench.saturating_sub(self.bench)),
            machine_busy: if total == 0 { 0.0 } else { busy as f64 / total as f64 },
        }
    }
}

/// CPU used over an interval.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuUsage {
    pub(crate) wall: Duration,
    /// CPU-seconds of each process (`router_s` is 0 when there was no router).
    pub(crate) router_s: f64,
    pub(crate) router: bool,
    pub(crate) broker_s: Option<f64>,
    pub(crate) bench_s: f64,
    /// Share of all cores' time that was busy, 0..1.
    pub(crate) machine_busy: f64,
}

impl CpuUsage {
    /// `cpu_s` as a percentage of one core over the interval.
    pub(crate) fn percent_of_core(&self, cpu_s: f64) -> f64 {
        let wall = self.wall.as_secs_f64();
        if wall > 0.0 { 100.0 * cpu_s / wall } else { 0.0 }
    }

    /// One line: each process's CPU as % of one core, everything else that ran on the
    /// machine (other processes, the kernel's own threads), and the machine's busy share.
    pub(crate) fn split(&self) -> String {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ours = self.router_s + self.broker_s.unwrap_or(0.0) + self.bench_s;
        let busy_s = self.machine_busy * cores as f64 * self.wall.as_secs_f64();
        let broker = self
            .broker_s
            .map_or_else(|| "broker n/a".to_owned(), |s| format!("broker {:.0}%", self.percent_of_core(s)));
        let router = if self.router {
            format!("router {:.0}%, ", self.percent_of_core(self.router_s))
        } else {
            String::new()
        };
        format!(
            "{router}{broker}, bench {:.0}%, everything else {:.0}% of one core; \
             machine {:.0}% busy ({cores} cores) over {:.1} s",
            self.percent_of_core(self.bench_s),
            self.percent_of_core((busy_s - ours).max(0.0)),
            100.0 * self.machine_busy,
            self.wall.as_secs_f64(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_odd_names() {
        let line = "1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0 100 0 0";
        assert_eq!(parse_cpu_ticks(line).unwrap(), 300);
        assert!(parse_cpu_ticks("garbage").is_err());
    }

    #[test]
    fn this_process_can_be_read() {
        let me = std::process::id();
        assert!(memory(me).unwrap().rss_kib > 0);
        cpu_ticks(me).unwrap();
        assert!(clock_ticks().per_second > 0);
    }
}
