//! Per-client state: how many connections each source address has open,
//! and its accept rate (GCRA), in a table whose size is bounded.
//!
//! A per-client limit is only as good as the table behind it: one entry per
//! source address ever seen would let a scan from 100,000 addresses grow
//! the server without bound. The one idea: **an entry that says nothing is
//! not kept.** An entry with no open connection whose rate allowance is
//! full again carries no information and is dropped; when the table is full
//! anyway, entries with no open connection are dropped first (the cost: a
//! source's rate allowance restarts full, erring on its side). Entries with
//! open connections can never fill the table, because its capacity is
//! larger than the connections the listener may hold open.
//!
//! The rate is a GCRA (the token bucket written as one timestamp): each
//! admitted connection pushes the client's *theoretical arrival time* one
//! interval further; a connection that arrives more than the burst
//! tolerance before it is refused, and refused connections cost nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// `N` connections per period, `N` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptRate {
    /// Connections allowed per `per`.
    pub count: u32,
    pub per: Duration,
}

impl AcceptRate {
    /// `"20/s"` or `"600/m"`.
    pub fn parse(text: &str) -> Result<AcceptRate, String> {
        let bad = || format!("`{text}` is not a rate such as \"20/s\" or \"600/m\"");
        let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(format!("`{text}`: the rate must be at least 1"));
        }
        Ok(AcceptRate { count, per })
    }

    fn interval_nanos(self) -> u64 {
        (self.per.as_nanos() / u128::from(self.count)).max(1) as u64
    }

    /// How far ahead of now a client's theoretical arrival time may be:
    /// a burst of `count` connections.
    fn tolerance_nanos(self) -> u64 {
        self.interval_nanos() * u64::from(self.count - 1)
    }
}

/// Why a client was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientRefusal {
    TooManyConnections,
    RateExceeded,
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    open: u32,
    /// The GCRA's theoretical arrival time, in nanoseconds since the
    /// table's epoch; at or before now means a full allowance.
    tat: u64,
}

/// The per-client table of one listener.
#[derive(Debug)]
pub struct ClientTable {
    max_per_client: Option<u32>,
    rate: Option<AcceptRate>,
    capacity: usize,
    epoch: Instant,
    entries: HashMap<IpAddr, Entry>,
    /// Entries dropped to stay within the capacity, for the tests and logs.
    evicted: u64,
}

impl ClientTable {
    /// `capacity` must exceed the connections the listener can hold open.
    pub fn new(
        max_per_client: Option<u32>,
        rate: Option<AcceptRate>,
        capacity: usize,
        epoch: Instant,
    ) -> ClientTable {
        ClientTable {
            max_per_client,
            rate,
            capacity: capacity.max(16),
            epoch,
            entries: HashMap::new(),
            evicted: 0,
        }
    }

    fn nanos(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Counts a new connection from `ip` at `now`, or says why not.
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), ClientRefusal> {
        let t = self.nanos(now);
        if !self.entries.contains_key(&ip) && self.entries.len() >= self.capacity {
            self.make_room(t);
        }
        let (max, rate) = (self.max_per_client, self.rate);
        let entry = self.entries.entry(ip).or_default();
        if max.is_some_and(|max| entry.open >= max) {
            return Err(ClientRefusal::TooManyConnections);
        }
        if let Some(rate) = rate {
            let tat = entry.tat.max(t);
            if tat - t > rate.tolerance_nanos() {
                return Err(ClientRefusal::RateExceeded);
            }
            entry.tat = tat + rate.interval_nanos();
        }
        entry.open += 1;
        Ok(())
    }

    /// A connection counted by [`admit`](Self::admit) closed.
    pub fn release(&mut self, ip: IpAddr, now: Instant) {
        let t = self.nanos(now);
        if let Some(entry) = self.entries.get_mut(&ip) {
            entry.open = entry.open.saturating_sub(1);
            if entry.open == 0 && entry.tat <= t {
                self.entries.remove(&ip);
            }
        }
    }

    /// Drops the entries that say nothing; if that frees less than an
    /// eighth of the table, drops entries with no open connection too, so
    /// that a full table costs one sweep per eighth of its size.
    fn make_room(&mut self, t: u64) {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.open > 0 || e.tat > t);
        let target = self.capacity - self.capacity / 8;
        if self.entries.len() > target {
            let mut excess = self.entries.len() - target;
            self.entries.retain(|_, e| {
                if excess > 0 && e.open == 0 {
                    excess -= 1;
                    false
                } else {
                    true
                }
            });
        }
        self.evicted += (before - self.entries.len()) as u64;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x7f00_0000 | n))
    }

    #[test]
    fn rates_parse_strictly() {
        assert_eq!(
            AcceptRate::parse("20/s").unwrap(),
            AcceptRate {
                count: 20,
                per: Duration::from_secs(1)
            }
        );
        assert_eq!(
            AcceptRate::parse("600/m").unwrap().per,
            Duration::from_secs(60)
        );
        for bad in ["20", "20/h", "x/s", "0/s", "-1/s", ""] {
            assert!(AcceptRate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_client_may_hold_at_most_its_limit() {
        let now = Instant::now();
        let mut table = ClientTable::new(Some(2), None, 100, now);
        assert_eq!(table.admit(ip(1), now), Ok(()));
        assert_eq!(table.admit(ip(1), now), Ok(()));
        assert_eq!(
            table.admit(ip(1), now),
            Err(ClientRefusal::TooManyConnections)
        );
        assert_eq!(
            table.admit(ip(2), now),
            Ok(()),
            "another client is not affected"
        );
        table.release(ip(1), now);
        assert_eq!(table.admit(ip(1), now), Ok(()));
        for _ in 0..2 {
            table.release(ip(1), now);
        }
        table.release(ip(2), now);
        assert!(table.is_empty(), "closed clients leave nothing behind");
    }

    #[test]
    fn the_rate_allows_a_burst_then_one_per_interval_and_refusals_cost_nothing() {
        let start = Instant::now();
        let rate = AcceptRate::parse("10/s").unwrap();
        let mut table = ClientTable::new(None, Some(rate), 100, start);
        for _ in 0..10 {
            assert_eq!(table.admit(ip(1), start), Ok(()));
            table.release(ip(1), start);
        }
        assert_eq!(table.admit(ip(1), start), Err(ClientRefusal::RateExceeded));
        // Hammering while refused does not push the allowance further away.
        for _ in 0..1000 {
            let _ = table.admit(ip(1), start);
        }
        let later = start + Duration::from_millis(100);
        assert_eq!(
            table.admit(ip(1), later),
            Ok(()),
            "one interval later, one more"
        );
        assert_eq!(table.admit(ip(1), later), Err(ClientRefusal::RateExceeded));
        table.release(ip(1), later);
        let idle = start + Duration::from_secs(2);
        table.release(ip(9), idle);
        assert_eq!(table.admit(ip(2), idle), Ok(()));
        table.release(ip(2), idle + Duration::from_secs(1));
        assert_eq!(
            table.len(),
            1,
            "ip 1's entry waits until its allowance is full"
        );
    }

    #[test]
    fn a_scan_from_many_sources_keeps_the_table_within_its_capacity() {
        let start = Instant::now();
        let rate = AcceptRate::parse("20/s").unwrap();
        let mut table = ClientTable::new(Some(100), Some(rate), 1000, start);
        // One long-lived connection is held throughout and must survive.
        table.admit(ip(0), start).unwrap();
        for n in 1..100_000 {
            let now = start + Duration::from_micros(u64::from(n) * 10);
            table.admit(ip(n), now).unwrap();
            table.release(ip(n), now);
            assert!(table.len() <= table.capacity());
        }
        assert!(table.evicted() > 0);
        assert_eq!(
            table.entries[&ip(0)].open,
            1,
            "an open client is never evicted"
        );
    }
}
