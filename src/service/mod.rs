//! The service interface: what a protocol implements to run on Portcullis.
//!
//! The engine owns sockets, TLS and buffers; a service sees only *sessions*
//! and *plaintext bytes*, in the shape of CppServer's sessions: a session
//! connects, receives data, and disconnects, and while handling any of these
//! the service can send to it, close it, or broadcast to every session of the
//! server. The one idea: **a service never touches a socket**, so the same
//! echo, chat or HTTP code runs unchanged over plaintext, TLS and mTLS, and on
//! every reactor backend.
//!
//! Each worker thread builds its own service instance from a
//! [`ServiceFactory`], so a service needs no locks: per-session state can
//! live in a plain map keyed by [`SessionId`].

use std::sync::Arc;
use std::time::Instant;

use crate::connection_info::ConnectionInfo;

/// Identifies a session within one worker. Ids are never reused while the
/// process runs, so a stale id held by a service cannot reach a new session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// A protocol. Callbacks run on the worker's thread and must not block.
pub trait Service {
    /// A session was admitted (after the TLS handshake, for TLS). A service
    /// that speaks first, such as chat's greeting, sends here.
    fn on_connect(&mut self, session: &mut Session<'_>) {
        let _ = session;
    }

    /// Plaintext arrived. `data` holds every byte not yet consumed: what a
    /// previous call left unconsumed, followed by the new bytes. Return how
    /// many bytes were consumed; the rest is offered again, with more, on the
    /// next call. A service that consumes nothing while `data` keeps growing
    /// is cut off at the engine's input limit (the connection is closed).
    ///
    /// Back-pressure: when [`Session::output_full`] says so, a service
    /// should stop producing and return what it consumed so far. The engine
    /// stops reading, and offers the unconsumed bytes again (with no new
    /// ones) once the peer has drained the output below the high-water mark.
    fn on_data(&mut self, session: &mut Session<'_>, data: &[u8]) -> usize;

    /// Everything queued for this session has been written to the socket.
    /// A streaming service (multicast) refills here; others ignore it.
    fn on_drained(&mut self, session: &mut Session<'_>) {
        let _ = session;
    }

    /// Whether this service wants `on_drained` calls. Off by default: each
    /// one costs a trip through the reactor.
    fn wants_drained(&self) -> bool {
        false
    }

    /// The server is shutting down: say goodbye (an HTTP/2 GOAWAY, say),
    /// and [`Session::close`] if there is nothing to finish. Otherwise the
    /// engine serves the session on until it ends or the shutdown grace
    /// period does, and then closes it politely (TLS `close_notify`).
    fn on_shutdown(&mut self, session: &mut Session<'_>) {
        let _ = session;
    }

    /// The session ended, for whatever reason. Its id is never used again.
    fn on_close(&mut self, id: SessionId, info: &ConnectionInfo) {
        let _ = (id, info);
    }
}

/// Builds one service instance per worker thread.
pub type ServiceFactory = Arc<dyn Fn() -> Box<dyn Service> + Send + Sync>;

/// Requests a callback makes beyond sending to its own session. The engine
/// carries them out when the callback returns.
#[derive(Debug, Default)]
pub struct Requests {
    pub close: bool,
    pub broadcasts: Vec<Arc<[u8]>>,
    /// `Some(true)`: the service holds output back until the peer acts (an
    /// HTTP/2 flow-control window at zero); `Some(false)`: it no longer
    /// does. See [`Session::set_waiting_for_peer`].
    pub waiting_for_peer: Option<bool>,
}

/// The handle a callback gets for the session it is about.
pub struct Session<'a> {
    id: SessionId,
    info: &'a ConnectionInfo,
    output: &'a mut Vec<u8>,
    requests: &'a mut Requests,
    now: Instant,
    queued_elsewhere: usize,
    high_water: usize,
}

impl<'a> Session<'a> {
    /// A session handle whose sends land in `output` and whose other
    /// requests land in `requests`. Used by the engine, and by service unit
    /// tests, which get the current time and no output limit; the engine
    /// adds both with [`with_clock`](Self::with_clock) and
    /// [`with_queue`](Self::with_queue).
    pub fn new(
        id: SessionId,
        info: &'a ConnectionInfo,
        output: &'a mut Vec<u8>,
        requests: &'a mut Requests,
    ) -> Session<'a> {
        Session {
            id,
            info,
            output,
            requests,
            now: Instant::now(),
            queued_elsewhere: 0,
            high_water: usize::MAX,
        }
    }

    /// The time the engine is working at (services keep no clock of their
    /// own, so tests can choose it).
    pub fn with_clock(mut self, now: Instant) -> Session<'a> {
        self.now = now;
        self
    }

    /// How much is already queued for this session outside `output`, and
    /// the high-water mark past which the service should stop producing.
    pub fn with_queue(mut self, queued_elsewhere: usize, high_water: usize) -> Session<'a> {
        self.queued_elsewhere = queued_elsewhere;
        self.high_water = high_water;
        self
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    /// How this session was admitted, and for which domain.
    pub fn info(&self) -> &ConnectionInfo {
        self.info
    }

    /// Queues plaintext for this session. Never blocks; the engine applies
    /// back-pressure by not reading from a session whose output is not
    /// draining.
    pub fn send(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    /// Closes the session once what is queued has been written.
    pub fn close(&mut self) {
        self.requests.close = true;
    }

    /// Sends `bytes` to every session of the server, this one included.
    pub fn broadcast(&mut self, bytes: &[u8]) {
        self.requests.broadcasts.push(Arc::from(bytes));
    }

    /// Bytes queued for this session and not yet written to the socket.
    pub fn queued(&self) -> usize {
        self.output.len() + self.queued_elsewhere
    }

    /// Whether the queue has reached the high-water mark: a service that
    /// answers requests in a loop (pipelined HTTP) should stop here and
    /// leave the rest of its input unconsumed; it is offered again once the
    /// peer has read enough.
    pub fn output_full(&self) -> bool {
        self.queued() >= self.high_water
    }

    /// Says that the service holds output back until the peer acts (`true`)
    /// or no longer does (`false`). While it does, the engine's write-stall
    /// deadline runs as if that output were queued, so a peer that never
    /// opens its window is closed with `write_timeout` instead of holding
    /// the connection forever.
    pub fn set_waiting_for_peer(&mut self, waiting: bool) {
        self.requests.waiting_for_peer = Some(waiting);
    }

    /// The engine's current time: for rates and intervals a service keeps.
    pub fn now(&self) -> Instant {
        self.now
    }
}

pub mod chat;
pub mod echo;
pub mod http;
pub mod http2;
pub mod multicast;
