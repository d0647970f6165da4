//! What every worker has, whichever driver runs it: a service instance, the
//! limits, what each listener admits, scratch buffers, counters shared with
//! the other workers, and the rule for admitting a new connection.
//!
//! A worker is one thread with its own event loop; workers share nothing
//! but [`Shared`]. The driver (readiness today, completions next) owns the
//! sockets and the clock; this module owns everything else, so that a new
//! driver is only the I/O. The one idea: **the driver is the only part that
//! changes with the I/O model** — connections, services, limits and
//! admission are the same objects under every driver.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::buffers::Workspace;
use super::context::{Context, ListenerPolicy};
use super::control::Controls;
use super::counters::WorkerCounters;
use super::edge::{EdgePolicy, ListenerLimits};
use super::hub::Hub;
use super::limits::ConnectionLimits;
use super::policies::PolicyTable;
use super::stats::{CloseReason, Stats};
use crate::net::accept::AcceptedSocketOptions;
use crate::service::{Service, SessionId};
use crate::tls::TlsGate;

/// State shared by all workers of a server.
pub struct Shared {
    pub stop: AtomicBool,
    pub open_connections: AtomicUsize,
    /// The global connection limit; the admin API may change it while
    /// running (connections already open are never dropped by a lower one).
    pub max_connections: AtomicUsize,
    pub stats: Stats,
    /// Set once every worker's waker is known (only with several workers).
    pub hub: OnceLock<Hub>,
    /// Each listener's shared counts and limits, in listener order (its
    /// `max_connections` is an atomic, to be changed while running).
    pub listeners: Vec<Arc<ListenerLimits>>,
    /// The workers' mailboxes for reconfiguration (see `engine::control`);
    /// set by the server once every waker is known.
    pub control: OnceLock<Controls>,
}

impl Shared {
    pub fn new(max_connections: usize) -> Shared {
        Shared::with_listeners(max_connections, Vec::new())
    }

    pub fn with_listeners(max_connections: usize, listeners: Vec<Arc<ListenerLimits>>) -> Shared {
        Shared {
            stop: AtomicBool::new(false),
            open_connections: AtomicUsize::new(0),
            max_connections: AtomicUsize::new(max_connections),
            stats: Stats::default(),
            hub: OnceLock::new(),
            listeners,
            control: OnceLock::new(),
        }
    }

    /// Connections open at once across all workers, at most.
    pub fn max_connections(&self) -> usize {
        self.max_connections.load(Ordering::Relaxed)
    }

    /// Changes the limit for connections admitted from now on; connections
    /// already open stay open even when the new limit is lower.
    pub fn set_max_connections(&self, max: usize) {
        self.max_connections.store(max.max(1), Ordering::Relaxed);
    }
}

/// One listening socket and what it admits.
pub struct ListenerSetup {
    pub listener: TcpListener,
    /// Whether connections whose first bytes are not TLS are served.
    pub allow_plaintext: bool,
    /// The TLS gate; `None` serves plaintext only (no sniffing).
    pub tls: Option<Arc<TlsGate>>,
    /// The listener's edge policy, shared by every worker.
    pub edge: Arc<EdgePolicy>,
}

/// What [`Env::admit`] counted for a connection, to be given back to
/// [`Env::release`] when it closes: its listener and, when the per-client
/// table counted it, the client. A connection reports its own with
/// [`Connection::admitted`](super::Connection::admitted), which also covers
/// a client counted later, after its PROXY header.
#[must_use = "an admitted connection must be released"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    pub listener: usize,
    pub client: Option<IpAddr>,
}

/// Everything a worker needs besides its I/O mechanism.
pub struct WorkerSetup {
    pub id: usize,
    pub listeners: Vec<ListenerSetup>,
    pub service: Box<dyn Service>,
    pub limits: ConnectionLimits,
    pub socket_options: AcceptedSocketOptions,
    /// How long shutdown waits for queued output to drain.
    pub shutdown_grace: Duration,
    pub shared: Arc<Shared>,
    /// UDP sockets and their service, if this worker serves any.
    pub datagrams: Option<crate::udp::DatagramSetup>,
    /// This worker's counters, one block per listener (read by the admin
    /// thread).
    pub counters: Arc<WorkerCounters>,
}

/// A worker's state apart from its sockets. Drivers keep one and lend it to
/// connections with [`Env::context`].
pub struct Env {
    pub id: usize,
    pub limits: ConnectionLimits,
    /// Indexed by a connection's policy number (see `engine::policies`).
    pub policies: PolicyTable,
    pub service: Box<dyn Service>,
    pub work: Workspace,
    pub shared: Arc<Shared>,
    pub counters: Arc<WorkerCounters>,
    pub socket_options: AcceptedSocketOptions,
    pub shutdown_grace: Duration,
    pub backend: &'static str,
    /// When every connection must be gone; set by the shutdown.
    pub shutdown_by: Option<Instant>,
    next_session: u64,
    /// Connections this worker admitted, for its exit line.
    served: u64,
}

impl Env {
    /// The environment for `setup`'s worker; `policies` describe its
    /// listeners, in order.
    pub fn new(setup: WorkerSetup, policies: Vec<ListenerPolicy>, backend: &'static str) -> Env {
        Env {
            id: setup.id,
            limits: setup.limits,
            policies: PolicyTable::new(policies),
            service: setup.service,
            work: Workspace::default(),
            shared: setup.shared,
            counters: setup.counters,
            socket_options: setup.socket_options,
            shutdown_grace: setup.shutdown_grace,
            backend,
            shutdown_by: None,
            next_session: 0,
            served: 0,
        }
    }

    /// Borrows what a connection call needs, at time `now`.
    pub fn context(&mut self, now: Instant) -> Context<'_> {
        Context {
            now,
            limits: &self.limits,
            listeners: self.policies.as_slice(),
            service: self.service.as_mut(),
            work: &mut self.work,
            stats: &self.shared.stats,
            counters: &self.counters,
            backend: self.backend,
            shutdown_by: self.shutdown_by,
        }
    }

    /// A session id never used before in this process: the worker number in
    /// the top 16 bits, a counter below.
    pub fn next_session_id(&mut self) -> SessionId {
        let id = SessionId(((self.id as u64) << 48) | self.next_session);
        self.next_session += 1;
        id
    }

    /// Whether a connection from `peer` on `listener` may be served, decided
    /// at accept before any byte is read: the server is not shutting down,
    /// the access rules allow the peer, and the global, listener and
    /// per-client limits have room (in that order). When the listener
    /// expects a PROXY header from this peer, the rules and per-client
    /// limits wait for the real client (the core applies them after the
    /// header). On `Ok` the connection is counted as open; give the
    /// [`Admitted`] back to [`release`](Self::release) when it closes.
    pub fn admit(
        &mut self,
        listener: usize,
        peer: SocketAddr,
        now: Instant,
    ) -> Result<Admitted, CloseReason> {
        let edge = self.policies[listener].edge.clone();
        let client = edge.client_at_accept(peer);
        if let Some(ip) = client {
            if !edge.access.allows(ip) {
                edge.limits.refused(CloseReason::AccessDenied, ip, now);
                return Err(CloseReason::AccessDenied);
            }
        }
        let shared = &self.shared;
        let previous = shared.open_connections.fetch_add(1, Ordering::AcqRel);
        let max_connections = shared.max_connections.load(Ordering::Relaxed);
        if previous >= max_connections || self.shutdown_by.is_some() {
            shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            log::debug!("refused {peer}: connection limit {max_connections} reached");
            return Err(CloseReason::MaxConnections);
        }
        if !edge.limits.try_open() {
            shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            edge.limits
                .refused(CloseReason::ListenerMaxConnections, peer.ip(), now);
            return Err(CloseReason::ListenerMaxConnections);
        }
        let mut counted = None;
        if let Some(ip) = client {
            match edge.limits.admit_client(ip, now) {
                Ok(()) => counted = edge.limits.tracks_clients().then_some(ip),
                Err(reason) => {
                    edge.limits.close();
                    shared.open_connections.fetch_sub(1, Ordering::AcqRel);
                    edge.limits.refused(reason, ip, now);
                    return Err(reason);
                }
            }
        }
        self.served += 1;
        Ok(Admitted {
            listener,
            client: counted,
        })
    }

    /// The worker is done: one line saying how much it served, so that an
    /// operator (and a test) can see the kernel spread connections.
    pub fn log_exit(&self) {
        log::info!("worker {}: served {} connections", self.id, self.served);
    }

    /// Connections this worker admitted so far.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// A connection counted by [`admit`](Self::admit) has closed (or was
    /// never served): give back what was counted for it.
    pub fn release(&self, admitted: Admitted, now: Instant) {
        self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
        let edge = &self.policies[admitted.listener].edge;
        edge.limits.close();
        if let Some(ip) = admitted.client {
            edge.release_client(ip, now);
        }
    }

    pub fn stop_requested(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    pub fn hub(&self) -> Option<&Hub> {
        self.shared.hub.get()
    }
}
