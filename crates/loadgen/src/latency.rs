//! Latency recording: one HdrHistogram per worker, merged at the end. Memory is bounded
//! by the histogram's range and precision, not by the number of requests, and merging is
//! exact, so the percentiles do not depend on how many workers there were.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Largest latency recorded exactly, in microseconds (one minute); longer ones are
/// clamped to it, which only a broken run produces (requests time out at 30 s).
pub const LATENCY_RECORDED_MAX_US: u64 = 60_000_000;
/// Significant decimal digits kept: 3 is 0.1 % precision in about 100 kB per histogram.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Request latencies in microseconds.
#[derive(Clone, Debug)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty recorder.
    pub fn new() -> Self {
        Self(
            Histogram::new_with_bounds(1, LATENCY_RECORDED_MAX_US, SIGNIFICANT_DIGITS)
                .expect("constant bounds are valid"),
        )
    }

    /// Records one request's latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, LATENCY_RECORDED_MAX_US);
        self.0.record(micros).expect("clamped into the histogram's range");
    }

    /// Adds another worker's latencies.
    pub fn merge(&mut self, other: &Latencies) {
        self.0.add(&other.0).expect("same bounds");
    }

    /// Requests recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at `quantile` (0..=1); zero when nothing was recorded.
    pub fn quantile(&self, quantile: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.0.value_at_quantile(quantile))
    }

    /// The longest latency recorded; zero when nothing was recorded.
    pub fn max(&self) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.0.max())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_percentiles_cover_every_worker() {
        let mut first = Latencies::new();
        let mut second = Latencies::new();
        for micros in 1..=99 {
            first.record(Duration::from_micros(micros));
        }
        second.record(Duration::from_millis(50));
        first.merge(&second);
        assert_eq!(first.count(), 100);
        assert_eq!(first.quantile(0.5), Duration::from_micros(50));
        assert!(first.max() >= Duration::from_micros(49_950), "max {:?}", first.max());
        assert_eq!(Latencies::new().quantile(0.99), Duration::ZERO);
    }
}
