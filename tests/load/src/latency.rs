//! Latency histograms and the percentiles reported from them.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency tracked: an hour. Anything longer is recorded as an
/// hour, which is long enough to be noticed.
const MAX_US: u64 = 3_600_000_000;

/// Latencies in microseconds.
///
/// Two significant digits (1% resolution) keep a histogram near 20 KB; the
/// fan-out scenario keeps one per subscriber, thousands at once, so three
/// digits (ten times larger) would cost the tool hundreds of megabytes.
#[derive(Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Latencies {
        Latencies(Histogram::new_with_bounds(1, MAX_US, 2).expect("constant bounds are valid"))
    }

    pub fn record(&mut self, latency: Duration) {
        self.record_us(latency.as_micros().min(u128::from(MAX_US)) as u64);
    }

    pub fn record_us(&mut self, us: u64) {
        self.0.saturating_record(us);
    }

    pub fn merge(&mut self, other: &Latencies) {
        // Both histograms share the same bounds, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn reset(&mut self) {
        self.0.reset();
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn summary(&self) -> Summary {
        let at = |q: f64| {
            if self.0.is_empty() {
                0
            } else {
                self.0.value_at_quantile(q)
            }
        };
        Summary {
            count: self.0.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: self.0.max(),
            mean: self.0.mean().round() as u64,
        }
    }
}

/// Percentiles in microseconds (values are exact to two digits).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {} p90 {} p99 {} p99.9 {} max {}",
            Micros(self.p50),
            Micros(self.p90),
            Micros(self.p99),
            Micros(self.p999),
            Micros(self.max)
        )
    }
}

/// A duration in microseconds, shown in the unit that reads best.
pub struct Micros(pub u64);

impl std::fmt::Display for Micros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            us if us < 1_000 => write!(f, "{us} µs"),
            us if us < 1_000_000 => write!(f, "{:.2} ms", us as f64 / 1e3),
            us => write!(f, "{:.2} s", us as f64 / 1e6),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_what_was_recorded() {
        let mut latencies = Latencies::new();
        for us in 1..=1000 {
            latencies.record_us(us);
        }
        let mut other = Latencies::new();
        other.record(Duration::from_secs(2));
        latencies.merge(&other);
        let summary = latencies.summary();
        assert_eq!(summary.count, 1001);
        assert!((495..=505).contains(&summary.p50), "{summary:?}");
        assert!((985..=1000).contains(&summary.p99), "{summary:?}");
        assert!(
            (1_980_000..=2_020_000).contains(&summary.max),
            "{summary:?}"
        );
        assert_eq!(Latencies::new().summary().p99, 0);
    }

    #[test]
    fn micros_read_in_a_fitting_unit() {
        assert_eq!(Micros(250).to_string(), "250 µs");
        assert_eq!(Micros(12_340).to_string(), "12.34 ms");
        assert_eq!(Micros(3_200_000).to_string(), "3.20 s");
    }
}
