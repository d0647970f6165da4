//! A datagram rate limit per source address: a token bucket per IP.
//!
//! A UDP server answers whoever the source address says, and source
//! addresses can be forged, so a server that answers freely can be aimed at
//! a victim. Echo never answers with more bytes than it got, but even 1:1
//! reflection is worth bounding. The one idea: **a bucket per source, and a
//! bounded table of buckets** — each source IP may send `burst` datagrams at
//! once and `per_second` on average; the table of sources has a fixed
//! maximum, and when forged sources fill it, new sources are refused
//! (fail closed) until old entries have refilled and can be forgotten.
//!
//! Sources are IPs, not IP and port: ports cost an attacker nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Sources remembered at once, at most (about 4 MiB of table at most).
pub const MAX_SOURCES: usize = 65_536;

/// The limit: a sustained rate and a burst.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

/// What [`SourceLimiter::allow`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// This source is over its limit.
    Limited,
    /// A new source, and the table is full of sources still being limited.
    TableFull,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets of one socket.
#[derive(Debug)]
pub struct SourceLimiter {
    limit: RateLimit,
    buckets: HashMap<IpAddr, Bucket>,
    max_sources: usize,
}

impl SourceLimiter {
    pub fn new(limit: RateLimit) -> SourceLimiter {
        Self::with_table_size(limit, MAX_SOURCES)
    }

    pub fn with_table_size(limit: RateLimit, max_sources: usize) -> SourceLimiter {
        SourceLimiter {
            limit,
            buckets: HashMap::new(),
            max_sources: max_sources.max(1),
        }
    }

    /// Whether one datagram from `source` may be served at `now`; takes a
    /// token when it may.
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> Verdict {
        // An IPv4 client of a dual-stack socket is one source however it
        // is written.
        let source = source.to_canonical();
        let limit = self.limit;
        if !self.buckets.contains_key(&source) && self.buckets.len() >= self.max_sources {
            self.forget_refilled(now);
            if self.buckets.len() >= self.max_sources {
                return Verdict::TableFull;
            }
        }
        let bucket = self.buckets.entry(source).or_insert(Bucket {
            tokens: limit.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.per_second).min(limit.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Verdict::Allowed
        } else {
            Verdict::Limited
        }
    }

    /// Drops the sources whose buckets are full again: forgetting them
    /// changes nothing, since a new bucket starts full.
    fn forget_refilled(&mut self, now: Instant) {
        let limit = self.limit;
        self.buckets.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens + elapsed * limit.per_second < limit.burst
        });
    }

    pub fn sources(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LIMIT: RateLimit = RateLimit {
        per_second: 10.0,
        burst: 5.0,
    };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let mut limiter = SourceLimiter::new(LIMIT);
        let t0 = Instant::now();
        let allowed = (0..20)
            .filter(|_| limiter.allow(ip("10.0.0.1"), t0) == Verdict::Allowed)
            .count();
        assert_eq!(allowed, 5);
        // 10 per second: one more token every 100 ms.
        assert_eq!(
            limiter.allow(ip("10.0.0.1"), t0 + Duration::from_millis(50)),
            Verdict::Limited
        );
        assert_eq!(
            limiter.allow(ip("10.0.0.1"), t0 + Duration::from_millis(110)),
            Verdict::Allowed
        );
        // Another source is not affected.
        assert_eq!(limiter.allow(ip("10.0.0.2"), t0), Verdict::Allowed);
    }

    #[test]
    fn an_ipv4_client_is_one_source_in_either_notation() {
        let mut limiter = SourceLimiter::new(LIMIT);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.allow(ip("10.0.0.1"), t0), Verdict::Allowed);
        }
        assert_eq!(limiter.allow(ip("::ffff:10.0.0.1"), t0), Verdict::Limited);
    }

    #[test]
    fn a_full_table_refuses_new_sources_until_old_ones_have_refilled() {
        let mut limiter = SourceLimiter::with_table_size(LIMIT, 3);
        let t0 = Instant::now();
        for source in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
            assert_eq!(limiter.allow(ip(source), t0), Verdict::Allowed);
        }
        assert_eq!(limiter.allow(ip("10.0.0.4"), t0), Verdict::TableFull);
        // Known sources are still served.
        assert_eq!(limiter.allow(ip("10.0.0.1"), t0), Verdict::Allowed);
        // One token back takes 100 ms; then they are forgettable.
        let later = t0 + Duration::from_millis(300);
        assert_eq!(limiter.allow(ip("10.0.0.4"), later), Verdict::Allowed);
        assert!(limiter.sources() <= 3);
    }
}
