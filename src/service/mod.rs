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
}

/// The handle a callback gets for the session it is about.
pub struct Session<'a> {
    id: SessionId,
    info: &'a ConnectionInfo,
    output: &'a mut Vec<u8>,
    queued_elsewhere: usize,
    requests: &'a mut Requests,
}

impl<'a> Session<'a> {
    /// Used by the engine (and by service unit tests).
    pub fn new(
        id: SessionId,
        info: &'a ConnectionInfo,
        output: &'a mut Vec<u8>,
        queued_elsewhere: usize,
        requests: &'a mut Requests,
    ) -> Session<'a> {
        Session {
            id,
            info,
            output,
            queued_elsewhere,
            requests,
        }
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
}

pub mod chat;
pub mod echo;
pub mod http;
pub mod multicast;
