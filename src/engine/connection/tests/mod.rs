//! The connection core driven directly: chosen bytes, chosen instants, no
//! sockets. Each test plays the driver's part by hand — feed, look at
//! `transmit()`, report what was "written", ask `next()` — so every stage
//! transition, deadline rule and bound is checked without waiting for real
//! time to pass.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::Interest;

use super::{Connection, Next, Stage};
use crate::engine::buffers::Workspace;
use crate::engine::context::{Context, ListenerPolicy};
use crate::engine::counters::WorkerCounters;
use crate::engine::limits::ConnectionLimits;
use crate::engine::stats::{CloseReason, Stats};
use crate::service::{echo::Echo, Service, Session, SessionId};
use crate::tls::test_support::{client, ClientCert};
use crate::tls::{TlsGate, TlsSession};

/// The worker's half of the test: everything a `Context` borrows.
pub(crate) struct Harness {
    pub start: Instant,
    pub limits: ConnectionLimits,
    pub listeners: Vec<ListenerPolicy>,
    pub service: Box<dyn Service>,
    pub work: Workspace,
    pub stats: Stats,
    pub counters: WorkerCounters,
    pub shutdown_by: Option<Instant>,
}

pub(crate) const PEER: &str = "127.0.0.1:40000";

impl Harness {
    /// One listener: plaintext, with TLS (the development gate) when `tls`.
    pub fn new(service: Box<dyn Service>, tls: bool) -> Harness {
        let gate = tls.then(|| Arc::new(TlsGate::development().expect("dev gate")));
        Harness {
            start: Instant::now(),
            limits: ConnectionLimits::default(),
            listeners: vec![ListenerPolicy {
                local: "127.0.0.1:8443".parse().unwrap(),
                allow_plaintext: true,
                tls: gate,
                edge: Arc::new(crate::engine::edge::EdgePolicy::open(
                    "127.0.0.1:8443".parse().unwrap(),
                )),
                counters: 0,
            }],
            service,
            work: Workspace::default(),
            stats: Stats::default(),
            counters: WorkerCounters::new(0, 1),
            shutdown_by: None,
        }
    }

    pub fn at(&self, millis: u64) -> Instant {
        self.start + Duration::from_millis(millis)
    }

    pub fn cx(&mut self, millis: u64) -> Context<'_> {
        Context {
            now: self.start + Duration::from_millis(millis),
            limits: &self.limits,
            listeners: &self.listeners,
            service: self.service.as_mut(),
            work: &mut self.work,
            stats: &self.stats,
            counters: &self.counters,
            backend: "test",
            shutdown_by: self.shutdown_by,
        }
    }

    pub fn accept(&mut self, millis: u64) -> Connection {
        let peer: SocketAddr = PEER.parse().unwrap();
        Connection::new(SessionId(1), 0, peer, &mut self.cx(millis))
    }

    /// Plays a socket that takes everything: returns what was written.
    pub fn write_all(&mut self, conn: &mut Connection, millis: u64) -> Vec<u8> {
        let mut written = Vec::new();
        loop {
            let pending = conn.transmit().to_vec();
            if pending.is_empty() {
                return written;
            }
            written.extend_from_slice(&pending);
            conn.handle_sent(pending.len(), &mut self.cx(millis));
        }
    }

    pub fn next(&self, conn: &Connection) -> Next {
        conn.next(&self.limits)
    }

    pub fn deadline(&mut self, conn: &Connection) -> Option<Instant> {
        conn.deadline(&self.cx(0))
    }
}

/// A service that says what it was told to, records what it saw, and can
/// be made to stop at `output_full` or to consume nothing.
#[derive(Default)]
struct Recorder {
    greeting: &'static [u8],
    /// Consume one line per call... until the output is full.
    line_at_a_time_until_full: bool,
    consume_nothing: bool,
    close_after_first: bool,
    shutdown_farewell: &'static [u8],
    seen: Vec<u8>,
}

impl Service for Recorder {
    fn on_connect(&mut self, session: &mut Session<'_>) {
        session.send(self.greeting);
    }

    fn on_data(&mut self, session: &mut Session<'_>, data: &[u8]) -> usize {
        if self.consume_nothing {
            return 0;
        }
        if self.line_at_a_time_until_full {
            let mut consumed = 0;
            while !session.output_full() {
                let rest = &data[consumed..];
                let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                    break;
                };
                session.send(&[b'R'; 1000]);
                consumed += end + 1;
            }
            return consumed;
        }
        self.seen.extend_from_slice(data);
        session.send(data);
        if self.close_after_first {
            session.close();
        }
        data.len()
    }

    fn on_shutdown(&mut self, session: &mut Session<'_>) {
        session.send(self.shutdown_farewell);
    }
}

fn echo_harness() -> Harness {
    Harness::new(Box::new(Echo), true)
}

mod bounds;
mod counters;
mod deadlines;
mod edge;
mod simulation;
mod stages;
