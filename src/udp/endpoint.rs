//! One UDP socket and its service: receive a batch, serve it, send a batch.
//!
//! This is the datagram counterpart of the engine's connection, and the
//! part of UDP a driver does not need to know: a driver only tells an
//! [`Endpoint`] that its socket is ready or its timer is due, and asks it
//! which readiness it wants next ([`Endpoint::interest`]) and when to wake
//! it ([`Endpoint::deadline`]). One readiness event runs up to
//! [`RECEIVE_PASSES_PER_EVENT`] passes of: fill a [`RecvBatch`], drop what
//! was truncated or over its source's rate, hand each datagram to the
//! service, send what it queued in one [`SendBatch`].
//!
//! The one idea: **nothing a peer does stops the loop**. A datagram too
//! large, an ICMP report about an earlier reply, a refused send or a full
//! send buffer is counted, logged once per burst, and the next datagram is
//! served; the socket never closes because of one, and sending never
//! waits.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use backends::Interest;

use super::batch::{errors, IoMode, RecvBatch, RecvStop, SendBatch};
use super::counters::{Tally, UdpCounters, UdpEvent};
use super::rate::{RateLimit, SourceLimiter, Verdict};
use super::service::{DatagramService, DatagramSink, NextSend, Outbox};

/// Receive passes per readiness event before other sockets get a turn.
pub const RECEIVE_PASSES_PER_EVENT: usize = 16;
/// Passes of a service's own sending per event or timer.
pub const SEND_PASSES_PER_EVENT: usize = 16;

/// How every endpoint of a server reads and writes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EndpointOptions {
    /// Datagrams per receive pass and per send batch.
    pub batch: usize,
    /// The receive slot: larger datagrams are dropped as truncated.
    pub max_datagram: usize,
    pub io: IoMode,
    pub rate_limit: Option<RateLimit>,
}

impl Default for EndpointOptions {
    fn default() -> EndpointOptions {
        EndpointOptions {
            batch: 32,
            // Any UDP payload fits (65,507 bytes over IPv4, 65,527 over IPv6).
            max_datagram: 65_536,
            io: IoMode::Batched,
            rate_limit: None,
        }
    }
}

/// The batches a worker lends to whichever endpoint it is serving, so that
/// a worker holds one receive batch however many UDP sockets it has.
pub struct Scratch {
    recv: RecvBatch,
    send: SendBatch,
}

impl Scratch {
    pub fn new(options: &EndpointOptions) -> Scratch {
        Scratch {
            recv: RecvBatch::new(options.batch, options.max_datagram),
            send: SendBatch::new(options.batch),
        }
    }
}

/// One UDP socket with its service instance and its source limiter.
pub struct Endpoint {
    service: Box<dyn DatagramService>,
    limiter: Option<SourceLimiter>,
    port: Port,
}

/// The socket and what its sends and receives are counted in: the part of
/// an endpoint a flush needs, apart from the service that fills it.
struct Port {
    socket: UdpSocket,
    local: SocketAddr,
    io: IoMode,
    counters: Arc<UdpCounters>,
    tally: Tally,
    /// The last flush found the send buffer full: the service's own
    /// sending waits for the socket to be writable again.
    send_blocked: bool,
}

impl Endpoint {
    pub fn new(
        socket: UdpSocket,
        service: Box<dyn DatagramService>,
        options: &EndpointOptions,
        counters: Arc<UdpCounters>,
    ) -> io::Result<Endpoint> {
        socket.set_nonblocking(true)?;
        Ok(Endpoint {
            service,
            limiter: options.rate_limit.map(SourceLimiter::new),
            port: Port {
                local: socket.local_addr()?,
                socket,
                io: options.io,
                counters,
                tally: Tally::default(),
                send_blocked: false,
            },
        })
    }

    pub fn fd(&self) -> RawFd {
        self.port.socket.as_raw_fd()
    }

    pub fn local(&self) -> SocketAddr {
        self.port.local
    }

    /// The socket is ready: receive and serve, then let the service send.
    pub fn on_ready(
        &mut self,
        scratch: &mut Scratch,
        readable: bool,
        writable: bool,
        now: Instant,
    ) {
        self.port.tally.add(UdpEvent::Wakeups, 1);
        if writable {
            self.port.send_blocked = false;
        }
        if readable {
            self.receive(scratch, now);
        }
        self.send_due(scratch, now);
        self.port.publish();
    }

    /// The instant from [`deadline`](Self::deadline) has come.
    pub fn on_timer(&mut self, scratch: &mut Scratch, now: Instant) {
        self.port.tally.add(UdpEvent::Wakeups, 1);
        self.send_due(scratch, now);
        self.port.publish();
    }

    /// Readable always (anyone may send a datagram); writable too while
    /// the service wants to send now, or waits for a full buffer to drain.
    pub fn interest(&self, now: Instant) -> Interest {
        let due_now = match self.service.next_send(now) {
            NextSend::Now => true,
            NextSend::At(at) => at <= now,
            NextSend::Idle => false,
        };
        if due_now || self.port.send_blocked {
            Interest::BOTH
        } else {
            Interest::READABLE
        }
    }

    /// When the service next wants to send, if at a future instant.
    pub fn deadline(&self, now: Instant) -> Option<Instant> {
        match self.service.next_send(now) {
            NextSend::At(at) if at > now => Some(at),
            _ => None,
        }
    }

    fn receive(&mut self, scratch: &mut Scratch, now: Instant) {
        let fd = self.fd();
        let mut quiet = true;
        for _ in 0..RECEIVE_PASSES_PER_EVENT {
            let pass = scratch.recv.receive(fd, self.port.io);
            self.port
                .tally
                .add(UdpEvent::ReceiveCalls, pass.system_calls);
            quiet &= pass.datagrams == 0;
            for i in 0..pass.datagrams {
                self.serve(scratch, i, now);
            }
            self.port.sink(now).flush(&mut scratch.send);
            match pass.stop {
                RecvStop::Full => {}
                RecvStop::Drained => break,
                RecvStop::Failed(err) => {
                    quiet = false;
                    self.port.receive_failed(&err, now);
                }
            }
        }
        if quiet {
            // Woken with nothing to read: an error report may be waiting
            // without a pending error (a local send error), and would keep
            // the socket ready forever if left in the queue.
            self.port.count_reports(errors::drain(fd), None, now);
        }
    }

    /// Serves datagram `i` of the receive batch, unless it must be dropped.
    fn serve(&mut self, scratch: &mut Scratch, i: usize, now: Instant) {
        let datagram = scratch.recv.get(i);
        let port = &mut self.port;
        let local = port.local;
        let Some(peer) = datagram.peer else {
            port.count_trouble(UdpEvent::ReceiveErrors, now, || {
                format!("{local}: a datagram came from an address of an unknown family")
            });
            return;
        };
        if datagram.truncated {
            let slot = scratch.recv.slot_size();
            port.count_trouble(UdpEvent::Truncated, now, || {
                format!(
                    "{local}: a datagram from {peer} was larger than max_datagram_bytes \
                     ({slot}) and was dropped"
                )
            });
            return;
        }
        if let Some(limiter) = &mut self.limiter {
            match limiter.allow(peer.ip(), now) {
                Verdict::Allowed => {}
                Verdict::Limited => {
                    port.count_trouble(UdpEvent::RateLimited, now, || {
                        format!(
                            "{local}: {peer} is over per_source_rate; its datagrams are dropped"
                        )
                    });
                    return;
                }
                Verdict::TableFull => {
                    port.count_trouble(UdpEvent::RateLimited, now, || {
                        format!(
                            "{local}: dropped a datagram from {peer}: the table of {} sources \
                             is full of sources still over their limit",
                            super::rate::MAX_SOURCES
                        )
                    });
                    return;
                }
            }
        }
        port.tally.add(UdpEvent::Received, 1);
        port.tally
            .add(UdpEvent::ReceivedBytes, datagram.bytes.len() as u64);
        let mut sink = port.sink(now);
        let mut out = Outbox::new(&mut scratch.send, &mut sink, local, now);
        self.service.on_datagram(peer, datagram.bytes, &mut out);
    }

    /// Lets a service that sends on its own do so while it is due, the
    /// buffer has room, and the per-event budget lasts.
    fn send_due(&mut self, scratch: &mut Scratch, now: Instant) {
        for _ in 0..SEND_PASSES_PER_EVENT {
            if self.port.send_blocked {
                return;
            }
            match self.service.next_send(now) {
                NextSend::Idle => return,
                NextSend::At(at) if at > now => return,
                _ => {}
            }
            let local = self.port.local;
            let mut sink = self.port.sink(now);
            {
                let mut out = Outbox::new(&mut scratch.send, &mut sink, local, now);
                self.service.on_send_ready(&mut out);
            }
            let produced = sink.flushed + scratch.send.len();
            sink.flush(&mut scratch.send);
            if produced == 0 {
                return; // due, yet nothing to send: do not spin on it
            }
        }
    }
}

impl Port {
    fn sink(&mut self, now: Instant) -> PortSink<'_> {
        PortSink {
            port: self,
            now,
            flushed: 0,
        }
    }

    fn publish(&mut self) {
        self.counters.publish(&mut self.tally);
    }

    /// Counts one dropped datagram or failed call, and logs it unless its
    /// kind was logged moments ago.
    fn count_trouble(&mut self, event: UdpEvent, now: Instant, message: impl FnOnce() -> String) {
        self.tally.add(event, 1);
        self.counters.log_burst(event, now, message);
    }

    fn receive_failed(&mut self, err: &io::Error, now: Instant) {
        if errors::is_unreachable(err) {
            let drained = errors::drain(self.socket.as_raw_fd());
            self.count_reports(drained, Some(err), now);
        } else {
            let local = self.local;
            self.count_trouble(UdpEvent::ReceiveErrors, now, || {
                format!("{local}: a receive failed: {err}")
            });
        }
    }

    /// Counts ICMP reports: those drained from the error queue, and at
    /// least one when a receive said so (`err`).
    fn count_reports(&mut self, drained: errors::Drained, err: Option<&io::Error>, now: Instant) {
        let reports = drained.reports.max(usize::from(err.is_some()));
        if reports == 0 {
            return;
        }
        self.tally.add(UdpEvent::Unreachable, reports as u64);
        let local = self.local;
        let whom = drained
            .first_destination
            .map_or_else(|| "a peer".to_string(), |a| a.to_string());
        let why = err.map_or_else(|| "an error report".to_string(), |e| e.to_string());
        self.counters.log_burst(UdpEvent::Unreachable, now, || {
            format!("{local}: a datagram sent to {whom} could not be delivered ({why})")
        });
    }
}

/// Sends full batches from a port's socket and counts the outcome.
struct PortSink<'a> {
    port: &'a mut Port,
    now: Instant,
    /// Datagrams handed to the kernel (or dropped) by this sink so far.
    flushed: usize,
}

impl DatagramSink for PortSink<'_> {
    fn flush(&mut self, batch: &mut SendBatch) {
        if batch.is_empty() {
            return;
        }
        self.flushed += batch.len();
        let port = &mut *self.port;
        let report = batch.flush(port.socket.as_raw_fd(), port.io);
        port.tally.add(UdpEvent::Sent, report.sent);
        port.tally.add(UdpEvent::SentBytes, report.sent_bytes);
        port.tally.add(UdpEvent::SendCalls, report.system_calls);
        let local = port.local;
        if report.dropped_full > 0 {
            port.send_blocked = true;
            port.tally.add(UdpEvent::SendDropped, report.dropped_full);
            let dropped = report.dropped_full;
            port.counters
                .log_burst(UdpEvent::SendDropped, self.now, || {
                    format!("{local}: the send buffer is full; {dropped} datagrams were dropped")
                });
        }
        if report.failed > 0 {
            port.tally.add(UdpEvent::SendErrors, report.failed);
            if let Some((err, to)) = &report.first_failure {
                let to = to.map_or_else(|| "?".to_string(), |a| a.to_string());
                port.counters.log_burst(UdpEvent::SendErrors, self.now, || {
                    format!("{local}: the kernel refused a datagram to {to}: {err}")
                });
            }
        }
    }
}
