//! `read_rate_limit`: a per-connection token bucket on reading, in bytes
//! per second, that pauses reading instead of dropping anything.
//!
//! When a connection has read its allowance, the core stops asking for
//! input (`wants_read` is false) until the bucket has refilled a quarter;
//! the bytes the client keeps sending wait in the kernel's buffers, the
//! TCP window closes, and the client slows down to the limit. The one
//! idea: **flow control is the rate limiter** — no byte is dropped, and
//! nothing is buffered in the server beyond one read.
//!
//! The bucket holds a tenth of a second's worth (at least 4 KiB), so a
//! burst never exceeds the limit by more than that, and a driver that asks
//! [`ReadBucket::allowance`] before reading never reads past it.

use std::time::{Duration, Instant};

/// The smallest bucket, so that a slow limit still reads in useful pieces.
const MIN_BUCKET: u64 = 4096;

#[derive(Clone, Debug)]
pub struct ReadBucket {
    rate: u64,
    capacity: u64,
    /// Bytes that may be read now, as of `at`; negative after a read larger
    /// than the allowance (a driver that read a whole buffer).
    tokens: i64,
    at: Instant,
    /// Set while reading is paused: when the bucket is a quarter full.
    resume_at: Option<Instant>,
}

impl ReadBucket {
    pub fn new(rate: u64, now: Instant) -> ReadBucket {
        let capacity = (rate / 10).max(MIN_BUCKET);
        ReadBucket {
            rate,
            capacity,
            tokens: capacity as i64,
            at: now,
            resume_at: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at);
        let earned = (elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000) as i64;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(self.capacity as i64);
            // Keep the remainder: advance by exactly the time `earned` took.
            let used = Duration::from_nanos(
                (earned as u128 * 1_000_000_000 / u128::from(self.rate)) as u64,
            );
            self.at += used;
            if self.tokens == self.capacity as i64 {
                self.at = now;
            }
        }
    }

    /// `n` bytes were read at `now`.
    pub fn consume(&mut self, n: usize, now: Instant) {
        self.refill(now);
        self.tokens -= n as i64;
        if self.tokens <= 0 {
            let quarter = (self.capacity / 4) as i64;
            let deficit = (quarter - self.tokens) as u128;
            let wait =
                Duration::from_nanos((deficit * 1_000_000_000 / u128::from(self.rate)) as u64);
            self.resume_at = Some(self.at + wait);
        }
    }

    /// Whether reading is paused.
    pub fn paused(&self) -> bool {
        self.resume_at.is_some()
    }

    /// When reading may resume, while paused.
    pub fn resume_at(&self) -> Option<Instant> {
        self.resume_at
    }

    /// The time came: lift the pause if the bucket has refilled.
    pub fn wake(&mut self, now: Instant) {
        if self.resume_at.is_some_and(|at| now >= at) {
            self.refill(now);
            self.resume_at = None;
        }
    }

    /// How many bytes a read may take now (0 while paused).
    pub fn allowance(&self) -> usize {
        match self.resume_at {
            Some(_) => 0,
            None => self.tokens.max(0) as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_pauses_at_the_limit_and_the_average_is_the_rate() {
        let start = Instant::now();
        let rate = 100 * 1024;
        let mut bucket = ReadBucket::new(rate, start);
        let mut now = start;
        let mut total = 0u64;
        // A driver that always reads what it is allowed, whenever it may.
        while now < start + Duration::from_secs(10) {
            if let Some(at) = bucket.resume_at() {
                now = at;
                bucket.wake(now);
                continue;
            }
            let n = bucket.allowance();
            assert!(n > 0);
            bucket.consume(n, now);
            total += n as u64;
            now += Duration::from_millis(1);
        }
        let per_sec = total as f64 / 10.0;
        assert!((per_sec / rate as f64 - 1.0).abs() < 0.02, "{per_sec} B/s");
    }

    #[test]
    fn a_read_past_the_allowance_is_paid_back_by_a_longer_pause() {
        let start = Instant::now();
        let mut bucket = ReadBucket::new(10_000, start);
        bucket.consume(64 * 1024, start);
        assert!(bucket.paused());
        let wait = bucket.resume_at().unwrap() - start;
        // 64 KiB minus the 4 KiB bucket, plus a quarter of it, at 10 kB/s.
        assert!(
            wait > Duration::from_secs(6) && wait < Duration::from_secs(7),
            "{wait:?}"
        );
        bucket.wake(start + Duration::from_secs(1));
        assert!(bucket.paused(), "too early: still paused");
        bucket.wake(start + wait);
        assert!(!bucket.paused());
        assert!(bucket.allowance() >= 1024);
    }
}
