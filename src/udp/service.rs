//! The datagram service interface: what a UDP protocol implements.
//!
//! The counterpart of [`crate::service::Service`] for datagrams. There are
//! no sessions: a datagram arrives from a peer, whole, and the service may
//! answer it — or send anything to any address — through an [`Outbox`].
//! A service that speaks on its own (a stream to a multicast group) says
//! when it next wants to with [`DatagramService::next_send`], and is called
//! back at that time. The one idea: **a service never touches a socket**:
//! the engine batches what it sends into as few system calls as it can,
//! counts what the kernel refused, and never blocks; the service only says
//! what to send where.
//!
//! Each worker builds one instance per UDP socket from a
//! [`DatagramServiceFactory`], so a service needs no locks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::batch::SendBatch;

/// A UDP protocol. Callbacks run on the worker's thread and must not block.
pub trait DatagramService {
    /// A whole datagram arrived from `peer` (possibly empty). Datagrams
    /// that did not fit the receive buffer, or that were over their
    /// source's rate limit, never get here.
    fn on_datagram(&mut self, peer: SocketAddr, datagram: &[u8], out: &mut Outbox<'_>);

    /// When this service next wants [`on_send_ready`](Self::on_send_ready):
    /// never on its own (the default: it only answers), as soon as the
    /// socket can take more, or at an instant.
    fn next_send(&self, now: Instant) -> NextSend {
        let _ = now;
        NextSend::Idle
    }

    /// The time asked for by [`next_send`](Self::next_send) has come, or
    /// the socket has room: send up to [`Outbox::room`] datagrams.
    fn on_send_ready(&mut self, out: &mut Outbox<'_>) {
        let _ = out;
    }
}

/// When a service wants to send on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextSend {
    Idle,
    /// As fast as the socket takes datagrams.
    Now,
    /// Not before this instant (pacing).
    At(Instant),
}

/// Builds one service instance per UDP socket of each worker.
pub type DatagramServiceFactory = Arc<dyn Fn() -> Box<dyn DatagramService> + Send + Sync>;

/// Where a full batch goes: the engine's socket, or a test's list.
pub trait DatagramSink {
    /// Sends (or records) everything in `batch` and empties it.
    fn flush(&mut self, batch: &mut SendBatch);
}

/// The handle a callback sends through. Datagrams are queued in a batch and
/// handed to the kernel when it is full or the callback's pass ends.
pub struct Outbox<'a> {
    batch: &'a mut SendBatch,
    sink: &'a mut dyn DatagramSink,
    local: SocketAddr,
    now: Instant,
}

impl<'a> Outbox<'a> {
    /// An outbox over `batch` whose full batches go to `sink`; `local` is
    /// the socket's own address. Used by the engine, and by service tests.
    pub fn new(
        batch: &'a mut SendBatch,
        sink: &'a mut dyn DatagramSink,
        local: SocketAddr,
        now: Instant,
    ) -> Outbox<'a> {
        Outbox {
            batch,
            sink,
            local,
            now,
        }
    }

    /// Queues `datagram` for `to`. Never blocks: if the kernel's send
    /// buffer is full when the batch goes out, the datagram is dropped and
    /// counted (`send_dropped`), never retried.
    pub fn send_to(&mut self, to: SocketAddr, datagram: &[u8]) {
        if self.batch.is_full() {
            self.sink.flush(self.batch);
        }
        self.batch.push(to, datagram);
    }

    /// Datagrams that can be queued before the batch goes out: a service
    /// that produces on its own sends about this many per call.
    pub fn room(&self) -> usize {
        self.batch.room()
    }

    /// The address of the socket this outbox sends from.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The engine's current time (services keep no clock of their own, so
    /// tests can choose it).
    pub fn now(&self) -> Instant {
        self.now
    }
}

/// A sink that keeps what it is given: for service tests.
#[derive(Debug, Default)]
pub struct Captured {
    pub datagrams: Vec<(SocketAddr, Vec<u8>)>,
}

impl DatagramSink for Captured {
    fn flush(&mut self, batch: &mut SendBatch) {
        for i in 0..batch.len() {
            let (to, bytes) = batch.get(i);
            if let Some(to) = to.as_socket() {
                self.datagrams.push((to, bytes.to_vec()));
            }
        }
        batch.clear();
    }
}

impl Captured {
    /// Runs `call` with an outbox whose batch holds `capacity`, then
    /// collects everything it sent.
    pub fn run(capacity: usize, now: Instant, call: impl FnOnce(&mut Outbox<'_>)) -> Captured {
        let mut captured = Captured::default();
        let mut batch = SendBatch::new(capacity);
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        {
            let mut out = Outbox::new(&mut batch, &mut captured, local, now);
            call(&mut out);
        }
        captured.flush(&mut batch);
        captured
    }
}
