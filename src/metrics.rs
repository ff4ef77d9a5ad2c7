//! Lock-free measurements for the Prometheus endpoint: counters and histograms of atomics
//! that the threads on the commit path update without waiting on anything, read and
//! encoded only when `/metrics` is scraped (`api/metrics.rs`).
//!
//! What this is not: a registry. Each measured part owns its figures (the pipeline's in
//! [`crate::pipeline::PipelineMetrics`], the gRPC layer's in its own); the endpoint reads
//! them through a `prometheus_client` collector.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeLabelSet, MetricEncoder, NoLabelSet};

/// Upper bounds of latency buckets, in nanoseconds: 50 µs to 10 s.
pub const LATENCY_BOUNDS_NS: &[u64] = &[
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

/// Upper bounds of count buckets (commands in a batch).
pub const COUNT_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384];

/// A histogram of non-negative integer observations in fixed buckets, each an atomic:
/// observing is a few relaxed additions.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// Observations at or below each bound (not cumulative), and above the last.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, value: u64) {
        let index = self.bounds.partition_point(|bound| *bound < value);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a duration, in nanoseconds.
    pub fn observe_duration(&self, duration: std::time::Duration) {
        self.observe(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Writes the histogram with its bounds and sum divided by `scale` (1e9 for
    /// nanoseconds shown as seconds, 1 for counts). These figures are measurements for
    /// people and alerts, never money.
    pub fn encode(&self, scale: f64, mut encoder: MetricEncoder<'_>) -> std::fmt::Result {
        // Each bucket's own count: the encoder writes them cumulated, as Prometheus reads
        // them, and the count is their total, so the `+Inf` bucket always equals it.
        let mut count = 0;
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (index, bucket) in self.buckets.iter().enumerate() {
            let observed = bucket.load(Ordering::Relaxed);
            count += observed;
            let bound = self
                .bounds
                .get(index)
                .map_or(f64::INFINITY, |bound| *bound as f64 / scale);
            buckets.push((bound, observed));
        }
        let sum = self.sum.load(Ordering::Relaxed) as f64 / scale;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    /// As [`Histogram::encode`], as one member of a labelled family.
    pub fn encode_in(
        &self,
        scale: f64,
        labels: &impl EncodeLabelSet,
        encoder: &mut MetricEncoder<'_>,
    ) -> std::fmt::Result {
        self.encode(scale, encoder.encode_family(labels)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let histogram = Histogram::new(&[10, 100]);
        for value in [0, 10, 11, 100, 101, 5_000] {
            histogram.observe(value);
        }
        let counts: Vec<u64> = histogram
            .buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, [2, 2, 2]);
        assert_eq!(histogram.count(), 6);
        assert_eq!(histogram.sum.load(Ordering::Relaxed), 5_222);
    }
}
