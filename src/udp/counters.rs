//! What the UDP sockets did, counted for the whole server.
//!
//! A datagram server has no connections to close with a reason, so its
//! story is told in counts: datagrams in and out, and every way one was
//! dropped — cut by the kernel (`truncated`), over a source's rate limit,
//! refused by the kernel on the way out, or dropped because the send
//! buffer was full. The one idea: **count per datagram, publish per
//! batch** — a worker adds up a pass in a plain [`Tally`] and adds it to
//! the shared atomics once, so a batch of 32 costs a dozen atomic adds, not
//! hundreds, and several workers do not fight over one cache line per
//! datagram. Troubles are logged once per burst, like HTTP/2's.
//!
//! [`UdpCounters::iter`] lists `(name, value)`, the shape a metrics
//! endpoint exports; [`UdpCounters::summary`] is the shutdown line, with
//! the datagrams per system call that show what batching bought.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long after logging a kind of trouble further ones are only counted.
pub const LOG_BURST: Duration = Duration::from_secs(5);

/// Something the UDP sockets count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpEvent {
    /// A datagram handed to the service.
    Received,
    ReceivedBytes,
    Sent,
    SentBytes,
    /// Larger than the receive slot (`max_datagram_bytes`): dropped whole.
    Truncated,
    /// Over its source's rate limit, or from a new source while the source
    /// table was full: dropped.
    RateLimited,
    /// A receive call failed for a reason other than an ICMP report.
    ReceiveErrors,
    /// ICMP reports (port or host unreachable) about datagrams sent earlier.
    Unreachable,
    /// Dropped because the send buffer was full (`EAGAIN`).
    SendDropped,
    /// Refused by the kernel one by one (no route, too large, ...).
    SendErrors,
    /// Receive system calls, including the one that found nothing.
    ReceiveCalls,
    SendCalls,
    /// Readiness events (and timers) that woke a UDP socket.
    Wakeups,
}

impl UdpEvent {
    pub const ALL: [UdpEvent; 13] = [
        UdpEvent::Received,
        UdpEvent::ReceivedBytes,
        UdpEvent::Sent,
        UdpEvent::SentBytes,
        UdpEvent::Truncated,
        UdpEvent::RateLimited,
        UdpEvent::ReceiveErrors,
        UdpEvent::Unreachable,
        UdpEvent::SendDropped,
        UdpEvent::SendErrors,
        UdpEvent::ReceiveCalls,
        UdpEvent::SendCalls,
        UdpEvent::Wakeups,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UdpEvent::Received => "received",
            UdpEvent::ReceivedBytes => "received_bytes",
            UdpEvent::Sent => "sent",
            UdpEvent::SentBytes => "sent_bytes",
            UdpEvent::Truncated => "truncated",
            UdpEvent::RateLimited => "rate_limited",
            UdpEvent::ReceiveErrors => "receive_errors",
            UdpEvent::Unreachable => "unreachable",
            UdpEvent::SendDropped => "send_dropped",
            UdpEvent::SendErrors => "send_errors",
            UdpEvent::ReceiveCalls => "receive_calls",
            UdpEvent::SendCalls => "send_calls",
            UdpEvent::Wakeups => "wakeups",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// One pass's counts, kept in plain integers by the worker.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    counts: [u64; UdpEvent::ALL.len()],
}

impl Tally {
    pub fn add(&mut self, event: UdpEvent, n: u64) {
        self.counts[event.index()] += n;
    }

    pub fn get(&self, event: UdpEvent) -> u64 {
        self.counts[event.index()]
    }
}

/// Server-wide UDP counters, shared by every worker.
#[derive(Debug)]
pub struct UdpCounters {
    counts: [AtomicU64; UdpEvent::ALL.len()],
    /// Per event: milliseconds after `epoch` it was last logged, plus one
    /// (0: never).
    last_logged: [AtomicU64; UdpEvent::ALL.len()],
    epoch: Instant,
}

impl Default for UdpCounters {
    fn default() -> UdpCounters {
        UdpCounters {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            last_logged: std::array::from_fn(|_| AtomicU64::new(0)),
            epoch: Instant::now(),
        }
    }
}

impl UdpCounters {
    pub fn new() -> UdpCounters {
        UdpCounters::default()
    }

    /// Adds a pass's counts and resets the tally.
    pub fn publish(&self, tally: &mut Tally) {
        for (counter, n) in self.counts.iter().zip(tally.counts.iter_mut()) {
            if *n > 0 {
                counter.fetch_add(*n, Ordering::Relaxed);
                *n = 0;
            }
        }
    }

    pub fn get(&self, event: UdpEvent) -> u64 {
        self.counts[event.index()].load(Ordering::Relaxed)
    }

    /// Logs `message` at warn level unless trouble of this kind was logged
    /// less than [`LOG_BURST`] ago (either way the caller has counted it);
    /// returns whether this call was the one to log.
    pub fn log_burst(
        &self,
        event: UdpEvent,
        now: Instant,
        message: impl FnOnce() -> String,
    ) -> bool {
        let index = event.index();
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64 + 1;
        let last = self.last_logged[index].load(Ordering::Relaxed);
        let quiet = last != 0 && now_ms.saturating_sub(last) < LOG_BURST.as_millis() as u64;
        // Of several workers racing here, exactly one wins and logs.
        if !quiet
            && self.last_logged[index]
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!(
                "udp {}: {} (more within {}s are counted as {}, not logged)",
                event.label(),
                message(),
                LOG_BURST.as_secs(),
                event.label()
            );
            return true;
        }
        false
    }

    /// Every counter as `(name, value)`, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        UdpEvent::ALL
            .into_iter()
            .map(|event| (event.label(), self.get(event)))
    }

    /// Datagrams the kernel handed over per receive call, and took per
    /// send call.
    pub fn per_call(&self) -> (f64, f64) {
        let ratio = |n: u64, calls: u64| {
            if calls == 0 {
                0.0
            } else {
                n as f64 / calls as f64
            }
        };
        let arrived = self.get(UdpEvent::Received)
            + self.get(UdpEvent::Truncated)
            + self.get(UdpEvent::RateLimited);
        (
            ratio(arrived, self.get(UdpEvent::ReceiveCalls)),
            ratio(self.get(UdpEvent::Sent), self.get(UdpEvent::SendCalls)),
        )
    }

    /// One line: `udp: name=value …` for what happened, then datagrams per
    /// receive and per send call.
    pub fn summary(&self) -> String {
        let mut line = String::from("udp:");
        for (name, value) in self.iter().filter(|(_, value)| *value > 0) {
            let _ = write!(line, " {name}={value}");
        }
        if line.len() == "udp:".len() {
            line.push_str(" none");
        }
        let (per_receive, per_send) = self.per_call();
        if self.get(UdpEvent::ReceiveCalls) > 0 {
            let _ = write!(line, " datagrams_per_receive_call={per_receive:.1}");
        }
        if self.get(UdpEvent::SendCalls) > 0 {
            let _ = write!(line, " datagrams_per_send_call={per_send:.1}");
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_its_own_counter_and_label() {
        let counters = UdpCounters::new();
        let mut tally = Tally::default();
        for (i, event) in UdpEvent::ALL.into_iter().enumerate() {
            tally.add(event, i as u64 + 1);
        }
        counters.publish(&mut tally);
        assert!(
            UdpEvent::ALL.iter().all(|e| tally.get(*e) == 0),
            "published tallies reset"
        );
        for (i, (name, value)) in counters.iter().enumerate() {
            assert_eq!(value, i as u64 + 1, "{name}");
        }
        let labels: std::collections::HashSet<_> = counters.iter().map(|(name, _)| name).collect();
        assert_eq!(labels.len(), UdpEvent::ALL.len());
        assert!(counters.summary().contains(" truncated=5 "));
    }

    #[test]
    fn the_summary_says_datagrams_per_call() {
        let counters = UdpCounters::new();
        assert_eq!(counters.summary(), "udp: none");
        let mut tally = Tally::default();
        tally.add(UdpEvent::Received, 60);
        tally.add(UdpEvent::Truncated, 4);
        tally.add(UdpEvent::ReceiveCalls, 2);
        tally.add(UdpEvent::Sent, 60);
        tally.add(UdpEvent::SendCalls, 3);
        counters.publish(&mut tally);
        assert_eq!(counters.per_call(), (32.0, 20.0));
        assert!(counters
            .summary()
            .ends_with("datagrams_per_receive_call=32.0 datagrams_per_send_call=20.0"));
        // A sender that never receives has no receive ratio to show.
        let sender = UdpCounters::new();
        let mut tally = Tally::default();
        tally.add(UdpEvent::Sent, 64);
        tally.add(UdpEvent::SendCalls, 2);
        sender.publish(&mut tally);
        assert_eq!(
            sender.summary(),
            "udp: sent=64 send_calls=2 datagrams_per_send_call=32.0"
        );
    }

    #[test]
    fn a_burst_is_logged_once_then_again_after_the_quiet_period() {
        let counters = UdpCounters::new();
        let start = counters.epoch;
        let log = |at| counters.log_burst(UdpEvent::Truncated, at, || "x".into());
        assert!(log(start));
        assert!(!log(start + Duration::from_secs(1)));
        assert!(log(start + LOG_BURST));
        // Kinds of trouble are logged independently.
        assert!(counters.log_burst(UdpEvent::SendErrors, start, || "y".into()));
    }
}
