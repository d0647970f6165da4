//! Per-worker counters for metrics: written by one thread, summed when read.
//!
//! Bytes in and out are counted on every read and write, so these counters
//! sit on the hot path. A counter shared by all workers would put one cache
//! line under every worker's writes, and a locked `fetch_add` on it costs
//! far more than the increment itself. So each worker owns its own block of
//! counters ([`WorkerCounters`]), and only the admin thread, when scraped,
//! reads every block and adds them up.
//!
//! The one idea: **a counter with one writer needs no atomic
//! read-modify-write**. [`Tally::add`] is a relaxed load and a relaxed
//! store — two plain `mov`s on x86, an `ldr`/`str` on ARM — and a reader on
//! another thread still sees whole values (never a torn `u64`), at worst
//! one increment late. That is sound only while a single thread writes a
//! given [`WorkerCounters`]: its worker.
//!
//! Counters are kept per listener and, inside a listener, per *lane*: the
//! transport a connection was admitted with (plain, TLS, mTLS), or `none`
//! while it is not admitted yet (sniffing its first bytes or mid-handshake).
//! Bytes read are filed under the lane the connection is in once they have
//! been handled (so a plaintext connection's first bytes, which admit it,
//! count as plaintext, and a TLS client's last handshake flight as TLS);
//! bytes written, under the lane it is in when they go out.
//! Gauges such as "connections active" are not stored at all: they are
//! differences of these monotonic counters, computed at scrape time, so the
//! hot path never has to decrement anything.

use std::sync::atomic::{AtomicU64, Ordering};

use super::stats::CloseReason;
use crate::connection_info::Transport;
use crate::tls::TlsErrorKind;

/// A counter with a single writer (see the module doc).
#[derive(Debug, Default)]
pub struct Tally(AtomicU64);

impl Tally {
    /// Adds `n`. Only the owning worker thread may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        // Not fetch_add: one writer, so load + store cannot lose an update,
        // and it avoids a locked instruction on every read and write.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// How a connection's bytes and ending are filed: by transport once
/// admitted, under `None` before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Not admitted yet: sniffing, or in the TLS handshake.
    None = 0,
    Plain = 1,
    Tls = 2,
    Mtls = 3,
}

impl Lane {
    pub const ALL: [Lane; 4] = [Lane::None, Lane::Plain, Lane::Tls, Lane::Mtls];

    pub fn label(self) -> &'static str {
        match self {
            Lane::None => "none",
            Lane::Plain => "plain",
            Lane::Tls => "tls",
            Lane::Mtls => "mtls",
        }
    }

    pub fn of(transport: Option<Transport>) -> Lane {
        match transport {
            None => Lane::None,
            Some(Transport::Plain) => Lane::Plain,
            Some(Transport::Tls) => Lane::Tls,
            Some(Transport::Mtls) => Lane::Mtls,
        }
    }
}

const REASONS: usize = CloseReason::ALL.len();
const TLS_FAILURES: usize = TlsErrorKind::ALL.len();

/// One lane of one listener.
#[derive(Debug, Default)]
pub struct LaneCounters {
    /// Connections admitted with this transport (never counted for `none`).
    pub admitted: Tally,
    /// Connections that ended in this lane, by [`CloseReason`] index.
    pub closed: [Tally; REASONS],
    pub bytes_in: Tally,
    pub bytes_out: Tally,
    /// TLS handshakes completed into this lane (tls or mtls only).
    pub handshakes: Tally,
    /// Of those, handshakes that resumed a session.
    pub resumed: Tally,
}

/// One listener's counters on one worker. Aligned to a cache line so that
/// no other allocation (another worker's block) shares its lines.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct ListenerCounters {
    pub accepted: Tally,
    /// Accepted and closed at once, never admitted, by [`CloseReason`] index.
    pub refused: [Tally; REASONS],
    /// TLS handshakes that failed or were refused, by [`TlsErrorKind`] index.
    pub handshakes_failed: [Tally; TLS_FAILURES],
    pub lanes: [LaneCounters; 4],
}

impl ListenerCounters {
    #[inline]
    pub fn lane(&self, lane: Lane) -> &LaneCounters {
        &self.lanes[lane as usize]
    }

    /// Connections of this listener open now in `lane`: admitted minus
    /// closed, or for `none`, accepted minus refused, admitted and closed
    /// before admission.
    pub fn active(&self, lane: Lane) -> u64 {
        let closed = |l: &LaneCounters| l.closed.iter().map(Tally::get).sum::<u64>();
        match lane {
            Lane::None => {
                // Read the later counters first: a connection counted in
                // one of them was counted in `accepted` before it, so a
                // reading racing the worker undercounts rather than goes
                // negative (and the subtraction saturates, for weakly
                // ordered machines where relaxed loads may pass each other).
                let ended = closed(self.lane(Lane::None));
                let admitted: u64 = self.lanes[1..].iter().map(|l| l.admitted.get()).sum();
                let refused: u64 = self.refused.iter().map(Tally::get).sum();
                let accepted = self.accepted.get();
                accepted.saturating_sub(refused + admitted + ended)
            }
            other => {
                let counters = self.lane(other);
                let ended = closed(counters);
                counters.admitted.get().saturating_sub(ended)
            }
        }
    }
}

/// Everything one worker counts, one block per listener.
#[derive(Debug)]
pub struct WorkerCounters {
    pub worker: usize,
    pub listeners: Box<[ListenerCounters]>,
    /// Where listeners opened by a reload count: they have no block of
    /// their own (the blocks are sized at start-up), and are not exported.
    pub unlisted: ListenerCounters,
}

impl WorkerCounters {
    pub fn new(worker: usize, listeners: usize) -> WorkerCounters {
        WorkerCounters {
            worker,
            listeners: (0..listeners)
                .map(|_| ListenerCounters::default())
                .collect(),
            unlisted: ListenerCounters::default(),
        }
    }

    /// The counters of listener `index` (a policy's `counters`); those of
    /// listeners opened by a reload are [`unlisted`](Self::unlisted).
    #[inline]
    pub fn listener(&self, index: usize) -> &ListenerCounters {
        self.listeners.get(index).unwrap_or(&self.unlisted)
    }

    pub fn count_accepted(&self, listener: usize) {
        self.listener(listener).accepted.incr();
    }

    pub fn count_refused(&self, listener: usize, reason: CloseReason) {
        self.listener(listener).refused[reason.index()].incr();
    }

    pub fn count_admitted(&self, listener: usize, transport: Transport) {
        self.listener(listener)
            .lane(Lane::of(Some(transport)))
            .admitted
            .incr();
    }

    pub fn count_closed(&self, listener: usize, lane: Lane, reason: CloseReason) {
        self.listener(listener).lane(lane).closed[reason.index()].incr();
    }

    pub fn count_handshake(&self, listener: usize, transport: Transport, resumed: bool) {
        let lane = self.listener(listener).lane(Lane::of(Some(transport)));
        lane.handshakes.incr();
        if resumed {
            lane.resumed.incr();
        }
    }

    pub fn count_handshake_failed(&self, listener: usize, kind: TlsErrorKind) {
        self.listener(listener).handshakes_failed[kind.index()].incr();
    }

    #[inline]
    pub fn count_bytes_in(&self, listener: usize, lane: Lane, n: usize) {
        self.listener(listener).lane(lane).bytes_in.add(n as u64);
    }

    #[inline]
    pub fn count_bytes_out(&self, listener: usize, lane: Lane, n: usize) {
        self.listener(listener).lane(lane).bytes_out.add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_adds_and_another_thread_reads_whole_values() {
        let counters = std::sync::Arc::new(WorkerCounters::new(0, 1));
        let writer = {
            let counters = counters.clone();
            std::thread::spawn(move || {
                for _ in 0..100_000 {
                    counters.count_bytes_in(0, Lane::Plain, 3);
                }
            })
        };
        let mut last = 0;
        while !writer.is_finished() {
            let now = counters.listener(0).lane(Lane::Plain).bytes_in.get();
            assert!(now >= last && now % 3 == 0, "{last} then {now}");
            last = now;
        }
        writer.join().unwrap();
        assert_eq!(
            counters.listener(0).lane(Lane::Plain).bytes_in.get(),
            300_000
        );
    }

    #[test]
    fn active_connections_are_differences_of_counters() {
        let c = WorkerCounters::new(0, 2);
        for _ in 0..5 {
            c.count_accepted(1);
        }
        c.count_refused(1, CloseReason::MaxConnections);
        c.count_admitted(1, Transport::Plain);
        c.count_admitted(1, Transport::Tls);
        c.count_admitted(1, Transport::Tls);
        c.count_closed(1, Lane::Tls, CloseReason::PeerClosed);
        let l = c.listener(1);
        assert_eq!(
            l.active(Lane::None),
            1,
            "5 accepted - 1 refused - 3 admitted"
        );
        assert_eq!(l.active(Lane::Plain), 1);
        assert_eq!(l.active(Lane::Tls), 1);
        assert_eq!(l.active(Lane::Mtls), 0);
        c.count_closed(1, Lane::None, CloseReason::HandshakeTimeout);
        assert_eq!(c.listener(1).active(Lane::None), 0);
        assert_eq!(c.listener(0).accepted.get(), 0, "listeners are apart");
    }

    #[test]
    fn a_listener_block_owns_its_cache_lines() {
        assert_eq!(std::mem::align_of::<ListenerCounters>(), 64);
        assert_eq!(std::mem::size_of::<ListenerCounters>() % 64, 0);
    }
}
