//! A latency histogram with bounded memory and bounded relative error.
//!
//! The one idea: **keep counts per bucket, not every sample.** Buckets are
//! powers of two split into 32 linear sub-buckets, so any value is stored
//! within about 3% of itself, the whole range of `u64` nanoseconds fits in
//! under 2,000 counters, and recording is a few instructions — a ping-pong
//! run of a hundred million messages costs 15 KiB, not 800 MB of samples.

/// Sub-buckets per power of two: 2^5 = 32, so a bucket is at most 1/32 of
/// its value wide.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets needed for every u64: the linear range, then 32 per octave.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    fn index(value: u64) -> usize {
        if value < SUB {
            return value as usize;
        }
        let top_bit = 63 - value.leading_zeros();
        let shift = top_bit - SUB_BITS;
        // (value >> shift) is in SUB..2*SUB: its offset picks the sub-bucket.
        (((shift + 1) as u64) * SUB + ((value >> shift) - SUB)) as usize
    }

    /// The largest value that lands in bucket `index`.
    fn upper_bound(index: usize) -> u64 {
        let index = index as u64;
        if index < SUB {
            return index;
        }
        let shift = index / SUB - 1;
        let sub = index % SUB + SUB;
        // In u128: the top bucket's bound is 2^64 - 1, one shift past u64.
        let bound = ((sub as u128 + 1) << shift) - 1;
        bound.min(u64::MAX as u128) as u64
    }

    pub fn record(&mut self, value: u64) {
        self.counts[Self::index(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    /// Adds another histogram's counts (per-thread histograms, merged).
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which a fraction `q` (0..=1) of samples fall, as the
    /// upper edge of its bucket (never more than the true maximum).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::upper_bound(index).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut previous = 0;
        for value in (0..100_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let index = Histogram::index(value);
            assert!(index >= previous, "{value}");
            assert!(index < BUCKETS);
            assert!(Histogram::upper_bound(index) >= value, "{value}");
            // Relative width within 1/32.
            assert!(
                Histogram::upper_bound(index) - value <= value / 32 + 1,
                "{value}"
            );
            previous = index;
        }
    }

    #[test]
    fn quantiles_of_a_uniform_spread() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.04, "{p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.04, "{p99}");
        assert_eq!(h.quantile(1.0), 10_000_000);
        let mut other = Histogram::new();
        other.record(20_000_000);
        h.merge(&other);
        assert_eq!(h.max(), 20_000_000);
        assert_eq!(h.count(), 10_001);
    }
}
