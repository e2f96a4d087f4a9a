//! Latency percentiles (an HDR histogram in microseconds) and number formatting.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Percentiles of a set of latencies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Latency {
    pub(crate) count: u64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
}

impl Latency {
    /// Percentiles of `samples`; `None` when there are none.
    pub(crate) fn of(samples: impl IntoIterator<Item = Duration>) -> Option<Self> {
        // 1 µs to 1 hour at 3 significant digits; anything longer is clamped to an hour.
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).ok()?;
        for sample in samples {
            let micros = u64::try_from(sample.as_micros()).unwrap_or(u64::MAX);
            histogram.saturating_record(micros.max(1));
        }
        if histogram.is_empty() {
            return None;
        }
        let at = |quantile: f64| Duration::from_micros(histogram.value_at_quantile(quantile));
        Some(Self {
            count: histogram.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: Duration::from_micros(histogram.max()),
        })
    }

    pub(crate) fn line(&self) -> String {
        format!("p50 {} / p99 {} / max {} (n = {})", ms(self.p50), ms(self.p99), ms(self.max), self.count)
    }
}

/// `d` in milliseconds, for people.
pub(crate) fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 { format!("{ms:.2} ms") } else { format!("{ms:.0} ms") }
}

/// A rate in messages per second, for people.
pub(crate) fn rate(per_second: f64) -> String {
    format!("{} /s", thousands(per_second.round() as u64))
}

/// `n` with thin thousands separators: 12,345.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// KiB as MiB, for people.
pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_set() {
        let latency = Latency::of((1..=100).map(Duration::from_millis)).unwrap();
        assert_eq!(latency.count, 100);
        assert!((latency.p50.as_secs_f64() - 0.050).abs() < 0.001, "{latency:?}");
        assert!((latency.p99.as_secs_f64() - 0.099).abs() < 0.001, "{latency:?}");
        assert!(Latency::of(std::iter::empty()).is_none());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
