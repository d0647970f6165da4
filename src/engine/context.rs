//! What a driver lends a connection for the length of one call.
//!
//! A [`Connection`](super::Connection) owns only its own state. Everything
//! else it needs to make progress belongs to the worker and is shared by
//! all of its connections: the clock reading, the limits, what each listener
//! admits, the service instance, scratch buffers, the counters. The driver
//! gathers borrows of them into a [`Context`] and passes it to each call.
//! The one idea: **time is an argument** (`now`), never read inside the
//! core, so a test chooses every instant and a deadline can be tested
//! without waiting for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::buffers::Workspace;
use super::counters::WorkerCounters;
use super::edge::EdgePolicy;
use super::limits::ConnectionLimits;
use super::stats::Stats;
use crate::service::Service;
use crate::tls::TlsGate;

/// What one listening socket admits, as its connections see it.
#[derive(Clone, Debug)]
pub struct ListenerPolicy {
    /// The listener's own address (reported to services as `local`).
    pub local: SocketAddr,
    /// Whether connections whose first bytes are not TLS are served.
    pub allow_plaintext: bool,
    /// The TLS gate; `None` serves plaintext only, with no sniffing.
    pub tls: Option<Arc<TlsGate>>,
    /// Access rules, limits and the PROXY protocol (shared by every
    /// worker's socket for this listener).
    pub edge: Arc<EdgePolicy>,
    /// Which of the worker's counter blocks (`engine::counters`) its
    /// connections count in: the listener's start-up index, which stays the
    /// same across reloads, while the policy's own number does not.
    pub counters: usize,
}

/// The worker's share of a connection call. See the module documentation.
pub struct Context<'a> {
    /// The time the driver read just before this call.
    pub now: Instant,
    pub limits: &'a ConnectionLimits,
    /// Indexed by a connection's listener policy number: the policy it was
    /// admitted under, kept across reloads (see `engine::policies`).
    pub listeners: &'a [ListenerPolicy],
    pub service: &'a mut dyn Service,
    pub work: &'a mut Workspace,
    pub stats: &'a Stats,
    /// This worker's own counters (see `counters`).
    pub counters: &'a WorkerCounters,
    /// The reactor backend's name, reported to services.
    pub backend: &'static str,
    /// Set once the server is shutting down: every connection must be gone
    /// by then.
    pub shutdown_by: Option<Instant>,
}
