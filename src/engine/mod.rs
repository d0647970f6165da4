//! The engine: one worker thread's event loop, from readiness to service.
//!
//! A worker owns a reactor (a [`backends::Selector`] plus [`Timers`]), its
//! listening sockets and its connections, and shares nothing else with other
//! workers but counters and the broadcast [`hub::Hub`]. Its loop is:
//!
//! ```text
//!   wait for readiness (until the earliest deadline)
//!   for each event:  listener → accept until EAGAIN
//!                    connection → write what is queued, read until EAGAIN,
//!                                 run the bytes through the TLS gate and the
//!                                 service, re-arm with the interest it wants
//!   deliver broadcasts posted by other workers
//!   close connections whose deadline passed
//! ```
//!
//! The one idea: **every path ends in exactly one of two places** — the
//! connection is re-armed with [`Connection::interest`], or it is closed
//! through [`Worker::close`] with a [`CloseReason`]. One-shot registrations
//! make this strict: a connection that is neither re-armed nor closed would
//! never hear from the reactor again.

pub mod connection;
pub mod hub;
pub mod output;
pub mod stats;

use std::borrow::Cow;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::{Event, Events, Interest, Selector, Token};
use slab::Slab;

use crate::connection_info::{ConnectionInfo, Transport};
use crate::net::accept::{self, AcceptedSocketOptions, ReserveFd};
use crate::service::{Requests, Service, Session, SessionId};
use crate::timers::Timers;
use crate::tls::{self, FirstBytes, TlsGate};

pub use connection::{Connection, ConnectionLimits, Stage};
pub use stats::{CloseReason, Stats};

#[cfg(not(target_pointer_width = "64"))]
compile_error!("tokens pack a slab key and a generation into 64 bits");

/// Tokens at or above this value name listeners; below it, connections.
const LISTENER_TOKEN_BASE: usize = 1 << 62;
/// Connection tokens carry the slab key in the low 32 bits and the slot's
/// generation in the next 29, so a stale event cannot reach a reused slot.
const GENERATION_MASK: u32 = (1 << 29) - 1;
/// Reads per readable event before yielding to other connections; the
/// one-shot re-arm reports the connection again at once if data remains.
const READS_PER_EVENT: usize = 16;
/// How long to stop accepting when out of descriptors with no spare to shed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
const READ_BUFFER_SIZE: usize = 64 * 1024;

/// What one listening socket admits.
pub struct ListenerSetup {
    pub listener: TcpListener,
    /// Whether connections whose first bytes are not TLS are served.
    pub allow_plaintext: bool,
    /// The TLS gate; `None` serves plaintext only (no sniffing).
    pub tls: Option<Arc<TlsGate>>,
}

/// State shared by all workers of a server.
pub struct Shared {
    pub stop: AtomicBool,
    pub open_connections: AtomicUsize,
    pub max_connections: usize,
    pub stats: Stats,
    /// Set once every worker's waker is known.
    pub hub: std::sync::OnceLock<hub::Hub>,
}

impl Shared {
    pub fn new(max_connections: usize) -> Shared {
        Shared {
            stop: AtomicBool::new(false),
            open_connections: AtomicUsize::new(0),
            max_connections,
            stats: Stats::default(),
            hub: std::sync::OnceLock::new(),
        }
    }
}

/// Everything a worker needs besides its selector.
pub struct WorkerSetup {
    pub id: usize,
    pub listeners: Vec<ListenerSetup>,
    pub service: Box<dyn Service>,
    pub limits: ConnectionLimits,
    pub socket_options: AcceptedSocketOptions,
    /// How long shutdown waits for queued output to drain.
    pub shutdown_grace: Duration,
    pub shared: Arc<Shared>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Connection { key: usize, generation: u32 },
    ResumeAccepting { listener: usize },
}

struct WorkerListener {
    listener: Option<TcpListener>,
    local: SocketAddr,
    allow_plaintext: bool,
    tls: Option<Arc<TlsGate>>,
}

/// One thread's event loop.
pub struct Worker {
    id: usize,
    selector: Box<dyn Selector>,
    backend: &'static str,
    events: Events,
    listeners: Vec<WorkerListener>,
    connections: Slab<Connection>,
    next_generation: u32,
    next_session: u64,
    timers: Timers<TimerKey>,
    service: Box<dyn Service>,
    limits: ConnectionLimits,
    socket_options: AcceptedSocketOptions,
    shutdown_grace: Duration,
    shared: Arc<Shared>,
    reserve: ReserveFd,
    /// Scratch buffers reused for every connection, so an idle connection
    /// owns no buffer at all.
    read_buf: Vec<u8>,
    plaintext_buf: Vec<u8>,
    service_output: Vec<u8>,
    requests: Requests,
    now: Instant,
    last_exhaustion_log: Option<Instant>,
    shutdown_deadline: Option<Instant>,
}

impl Worker {
    pub fn new(selector: Box<dyn Selector>, setup: WorkerSetup) -> io::Result<Worker> {
        let backend = selector.kind().name();
        let mut worker = Worker {
            id: setup.id,
            selector,
            backend,
            events: Events::with_capacity(1024),
            listeners: Vec::new(),
            connections: Slab::new(),
            next_generation: 0,
            next_session: 0,
            timers: Timers::new(),
            service: setup.service,
            limits: setup.limits,
            socket_options: setup.socket_options,
            shutdown_grace: setup.shutdown_grace,
            shared: setup.shared,
            reserve: ReserveFd::new(),
            read_buf: vec![0; READ_BUFFER_SIZE],
            plaintext_buf: Vec::new(),
            service_output: Vec::new(),
            requests: Requests::default(),
            now: Instant::now(),
            last_exhaustion_log: None,
            shutdown_deadline: None,
        };
        for (index, setup) in setup.listeners.into_iter().enumerate() {
            setup.listener.set_nonblocking(true)?;
            let local = setup.listener.local_addr()?;
            worker.selector.register(
                setup.listener.as_raw_fd(),
                Token(LISTENER_TOKEN_BASE + index),
                Interest::READABLE,
            )?;
            worker.listeners.push(WorkerListener {
                listener: Some(setup.listener),
                local,
                allow_plaintext: setup.allow_plaintext,
                tls: setup.tls,
            });
        }
        Ok(worker)
    }

    /// Runs until the shared stop flag is set and queued output has drained
    /// (or the shutdown grace period ends).
    pub fn run(mut self) -> io::Result<()> {
        loop {
            if self.shared.stop.load(Ordering::Acquire) && self.shutdown_deadline.is_none() {
                self.begin_shutdown();
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.connections.is_empty() || self.now >= deadline {
                    break;
                }
            }
            let timeout = self.wait_timeout();
            self.selector.wait(&mut self.events, timeout)?;
            self.now = Instant::now();
            // Index rather than iterate: handling an event needs `self`.
            let mut i = 0;
            while let Some(event) = self.events.get(i) {
                self.dispatch(event);
                i += 1;
            }
            self.deliver_posted_broadcasts();
            self.expire_timers();
        }
        let remaining: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in remaining {
            self.close(key, CloseReason::Shutdown);
        }
        Ok(())
    }

    fn wait_timeout(&self) -> Option<Duration> {
        let next = match (self.timers.next_deadline(), self.shutdown_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        next.map(|at| at.saturating_duration_since(Instant::now()))
    }

    fn dispatch(&mut self, event: Event) {
        let Token(token) = event.token;
        if token >= LISTENER_TOKEN_BASE {
            self.accept_all(token - LISTENER_TOKEN_BASE);
            return;
        }
        let key = token & 0xffff_ffff;
        let generation = (token >> 32) as u32;
        match self.connections.get(key) {
            Some(conn) if conn.generation == generation => self.handle_connection(key, event),
            _ => {} // a stale event for a slot that was closed and reused
        }
    }

    // ----- accepting -----------------------------------------------------

    fn accept_all(&mut self, index: usize) {
        loop {
            let Some(listener) = self.listeners.get(index).and_then(|l| l.listener.as_ref()) else {
                return; // closed for shutdown
            };
            match accept::accept(listener) {
                Ok((stream, peer)) => {
                    self.shared.stats.count_accepted();
                    self.admit(index, stream, peer);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if accept::is_per_connection_error(&err) => continue,
                Err(err) if accept::is_descriptor_exhaustion(&err) => {
                    if self.reserve.shed_one(listener) {
                        self.log_exhaustion(&err);
                        self.shared
                            .stats
                            .count_closed(CloseReason::OutOfDescriptors);
                        continue;
                    }
                    // No spare to shed with: stop accepting for a moment
                    // instead of spinning on a readable listener.
                    self.log_exhaustion(&err);
                    self.pause_accepting(index);
                    return;
                }
                Err(err) => {
                    log::warn!("worker {}: accept failed: {err}; retrying shortly", self.id);
                    self.pause_accepting(index);
                    return;
                }
            }
        }
        self.rearm_listener(index);
    }

    fn pause_accepting(&mut self, index: usize) {
        self.timers.schedule(
            self.now + ACCEPT_BACKOFF,
            TimerKey::ResumeAccepting { listener: index },
        );
    }

    fn rearm_listener(&mut self, index: usize) {
        if let Some(listener) = &self.listeners[index].listener {
            let token = Token(LISTENER_TOKEN_BASE + index);
            if let Err(err) =
                self.selector
                    .reregister(listener.as_raw_fd(), token, Interest::READABLE)
            {
                log::error!(
                    "worker {}: cannot re-arm listener {}: {err}",
                    self.id,
                    self.listeners[index].local
                );
            }
        }
    }

    fn log_exhaustion(&mut self, err: &io::Error) {
        // Once per burst: a storm of EMFILE must not become a storm of logs.
        let quiet = self
            .last_exhaustion_log
            .is_some_and(|at| self.now.duration_since(at) < Duration::from_secs(5));
        if !quiet {
            log::warn!(
                "worker {}: out of file descriptors ({err}); shedding new connections until some close",
                self.id
            );
            self.last_exhaustion_log = Some(self.now);
        }
    }

    fn admit(&mut self, listener: usize, stream: std::net::TcpStream, peer: SocketAddr) {
        let previous = self.shared.open_connections.fetch_add(1, Ordering::AcqRel);
        if previous >= self.shared.max_connections || self.shutdown_deadline.is_some() {
            self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            self.shared.stats.count_closed(CloseReason::MaxConnections);
            log::debug!(
                "refused {peer}: connection limit {} reached",
                self.shared.max_connections
            );
            return; // dropping the stream closes it
        }
        if let Err(err) = accept::tune(&stream, &self.socket_options) {
            self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            self.shared.stats.count_closed(CloseReason::SocketError);
            log::debug!("dropped {peer}: cannot set socket options: {err}");
            return;
        }
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & GENERATION_MASK;
        let id = SessionId(((self.id as u64) << 48) | self.next_session);
        self.next_session += 1;
        let sniff = self.listeners[listener].tls.is_some();
        let conn = Connection {
            stream,
            generation,
            id,
            listener,
            peer,
            stage: Stage::Sniffing,
            tls: None,
            info: None,
            input: Vec::new(),
            output: output::OutputQueue::default(),
            read_closed: false,
            closing: false,
            lingering: false,
            wants_drained: false,
            accepted_at: self.now,
            last_activity: self.now,
            scheduled: self.now,
        };
        let entry = self.connections.vacant_entry();
        let key = entry.key();
        let fd = conn.stream.as_raw_fd();
        entry.insert(conn);
        let token = connection_token(key, generation);
        if let Err(err) = self.selector.register(fd, token, Interest::READABLE) {
            log::warn!("cannot register connection from {peer}: {err}");
            self.close_unregistered(key, CloseReason::SocketError);
            return;
        }
        self.schedule_deadline(key, true);
        if !sniff {
            // A plaintext-only listener: no first bytes to wait for. The
            // service may already have queued a greeting, so re-arm with
            // what the connection now wants.
            self.open_plaintext(key);
            self.rearm(key);
        }
    }

    // ----- connection events ---------------------------------------------

    fn handle_connection(&mut self, key: usize, event: Event) {
        if event.writable {
            if let Err(reason) = self.write_ready(key) {
                self.close(key, reason);
                return;
            }
        }
        if event.readable {
            if let Err(reason) = self.read_ready(key) {
                self.close(key, reason);
                return;
            }
        }
        self.rearm(key);
    }

    /// Re-arms the connection with what it wants, or closes it when it wants
    /// nothing more.
    fn rearm(&mut self, key: usize) {
        let Some(conn) = self.connections.get_mut(key) else {
            return;
        };
        if conn.should_linger() && !quiet(&conn.stream) {
            // Our side is done, but bytes are still in flight: send FIN, then
            // wait (briefly) for the peer's, so a reset cannot destroy them.
            if let Err(err) = conn.stream.shutdown(std::net::Shutdown::Write) {
                log::debug!("shutdown towards {} failed: {err}", conn.peer);
                let reason = self.closing_reason();
                self.close(key, reason);
                return;
            }
            conn.lingering = true;
            conn.last_activity = self.now;
        }
        let wanted = if conn.closing && conn.pending_output() == 0 && !conn.lingering {
            None // nothing in flight: an orderly close at once
        } else {
            conn.interest(&self.limits)
        };
        match wanted {
            Some(interest) => {
                let token = connection_token(key, conn.generation);
                if let Err(err) = self
                    .selector
                    .reregister(conn.stream.as_raw_fd(), token, interest)
                {
                    log::warn!("cannot re-arm connection from {}: {err}", conn.peer);
                    self.close(key, CloseReason::SocketError);
                    return;
                }
                self.schedule_deadline(key, false);
            }
            None => {
                let reason = if conn.closing {
                    self.closing_reason()
                } else {
                    CloseReason::PeerClosed
                };
                self.close(key, reason);
            }
        }
    }

    /// Why a connection that we decided to close ends.
    fn closing_reason(&self) -> CloseReason {
        if self.shutdown_deadline.is_some() {
            CloseReason::Shutdown
        } else {
            CloseReason::ServiceClosed
        }
    }

    /// Reads and discards what a peer still sends after we have finished.
    fn discard_until_eof(&mut self, key: usize) -> Result<(), CloseReason> {
        let conn = &mut self.connections[key];
        for _ in 0..READS_PER_EVENT {
            match conn.read_socket(&mut self.read_buf) {
                Ok(0) => {
                    conn.read_closed = true;
                    return Ok(());
                }
                Ok(_) => conn.last_activity = self.now,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(_) => return Err(self.closing_reason()),
            }
        }
        Ok(())
    }

    fn write_ready(&mut self, key: usize) -> Result<(), CloseReason> {
        let conn = &mut self.connections[key];
        match conn.flush() {
            Ok(n) if n > 0 => conn.last_activity = self.now,
            Ok(_) => {}
            Err(err) => {
                log::debug!("write to {} failed: {err}", conn.peer);
                return Err(CloseReason::SocketError);
            }
        }
        if conn.pending_output() == 0
            && conn.wants_drained
            && conn.stage == Stage::Open
            && !conn.closing
        {
            conn.wants_drained = false;
            self.run_service(key, ServiceCall::Drained)?;
        }
        Ok(())
    }

    fn read_ready(&mut self, key: usize) -> Result<(), CloseReason> {
        for _ in 0..READS_PER_EVENT {
            // A service callback (a broadcast to a slow member, say) may have
            // closed this very connection.
            let Some(conn) = self.connections.get_mut(key) else {
                return Ok(());
            };
            if conn.lingering {
                return self.discard_until_eof(key);
            }
            if conn.read_closed || conn.closing || conn.is_backpressured(&self.limits) {
                return Ok(());
            }
            match conn.read_socket(&mut self.read_buf) {
                Ok(0) => {
                    conn.read_closed = true;
                    return self.on_peer_finished(key);
                }
                Ok(n) => {
                    conn.last_activity = self.now;
                    // A read that did not fill the buffer has very likely
                    // drained the socket. Skip the read that would only say
                    // EAGAIN: the one-shot re-arm reports the socket again at
                    // once if more did arrive, so nothing is lost and a round
                    // trip costs one system call less.
                    let drained = n < self.read_buf.len();
                    if let Some(tls) = &mut conn.tls {
                        // One copy into the session; the read buffer is the
                        // worker's, shared by every connection.
                        tls.receive(&self.read_buf[..n]);
                    }
                    self.on_bytes(key, n)?;
                    if drained || !self.connections.contains(key) {
                        return Ok(());
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) => {
                    log::debug!("read from {} failed: {err}", self.connections[key].peer);
                    return Err(CloseReason::SocketError);
                }
            }
        }
        Ok(())
    }

    /// The peer sent FIN. Output still queued will be written, then the
    /// connection closes (the interest becomes empty).
    fn on_peer_finished(&mut self, key: usize) -> Result<(), CloseReason> {
        let conn = &mut self.connections[key];
        match conn.stage {
            Stage::Open => Ok(()),
            // A plaintext client may send a request and half-close before we
            // decided anything: decide on what we have.
            Stage::Sniffing if !conn.input.is_empty() => self.on_bytes(key, 0),
            Stage::Sniffing => Err(CloseReason::PeerClosed),
            Stage::Handshaking => Err(CloseReason::TlsHandshakeFailed),
        }
    }

    /// `n` new bytes arrived: in `read_buf` for plaintext and sniffing, inside
    /// the TLS session for TLS.
    fn on_bytes(&mut self, key: usize, n: usize) -> Result<(), CloseReason> {
        match self.connections[key].stage {
            Stage::Sniffing => self.sniff(key, n),
            Stage::Handshaking | Stage::Open if self.connections[key].tls.is_some() => {
                self.drive_tls(key)
            }
            Stage::Handshaking => Ok(()),
            Stage::Open => self.deliver(key, DataSource::ReadBuffer(n)),
        }
    }

    fn sniff(&mut self, key: usize, n: usize) -> Result<(), CloseReason> {
        let conn = &mut self.connections[key];
        conn.input.extend_from_slice(&self.read_buf[..n]);
        let verdict = match tls::classify(&conn.input) {
            FirstBytes::NeedMore if conn.read_closed => FirstBytes::Plain,
            verdict => verdict,
        };
        match verdict {
            FirstBytes::NeedMore => Ok(()),
            FirstBytes::Plain => {
                if !self.listeners[conn.listener].allow_plaintext {
                    log::info!("refused {}: plaintext on a TLS-only listener", conn.peer);
                    return Err(CloseReason::PlaintextRefused);
                }
                self.open_plaintext(key);
                if !self.connections.contains(key) {
                    return Ok(());
                }
                self.deliver(key, DataSource::Input)
            }
            FirstBytes::Tls => {
                // Hold the first record until it is whole (see
                // `tls::first_record_len`): a stalled half ClientHello then
                // costs its bytes, not an OpenSSL session.
                if tls::first_record_len(&conn.input).is_some_and(|len| conn.input.len() < len) {
                    return Ok(());
                }
                let Some(gate) = self.listeners[conn.listener].tls.clone() else {
                    return Err(CloseReason::PlaintextRefused);
                };
                // The gate reads the ClientHello in the held record, picks
                // the domain and builds the session from its context, or
                // refuses (already counted) with an alert to send.
                let session = match gate.accept(&conn.input) {
                    Ok(session) => session,
                    Err(refusal) => {
                        let err = refusal.error();
                        log::info!("closing {}: TLS {} ({})", conn.peer, err.reason(), err);
                        conn.input = Vec::new();
                        // Best effort: a fresh socket takes 7 bytes.
                        let _ = conn.queue_plaintext(&refusal.alert_record());
                        return Err(CloseReason::TlsHandshakeFailed);
                    }
                };
                conn.input = Vec::new();
                conn.tls = Some(Box::new(session));
                conn.stage = Stage::Handshaking;
                self.drive_tls(key)
            }
        }
    }

    /// Runs the TLS engine over newly received ciphertext: handshake steps,
    /// then decrypted application data to the service.
    fn drive_tls(&mut self, key: usize) -> Result<(), CloseReason> {
        let conn = &mut self.connections[key];
        let Some(tls) = conn.tls.as_mut() else {
            return Ok(()); // only called for TLS connections
        };
        self.plaintext_buf.clear();
        let progress = match tls.process(&mut self.plaintext_buf) {
            Ok(progress) => progress,
            Err(err) => {
                let reason = if conn.stage == Stage::Handshaking {
                    CloseReason::TlsHandshakeFailed
                } else {
                    CloseReason::TlsError
                };
                log::info!("closing {}: TLS {} ({})", conn.peer, err.reason(), err);
                // Send the alert OpenSSL produced, if the socket takes it.
                let _ = conn.flush();
                return Err(reason);
            }
        };
        if tls.wants_write() {
            // What the engine produced by itself (a handshake flight, TLS 1.3
            // session tickets) goes out now: waiting for the writable event
            // costs a reactor round trip behind every other ready
            // connection's handshake.
            if let Err(err) = conn.flush() {
                log::debug!("write to {} failed: {err}", conn.peer);
                return Err(CloseReason::SocketError);
            }
        }
        if progress.just_completed {
            let base =
                ConnectionInfo::plain(conn.peer, self.listeners[conn.listener].local, self.backend);
            let Some(info) = conn.tls.as_ref().map(|tls| tls.info(&base)) else {
                return Ok(());
            };
            log::debug!(
                "admitted {} over {} for {}",
                conn.peer,
                info.transport,
                info.domain.as_deref().unwrap_or("-")
            );
            self.shared.stats.count_admitted(info.transport);
            conn.info = Some(Box::new(info));
            conn.stage = Stage::Open;
            self.schedule_deadline(key, false);
            self.run_service(key, ServiceCall::Connect)?;
        }
        if !self.plaintext_buf.is_empty() && self.connections.contains(key) {
            self.deliver(key, DataSource::Plaintext)?;
        }
        if progress.peer_closed {
            // The peer said close_notify: answer with ours, then close once
            // it is written.
            if let Some(conn) = self.connections.get_mut(key) {
                conn.read_closed = true;
                conn.closing = true;
                if let Some(tls) = &mut conn.tls {
                    tls.close();
                }
            }
        }
        Ok(())
    }

    fn open_plaintext(&mut self, key: usize) {
        let conn = &mut self.connections[key];
        conn.stage = Stage::Open;
        self.shared.stats.count_admitted(Transport::Plain);
        if let Err(reason) = self.run_service(key, ServiceCall::Connect) {
            self.close(key, reason);
        }
    }

    /// Hands plaintext to the service, keeping what it does not consume.
    fn deliver(&mut self, key: usize, source: DataSource) -> Result<(), CloseReason> {
        // Move the bytes out of the worker for the call, so the service can
        // borrow the worker mutably; they go back afterwards. In the common
        // case (nothing left over from before) the service reads the scratch
        // buffer in place and nothing is copied.
        let Some(conn) = self.connections.get_mut(key) else {
            return Ok(());
        };
        let mut input = std::mem::take(&mut conn.input);
        let buffer = match source {
            DataSource::ReadBuffer(_) => std::mem::take(&mut self.read_buf),
            DataSource::Plaintext => std::mem::take(&mut self.plaintext_buf),
            DataSource::Input => Vec::new(),
        };
        let fresh: &[u8] = match source {
            DataSource::ReadBuffer(n) => &buffer[..n],
            _ => &buffer,
        };
        let outcome = if input.is_empty() {
            self.call_on_data(key, fresh).map(|consumed| {
                if consumed < fresh.len() {
                    input.extend_from_slice(&fresh[consumed..]);
                }
            })
        } else {
            input.extend_from_slice(fresh);
            self.call_on_data(key, &input).map(|consumed| {
                input.drain(..consumed);
            })
        };
        match source {
            DataSource::ReadBuffer(_) => self.read_buf = buffer,
            DataSource::Plaintext => self.plaintext_buf = buffer,
            DataSource::Input => {}
        }
        outcome?;
        let Some(conn) = self.connections.get_mut(key) else {
            return Ok(());
        };
        if input.len() > self.limits.max_input {
            log::info!(
                "closing {}: {} unconsumed input bytes exceed the limit",
                conn.peer,
                input.len()
            );
            return Err(CloseReason::InputLimit);
        }
        conn.input = if input.is_empty() { Vec::new() } else { input };
        Ok(())
    }

    fn call_on_data(&mut self, key: usize, data: &[u8]) -> Result<usize, CloseReason> {
        let mut consumed = 0;
        self.with_session(key, |service, session| {
            consumed = service.on_data(session, data).min(data.len());
        })?;
        Ok(consumed)
    }

    fn run_service(&mut self, key: usize, call: ServiceCall) -> Result<(), CloseReason> {
        self.with_session(key, |service, session| match call {
            ServiceCall::Connect => service.on_connect(session),
            ServiceCall::Drained => service.on_drained(session),
        })
    }

    /// Runs one service callback for a connection, then carries out what it
    /// asked for: queue its output, close, broadcast.
    fn with_session(
        &mut self,
        key: usize,
        callback: impl FnOnce(&mut dyn Service, &mut Session<'_>),
    ) -> Result<(), CloseReason> {
        let conn = &mut self.connections[key];
        let info = admission_facts(conn, &self.listeners, self.backend);
        self.service_output.clear();
        let queued = conn.pending_output();
        {
            let mut session =
                Session::new(conn.id, &info, &mut self.service_output, &mut self.requests)
                    .with_clock(self.now)
                    .with_queue(queued, self.limits.output_high_water);
            callback(self.service.as_mut(), &mut session);
        }
        if !self.service_output.is_empty() {
            if self.service.wants_drained() {
                conn.wants_drained = true;
            }
            if let Err(err) = conn.queue_plaintext(&self.service_output) {
                log::debug!("cannot send to {}: {err:?}", conn.peer);
                return Err(CloseReason::SocketError);
            }
            if conn.tls.is_some() {
                // Plaintext was written through already; ciphertext goes out
                // now too, rather than one reactor round trip later.
                if let Err(err) = conn.flush() {
                    log::debug!("write to {} failed: {err}", conn.peer);
                    return Err(CloseReason::SocketError);
                }
            }
            conn.last_activity = self.now;
        }
        if self.requests.close {
            self.requests.close = false;
            conn.closing = true;
            if let Some(tls) = &mut conn.tls {
                tls.close();
            }
        }
        if !self.requests.broadcasts.is_empty() {
            let messages = std::mem::take(&mut self.requests.broadcasts);
            for message in &messages {
                if let Some(hub) = self.shared.hub.get() {
                    hub.post_to_others(self.id, message);
                }
                self.broadcast_local(message);
            }
        }
        Ok(())
    }

    // ----- broadcasts ----------------------------------------------------

    fn deliver_posted_broadcasts(&mut self) {
        let Some(hub) = self.shared.hub.get() else {
            return;
        };
        let messages = hub.take(self.id);
        for message in &messages {
            self.broadcast_local(message);
        }
    }

    /// Queues `message` for every open session of this worker. A session that
    /// has fallen too far behind is dropped rather than allowed to stall the
    /// others or to grow without bound.
    fn broadcast_local(&mut self, message: &[u8]) {
        let keys: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, c)| c.stage == Stage::Open && !c.closing)
            .map(|(key, _)| key)
            .collect();
        for key in keys {
            let conn = &mut self.connections[key];
            let had_pending = conn.pending_output() > 0;
            if conn.pending_output() + message.len() > self.limits.output_hard_limit {
                log::info!(
                    "dropping {}: slow consumer ({} bytes queued)",
                    conn.peer,
                    conn.pending_output()
                );
                self.close(key, CloseReason::SlowConsumer);
                continue;
            }
            if let Err(err) = conn.queue_plaintext(message) {
                log::debug!("broadcast to {} failed: {err:?}", conn.peer);
                self.close(key, CloseReason::SocketError);
                continue;
            }
            if conn.tls.is_some() {
                if let Err(err) = conn.flush() {
                    log::debug!("broadcast to {} failed: {err}", conn.peer);
                    self.close(key, CloseReason::SocketError);
                    continue;
                }
            }
            // A connection that now has output queued needs write interest;
            // one that had some already is armed for writing.
            if !had_pending && conn.pending_output() > 0 {
                self.rearm(key);
            }
        }
    }

    // ----- deadlines -----------------------------------------------------

    /// Makes sure the timer heap holds an entry no later than the
    /// connection's deadline (see `timers` for why entries are lazy).
    fn schedule_deadline(&mut self, key: usize, fresh: bool) {
        let conn = &mut self.connections[key];
        let deadline = conn.deadline(&self.limits);
        if fresh || deadline < conn.scheduled {
            conn.scheduled = deadline;
            self.timers.schedule(
                deadline,
                TimerKey::Connection {
                    key,
                    generation: conn.generation,
                },
            );
        }
    }

    fn expire_timers(&mut self) {
        let now = Instant::now();
        self.now = now;
        while let Some((at, timer)) = self.timers.pop_due(now) {
            match timer {
                TimerKey::ResumeAccepting { listener } => self.accept_all(listener),
                TimerKey::Connection { key, generation } => {
                    let Some(conn) = self.connections.get_mut(key) else {
                        continue;
                    };
                    if conn.generation != generation || conn.scheduled != at {
                        continue; // stale: the slot was reused or rescheduled
                    }
                    let deadline = conn.deadline(&self.limits);
                    if deadline > now {
                        conn.scheduled = deadline;
                        self.timers.schedule(deadline, timer);
                        continue;
                    }
                    self.on_deadline(key);
                }
            }
        }
    }

    fn on_deadline(&mut self, key: usize) {
        let conn = &self.connections[key];
        if conn.lingering {
            let reason = self.closing_reason();
            self.close(key, reason);
            return;
        }
        let reason = match conn.stage {
            Stage::Sniffing => {
                let listener = &self.listeners[conn.listener];
                let grace_over = self
                    .limits
                    .plaintext_after
                    .is_some_and(|after| self.now >= conn.accepted_at + after);
                let handshake_over = self.now >= conn.accepted_at + self.limits.handshake_timeout;
                if listener.allow_plaintext
                    && grace_over
                    && !handshake_over
                    && conn.input.is_empty()
                {
                    // The client waits to be spoken to: admit it as plaintext.
                    self.open_plaintext(key);
                    if self.connections.contains(key) {
                        self.rearm(key);
                    }
                    return;
                }
                CloseReason::HandshakeTimeout
            }
            Stage::Handshaking => CloseReason::HandshakeTimeout,
            Stage::Open if conn.pending_output() > 0 => CloseReason::WriteTimeout,
            Stage::Open => CloseReason::IdleTimeout,
        };
        self.close(key, reason);
    }

    // ----- closing -------------------------------------------------------

    /// The one way a connection ends.
    fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(conn) = self.connections.get(key) else {
            return;
        };
        if let Err(err) = self.selector.deregister(conn.stream.as_raw_fd()) {
            log::debug!("deregister {} failed: {err}", conn.peer);
        }
        self.close_unregistered(key, reason);
    }

    fn close_unregistered(&mut self, key: usize, reason: CloseReason) {
        let conn = self.connections.remove(key);
        self.shared.open_connections.fetch_sub(1, Ordering::AcqRel);
        self.shared.stats.count_closed(reason);
        if reason.is_routine() {
            log::debug!("closed {}: {}", conn.peer, reason.label());
        } else {
            log::info!("closed {}: {}", conn.peer, reason.label());
        }
        if conn.stage == Stage::Open {
            let info = admission_facts(&conn, &self.listeners, self.backend);
            self.service.on_close(conn.id, &info);
        }
        // Dropping `conn` closes the socket.
    }

    /// Stops accepting, says goodbye (TLS `close_notify`) to open sessions and
    /// lets queued output drain for up to the grace period.
    fn begin_shutdown(&mut self) {
        self.shutdown_deadline = Some(self.now + self.shutdown_grace);
        for listener in &mut self.listeners {
            if let Some(socket) = listener.listener.take() {
                let _ = self.selector.deregister(socket.as_raw_fd());
            }
        }
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            let conn = &mut self.connections[key];
            if conn.stage != Stage::Open {
                self.close(key, CloseReason::Shutdown);
                continue;
            }
            conn.closing = true;
            if let Some(tls) = &mut conn.tls {
                tls.close();
            }
            if let Err(err) = conn.flush() {
                log::debug!("flush to {} during shutdown failed: {err}", conn.peer);
                self.close(key, CloseReason::Shutdown);
                continue;
            }
            self.rearm(key);
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum DataSource {
    /// The first `n` bytes of the worker's read buffer.
    ReadBuffer(usize),
    /// The worker's decrypted-plaintext buffer.
    Plaintext,
    /// Only what is already in the connection's input.
    Input,
}

#[derive(Clone, Copy, Debug)]
enum ServiceCall {
    Connect,
    Drained,
}

/// What a service may know about a connection: the record built at the TLS
/// handshake, or, for plaintext, one made on the spot from the addresses
/// (plaintext connections store nothing more, to stay small when idle).
fn admission_facts<'a>(
    conn: &'a Connection,
    listeners: &[WorkerListener],
    backend: &'static str,
) -> Cow<'a, ConnectionInfo> {
    match &conn.info {
        Some(info) => Cow::Borrowed(info),
        None => Cow::Owned(ConnectionInfo::plain(
            conn.peer,
            listeners[conn.listener].local,
            backend,
        )),
    }
}

/// Whether the kernel holds nothing unread from, or unacknowledged by, the
/// peer (see `net::queues`).
fn quiet(stream: &std::net::TcpStream) -> bool {
    crate::net::queues::queues(stream).is_ok_and(|q| q.is_quiet())
}

fn connection_token(key: usize, generation: u32) -> Token {
    debug_assert!(key <= u32::MAX as usize);
    Token(((generation as usize) << 32) | key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_key_and_generation_apart_from_listeners() {
        let token = connection_token(u32::MAX as usize, GENERATION_MASK);
        assert!(token.0 < LISTENER_TOKEN_BASE);
        assert_eq!(token.0 & 0xffff_ffff, u32::MAX as usize);
        assert_eq!((token.0 >> 32) as u32, GENERATION_MASK);
    }
}
