//! One connection's logic, with no I/O in it: bytes and time in; bytes to
//! send, the readiness it needs, its next deadline, or a close out.
//!
//! A [`Connection`] never calls `read`, `write` or the clock. A *driver*
//! (the readiness loop in `engine/readiness/`, or one built on completions)
//! owns the socket and the timers and talks to the connection through four
//! kinds of methods, after quinn-proto's `Connection`:
//!
//! | kind | methods | what the driver does |
//! |---|---|---|
//! | what arrived | [`handle_input`](Connection::handle_input), [`handle_eof`](Connection::handle_eof), [`handle_sent`](Connection::handle_sent), [`handle_timeout`](Connection::handle_timeout), [`handle_broadcast`](Connection::handle_broadcast) | feeds bytes read, end of input, bytes written, the clock, a broadcast |
//! | what the server asks | [`begin_shutdown`](Connection::begin_shutdown), [`handle_write_shut`](Connection::handle_write_shut), [`handle_socket_error`](Connection::handle_socket_error) | passes on decisions and failures |
//! | what to do next | [`transmit`](Connection::transmit), [`next`](Connection::next), [`deadline`](Connection::deadline) | writes `transmit()`, re-arms with `next()`, sleeps until `deadline()` |
//! | the end | [`finish`](Connection::finish) | counts the reason and tells the service |
//!
//! After every `handle_*` call the driver writes what `transmit()` holds
//! (telling the connection how much went with `handle_sent`), then asks
//! `next()`: wait for readiness, send FIN and linger, or close with a
//! reason. The one idea: **every path ends in `next()`**, which computes
//! what the connection wants from its state rather than remembering it, so
//! no flag can be forgotten and every driver behaves the same.
//!
//! The bytes go through one pipeline of stages (`stages.rs`): sniff the
//! first bytes, run TLS when they say so, then the service. The time limits
//! are stated once, in `deadlines.rs`.

mod deadlines;
mod input;
pub mod output;
mod proxy_stage;
mod service_calls;
mod stages;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use backends::Interest;

use super::context::Context;
use super::counters::Lane;
use super::edge::rate::ReadBucket;
use super::limits::ConnectionLimits;
use super::stats::CloseReason;
use super::worker::Admitted;
use crate::connection_info::{ConnectionInfo, Transport};
use crate::service::SessionId;
use crate::tls::TlsSession;
pub use deadlines::Expiry;
use input::Leftover;
use output::OutputQueue;

/// Where a connection is in its life.
///
/// ```text
///   accepted ──► Sniffing ──(first bytes: TLS record)──► Handshaking ──► Open
///      │            ▲  │                                                 ▲
///      │            │  └──────────(anything else, if allowed)────────────┘
///      └► ProxyHeader (from a trusted proxy, when the listener enables it)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for a trusted proxy's whole PROXY header.
    ProxyHeader,
    /// Waiting for the first bytes that say plaintext or TLS.
    Sniffing,
    /// TLS handshake in progress.
    Handshaking,
    /// Admitted; the service sees its bytes.
    Open,
}

/// What the driver must do for a connection now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Wait until the socket is ready for this.
    Wait(Interest),
    /// Everything is written and the connection is closing: send FIN
    /// (`shutdown(SHUT_WR)`) and call
    /// [`handle_write_shut`](Connection::handle_write_shut), so that the
    /// peer can read our last bytes before it sees the close. A driver that
    /// knows nothing is in flight may close at once with
    /// [`closing_reason`](Connection::closing_reason) instead.
    ShutdownWrite,
    /// Close now. Give [`transmit`](Connection::transmit) (a TLS alert,
    /// say) one try first; do not wait for it.
    Close(CloseReason),
    /// Nothing to wait for until the driver lifts the pause it set with
    /// [`set_read_paused`](Connection::set_read_paused): keep the
    /// connection (its deadlines still run), but do not arm it.
    Parked,
}

/// A TLS connection's engine, and what its handshake established. Only TLS
/// connections have admission facts to keep: a plaintext connection's are
/// made on demand from its addresses, so that it stays small when idle.
struct Tls {
    session: TlsSession,
    info: Option<ConnectionInfo>,
}

/// The instants the deadline rules measure from.
#[derive(Clone, Copy, Debug)]
struct Clock {
    accepted_at: Instant,
    /// The last byte received or written.
    last_activity: Instant,
    /// When output last made progress, or became queued after none was.
    /// Once lingering (FIN sent, so nothing is queued) it marks the FIN:
    /// one field for both keeps an idle connection small.
    output_since: Instant,
}

/// One connection's state. See the module documentation for how a driver
/// uses it.
pub struct Connection {
    id: SessionId,
    /// Index into the context's listeners (a worker has a handful).
    listener: u16,
    peer: SocketAddr,
    stage: Stage,
    /// How it was admitted, once it is: kept apart from `tls` (dropped on a
    /// socket error) so that its ending is counted where it was admitted.
    transport: Option<Transport>,
    /// `Some` once the first bytes said TLS.
    tls: Option<Box<Tls>>,
    /// Bytes received but not consumed: the sniffed prefix, or plaintext
    /// the service left for later.
    input: Leftover,
    /// Plaintext waiting for the socket (TLS connections queue ciphertext
    /// inside their session instead).
    output: OutputQueue,
    clock: Clock,
    /// Close once the queued output is written, for this reason.
    ending: Option<CloseReason>,
    /// Close at once, for this reason.
    closed: Option<CloseReason>,
    /// The peer has sent FIN (or close_notify): nothing more will arrive.
    read_closed: bool,
    /// Our FIN is sent; reading and discarding until the peer's.
    write_shut: bool,
    /// The service wants `on_drained` once its output is written.
    wants_drained: bool,
    /// The service left input unconsumed because the output was full; it is
    /// offered again once the output drains below the high-water mark.
    input_waiting: bool,
    /// The service holds output back until the peer acts.
    waiting_for_peer: bool,
    /// The driver holds reading off (a broadcast inbox is full).
    read_paused: bool,
    /// The per-client table counts this connection's client (the TCP peer,
    /// or the PROXY header's source): release it at the close.
    client_counted: bool,
    /// What the edge policy keeps for this connection, boxed so that a
    /// connection with neither costs one word.
    edge: Option<Box<EdgeState>>,
}

/// A connection's PROXY header and read-rate bucket, when it has either.
#[derive(Debug, Default)]
struct EdgeState {
    /// The PROXY header a trusted proxy sent, once whole and valid.
    proxy: Option<Arc<crate::proxy::Header>>,
    /// `read_rate_limit`'s bucket, on listeners that set one.
    read_rate: Option<ReadBucket>,
}

impl Connection {
    /// A connection accepted at `now` on listener `listener` (an index into
    /// the context's listeners). On a plaintext-only listener there is
    /// nothing to sniff, so it is admitted at once and the service's
    /// `on_connect` runs here: check `transmit()` afterwards.
    pub fn new(
        id: SessionId,
        listener: usize,
        peer: SocketAddr,
        cx: &mut Context<'_>,
    ) -> Connection {
        let now = cx.now;
        let edge = &cx.listeners[listener].edge;
        let client_at_accept = edge.client_at_accept(peer);
        let mut conn = Connection {
            id,
            listener: u16::try_from(listener).expect("a worker has at most 65,536 listeners"),
            peer,
            stage: match client_at_accept {
                Some(_) => Stage::Sniffing,
                None => Stage::ProxyHeader,
            },
            transport: None,
            tls: None,
            input: Leftover::default(),
            output: OutputQueue::default(),
            clock: Clock {
                accepted_at: now,
                last_activity: now,
                output_since: now,
            },
            ending: None,
            closed: None,
            read_closed: false,
            write_shut: false,
            wants_drained: false,
            input_waiting: false,
            waiting_for_peer: false,
            read_paused: false,
            client_counted: client_at_accept.is_some() && edge.limits.tracks_clients(),
            edge: edge.read_rate.map(|rate| {
                Box::new(EdgeState {
                    proxy: None,
                    read_rate: Some(ReadBucket::new(rate, now)),
                })
            }),
        };
        // On a plaintext-only listener there is nothing to sniff, unless a
        // PROXY header is expected, or must be refused from an untrusted peer.
        if cx.listeners[listener].tls.is_none() && !edge.proxy_enabled() {
            conn.open_plaintext(cx);
        }
        conn
    }

    /// What [`Env::admit`](crate::engine::Env::admit) and the PROXY stage
    /// counted for this connection, for [`Env::release`](crate::engine::Env::release).
    pub fn admitted(&self) -> Admitted {
        Admitted {
            listener: usize::from(self.listener),
            client: self.client_counted.then(|| self.client_ip()),
        }
    }

    /// The real client: the PROXY header's source when a trusted proxy
    /// sent one, otherwise the TCP peer.
    pub fn client(&self) -> SocketAddr {
        self.proxy().and_then(|h| h.source).unwrap_or(self.peer)
    }

    /// The PROXY header a trusted proxy sent, if any.
    pub fn proxy(&self) -> Option<&Arc<crate::proxy::Header>> {
        self.edge.as_ref().and_then(|e| e.proxy.as_ref())
    }

    fn read_rate(&self) -> Option<&ReadBucket> {
        self.edge.as_ref().and_then(|e| e.read_rate.as_ref())
    }

    fn read_rate_mut(&mut self) -> Option<&mut ReadBucket> {
        self.edge.as_mut().and_then(|e| e.read_rate.as_mut())
    }

    /// The client address as limits count it (IPv4-mapped as IPv4).
    pub fn client_ip(&self) -> IpAddr {
        crate::engine::edge::access::canonical(self.client().ip())
    }

    /// With `read_rate_limit`, the most a read may take now; `None`: no
    /// limit (read a whole buffer). A driver that ignores it still gets
    /// the rate on average: a larger read only pauses reading for longer.
    pub fn read_allowance(&self) -> Option<usize> {
        self.read_rate().map(|bucket| bucket.allowance())
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The index of the listener that accepted it.
    pub fn listener(&self) -> usize {
        usize::from(self.listener)
    }

    /// Where its bytes and its ending are counted: its transport once
    /// admitted, [`Lane::None`] before.
    #[inline]
    pub fn lane(&self) -> Lane {
        Lane::of(self.transport)
    }

    /// Bytes queued for the socket and not yet written.
    pub fn pending_output(&self) -> usize {
        self.transmit().len()
    }

    /// The bytes to write to the socket now (possibly empty).
    pub fn transmit(&self) -> &[u8] {
        match &self.tls {
            Some(tls) => tls.session.outgoing(),
            None => self.output.as_slice(),
        }
    }

    /// Whether reading should pause because the peer is not draining what we
    /// already owe it.
    fn is_backpressured(&self, limits: &ConnectionLimits) -> bool {
        self.pending_output() >= limits.output_high_water
    }

    /// Whether the driver should read from the socket now.
    pub fn wants_read(&self, limits: &ConnectionLimits) -> bool {
        if self.closed.is_some() || self.read_closed {
            return false;
        }
        if self.write_shut {
            return true; // lingering: read and discard until the peer's FIN
        }
        self.ending.is_none()
            && !self.read_paused
            && !self.input_waiting
            && !self.read_rate().is_some_and(|bucket| bucket.paused())
            && !self.is_backpressured(limits)
    }

    /// What the driver must do next; see [`Next`].
    pub fn next(&self, limits: &ConnectionLimits) -> Next {
        if let Some(reason) = self.closed {
            return Next::Close(reason);
        }
        let pending = self.pending_output() > 0;
        if self.write_shut {
            return match self.read_closed {
                true => Next::Close(self.closing_reason()),
                false => Next::Wait(Interest::READABLE),
            };
        }
        if let Some(reason) = self.ending {
            return match (pending, self.read_closed) {
                (true, _) => Next::Wait(Interest::WRITABLE),
                (false, true) => Next::Close(reason),
                (false, false) => Next::ShutdownWrite,
            };
        }
        let read = self.wants_read(limits);
        match Interest::from_flags(read, pending) {
            Some(interest) => Next::Wait(interest),
            // Nothing to read (the peer finished or reading is held off) and
            // nothing to write. A connection held off by a full output would
            // have output, so this is a peer that finished: all answered.
            None if self.read_closed => Next::Close(CloseReason::PeerClosed),
            None => Next::Parked,
        }
    }

    /// The reason to report when a graceful close completes.
    pub fn closing_reason(&self) -> CloseReason {
        self.ending.unwrap_or(CloseReason::PeerClosed)
    }

    /// When the driver must next call [`handle_timeout`](Self::handle_timeout),
    /// if ever.
    pub fn deadline(&self, cx: &Context<'_>) -> Option<Instant> {
        deadlines::next(self, cx).map(|(at, _)| at)
    }

    /// The clock reached `cx.now`: apply whichever deadline rule is due.
    pub fn handle_timeout(&mut self, cx: &mut Context<'_>) {
        let Some((at, expiry)) = deadlines::next(self, cx) else {
            return;
        };
        if cx.now < at {
            return; // the deadline moved since the timer was set
        }
        match expiry {
            Expiry::AdmitAsPlaintext => self.open_plaintext(cx),
            Expiry::Drained => {
                log::debug!("closing {}: the shutdown grace period is over", self.peer);
                self.close_after_output(CloseReason::Shutdown);
            }
            Expiry::ResumeReading => {
                if let Some(bucket) = self.read_rate_mut() {
                    bucket.wake(cx.now);
                }
            }
            other => {
                log::debug!("closing {}: {}", self.peer, other.reason().label());
                self.close_now(other.reason());
            }
        }
    }

    /// `n` bytes of [`transmit`](Self::transmit) were written.
    pub fn handle_sent(&mut self, n: usize, cx: &mut Context<'_>) {
        if n == 0 {
            return;
        }
        match &mut self.tls {
            Some(tls) => tls.session.consume_outgoing(n),
            None => self.output.consume(n, &mut cx.work.pool),
        }
        self.clock.last_activity = cx.now;
        self.clock.output_since = cx.now;
        if self.closed.is_some() || self.ending.is_some() || self.stage != Stage::Open {
            return;
        }
        if self.pending_output() == 0 && self.wants_drained {
            self.wants_drained = false;
            self.run_service(cx, |service, session| service.on_drained(session));
        }
        if self.input_waiting && !self.is_backpressured(cx.limits) {
            self.input_waiting = false;
            self.deliver(&[], cx);
        }
    }

    /// Our FIN is sent (after [`Next::ShutdownWrite`]): linger, reading and
    /// discarding until the peer's FIN or the linger timeout.
    pub fn handle_write_shut(&mut self, now: Instant) {
        self.write_shut = true;
        self.clock.output_since = now;
    }

    /// A socket call failed. Nothing more can be sent, so the output is
    /// dropped; the connection closes with `reason`.
    pub fn handle_socket_error(&mut self, reason: CloseReason, cx: &mut Context<'_>) {
        if self.closed.is_none() {
            self.closed = Some(reason);
        }
        self.output.discard(&mut cx.work.pool);
        self.tls = None;
    }

    /// Whether a reset now would be the ordinary end of a complete exchange:
    /// nothing queued for the peer and nothing it sent left unanswered.
    pub fn exchange_complete(&self) -> bool {
        self.pending_output() == 0 && self.input.is_empty() && !self.waiting_for_peer
    }

    /// The driver holds reading off (`true`) or lets it resume (`false`).
    pub fn set_read_paused(&mut self, paused: bool) {
        self.read_paused = paused;
    }

    pub fn read_paused(&self) -> bool {
        self.read_paused
    }

    /// Queues a broadcast for this session. A session that has fallen too
    /// far behind is dropped rather than allowed to stall the others or to
    /// grow the server's memory without bound.
    pub fn handle_broadcast(&mut self, message: &[u8], cx: &mut Context<'_>) {
        if self.stage != Stage::Open || self.closed.is_some() || self.ending.is_some() {
            return;
        }
        if self.pending_output() + message.len() > cx.limits.output_hard_limit {
            log::info!(
                "dropping {}: slow consumer ({} bytes queued)",
                self.peer,
                self.pending_output()
            );
            self.close_now(CloseReason::SlowConsumer);
            return;
        }
        let was_idle = self.pending_output() == 0;
        match &mut self.tls {
            Some(tls) => {
                if let Err(err) = tls.session.send(message) {
                    log::debug!("broadcast to {} failed: {err}", self.peer);
                    self.close_now(CloseReason::TlsError);
                    return;
                }
            }
            None => self.output.extend(message, &mut cx.work.pool),
        }
        if was_idle {
            self.clock.output_since = cx.now;
        }
    }

    /// The server is stopping (the drain): one not yet admitted closes at
    /// once; an admitted session hears `on_shutdown` (where a service that
    /// has nothing to finish closes, and HTTP/2 says GOAWAY) and is otherwise
    /// served on until it ends by itself or the shutdown grace period
    /// (`cx.shutdown_by`) does. Then it is closed politely: TLS says
    /// `close_notify`, and the close lingers at most `linger_timeout` (see
    /// `deadlines.rs`).
    pub fn begin_shutdown(&mut self, cx: &mut Context<'_>) {
        if self.closed.is_some() {
            return;
        }
        if self.stage != Stage::Open {
            self.close_now(CloseReason::Shutdown);
            return;
        }
        if self.ending.is_none() {
            self.run_service(cx, |service, session| service.on_shutdown(session));
            // A close the service asked for now is the shutdown's.
            if self.ending == Some(CloseReason::ServiceClosed) {
                self.ending = Some(CloseReason::Shutdown);
            }
        }
    }

    /// The connection is gone (the driver closed the socket): count why,
    /// log it, and tell the service if it had been admitted.
    pub fn finish(self, reason: CloseReason, cx: &mut Context<'_>) {
        cx.stats.count_closed(reason);
        cx.counters.count_closed(
            cx.listeners[usize::from(self.listener)].counters,
            self.lane(),
            reason,
        );
        // Refusals were logged where they were decided (once per burst).
        if reason.is_routine() || reason.is_refusal() {
            log::debug!("closed {}: {}", self.peer, reason.label());
        } else {
            log::info!("closed {}: {}", self.peer, reason.label());
        }
        if self.stage == Stage::Open {
            let info = self.facts(cx);
            cx.service.on_close(self.id, &info);
        }
    }

    /// Closes at once (the driver gives pending bytes one try).
    fn close_now(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason);
        }
    }

    /// Closes once everything queued is written. TLS sessions queue
    /// close_notify first.
    fn close_after_output(&mut self, reason: CloseReason) {
        if self.ending.is_some() {
            return;
        }
        self.ending = Some(reason);
        self.input_waiting = false;
        if let Some(tls) = &mut self.tls {
            tls.session.close();
        }
    }
}
