//! One reading of every counter, taken when the admin port is asked.
//!
//! The workers never stop for a scrape: the admin thread reads each
//! worker's counters (`engine::counters`) with relaxed loads and copies them
//! into a [`Snapshot`]. Both answers are rendered from that one copy —
//! `/stats` serialises it as JSON, `/metrics` formats it for Prometheus —
//! and `portcullis stats` parses the JSON back, so the three can never
//! disagree. The one idea: **read once, render twice**. Reasons are listed
//! by iterating over [`CloseReason::ALL`] and [`TlsErrorKind::ALL`] with
//! their labels, so a reason added to either enum shows up here without an
//! edit.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::engine::counters::{Lane, ListenerCounters, Tally, WorkerCounters};
use crate::engine::edge::limits::UNLIMITED;
use crate::engine::{CloseReason, Shared};
use crate::tls::TlsErrorKind;

/// What the admin thread reads from: the running server's shared state and
/// every worker's counters.
pub struct Source {
    pub shared: Arc<Shared>,
    pub workers: Vec<Arc<WorkerCounters>>,
    /// The TCP listeners, in the order workers index them.
    pub listeners: Vec<SocketAddr>,
    pub backend: &'static str,
    pub started: Instant,
}

/// Every counter at one moment. See the module doc.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub version: String,
    pub backend: String,
    pub uptime_secs: f64,
    /// The server is shutting down: no new connections, the open ones
    /// finishing within the shutdown grace period.
    pub draining: bool,
    /// Connections open now, across all workers (the drain's remaining).
    pub open_connections: u64,
    pub max_connections: u64,
    pub listeners: Vec<ListenerSnapshot>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ListenerSnapshot {
    pub index: usize,
    pub address: String,
    /// The listener's own connection limit (`None`: only the global one).
    pub max_connections: Option<u64>,
    /// Connections open on this listener, across workers.
    pub open_connections: u64,
    pub workers: Vec<WorkerSnapshot>,
}

/// One listener on one worker.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WorkerSnapshot {
    pub worker: usize,
    pub accepted: u64,
    /// Accepted and closed at once, by reason.
    pub refused: BTreeMap<String, u64>,
    /// TLS handshakes that failed, by reason.
    pub handshakes_failed: BTreeMap<String, u64>,
    /// By transport: `plain`, `tls`, `mtls`, and `none` (not admitted yet).
    pub transports: BTreeMap<String, LaneSnapshot>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LaneSnapshot {
    pub admitted: u64,
    pub active: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub handshakes: u64,
    pub handshakes_resumed: u64,
    pub closed: BTreeMap<String, u64>,
}

impl Source {
    pub fn snapshot(&self) -> Snapshot {
        let listeners = self
            .listeners
            .iter()
            .enumerate()
            .map(|(index, address)| ListenerSnapshot {
                index,
                address: address.to_string(),
                max_connections: self.shared.listeners.get(index).and_then(|l| {
                    match l.max_connections.load(Ordering::Relaxed) {
                        UNLIMITED => None,
                        n => Some(n as u64),
                    }
                }),
                open_connections: self
                    .shared
                    .listeners
                    .get(index)
                    .map_or(0, |l| l.open() as u64),
                workers: self
                    .workers
                    .iter()
                    .map(|w| read_worker(w.worker, w.listener(index)))
                    .collect(),
            })
            .collect();
        Snapshot {
            version: env!("CARGO_PKG_VERSION").to_string(),
            backend: self.backend.to_string(),
            uptime_secs: self.started.elapsed().as_secs_f64(),
            draining: self.shared.stop.load(Ordering::Acquire),
            open_connections: self.shared.open_connections.load(Ordering::Relaxed) as u64,
            max_connections: self.shared.max_connections.load(Ordering::Relaxed) as u64,
            listeners,
        }
    }
}

fn by_label<'a>(tallies: &[Tally], labels: impl Iterator<Item = &'a str>) -> BTreeMap<String, u64> {
    labels
        .zip(tallies)
        .map(|(label, t)| (label.to_string(), t.get()))
        .collect()
}

fn reasons() -> impl Iterator<Item = &'static str> {
    CloseReason::ALL.into_iter().map(CloseReason::label)
}

fn read_worker(worker: usize, c: &ListenerCounters) -> WorkerSnapshot {
    let transports = Lane::ALL
        .into_iter()
        .map(|lane| {
            let l = c.lane(lane);
            let snapshot = LaneSnapshot {
                // Each field is its own relaxed load: a reading racing the
                // worker may be one event apart between fields, never torn.
                active: c.active(lane),
                admitted: l.admitted.get(),
                bytes_in: l.bytes_in.get(),
                bytes_out: l.bytes_out.get(),
                handshakes: l.handshakes.get(),
                handshakes_resumed: l.resumed.get(),
                closed: by_label(&l.closed, reasons()),
            };
            (lane.label().to_string(), snapshot)
        })
        .collect();
    WorkerSnapshot {
        worker,
        accepted: c.accepted.get(),
        refused: by_label(&c.refused, reasons()),
        handshakes_failed: by_label(
            &c.handshakes_failed,
            TlsErrorKind::ALL.into_iter().map(TlsErrorKind::reason),
        ),
        transports,
    }
}

/// Totals over workers, for a person (`portcullis stats`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub accepted: u64,
    pub refused: BTreeMap<String, u64>,
    pub handshakes_failed: BTreeMap<String, u64>,
    pub transports: BTreeMap<String, LaneSnapshot>,
}

fn add_into(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

impl ListenerSnapshot {
    /// This listener's counters summed over its workers.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for w in &self.workers {
            t.accepted += w.accepted;
            add_into(&mut t.refused, &w.refused);
            add_into(&mut t.handshakes_failed, &w.handshakes_failed);
            for (name, lane) in &w.transports {
                let sum = t.transports.entry(name.clone()).or_default();
                sum.admitted += lane.admitted;
                sum.active += lane.active;
                sum.bytes_in += lane.bytes_in;
                sum.bytes_out += lane.bytes_out;
                sum.handshakes += lane.handshakes;
                sum.handshakes_resumed += lane.handshakes_resumed;
                add_into(&mut sum.closed, &lane.closed);
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection_info::Transport;

    #[test]
    fn a_snapshot_lists_every_reason_and_sums_workers() {
        let shared = Arc::new(Shared::new(7));
        let workers: Vec<_> = (0..2)
            .map(|w| Arc::new(WorkerCounters::new(w, 1)))
            .collect();
        for w in &workers {
            w.count_accepted(0);
            w.count_admitted(0, Transport::Plain);
            w.count_bytes_in(0, Lane::Plain, 10);
        }
        workers[1].count_closed(0, Lane::Plain, CloseReason::PeerClosed);
        let source = Source {
            shared,
            workers,
            listeners: vec!["127.0.0.1:1".parse().unwrap()],
            backend: "test",
            started: Instant::now(),
        };
        let snap = source.snapshot();
        assert_eq!(snap.max_connections, 7);
        let w0 = &snap.listeners[0].workers[0];
        assert_eq!(w0.refused.len(), CloseReason::ALL.len());
        assert_eq!(w0.handshakes_failed.len(), TlsErrorKind::ALL.len());
        assert_eq!(w0.transports.len(), 4);
        let totals = snap.listeners[0].totals();
        assert_eq!(totals.accepted, 2);
        assert_eq!(totals.transports["plain"].active, 1);
        assert_eq!(totals.transports["plain"].bytes_in, 20);
        assert_eq!(totals.transports["plain"].closed["peer_closed"], 1);
        let json = serde_json::to_string(&snap).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
    }
}
