//! One client connection on the project's reactor: a non-blocking socket,
//! optionally wrapped in the project's TLS engine in client mode.
//!
//! It is the mirror image of the server's `engine::Connection`:
//!
//! ```text
//!   Connecting ──(socket writable, no SO_ERROR)──► Handshaking ──► Open
//!        │                                   (TLS only)            ▲
//!        └──────────────────(plaintext)────────────────────────────┘
//! ```
//!
//! The one idea, shared with the server: **the interest is computed, never
//! remembered.** After every event the owner asks [`Conn::rearm`] to re-arm
//! the one-shot registration with what the connection wants now — writable
//! while connecting or while output is queued, readable until the peer has
//! finished — and a connection that wants nothing is done.
//!
//! Scenarios own a `Conn` plus their own state (what to send, what to
//! expect); `Conn` only moves bytes and hands plaintext to a callback.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use backends::{Event, Events, Interest, Selector, Token};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::tls::{TlsError, TlsSession};

/// Reads per readable event before giving other connections a turn.
const READS_PER_EVENT: usize = 8;
/// Size of the per-thread buffer plaintext sockets are read into.
pub const READ_BUFFER: usize = 64 * 1024;

/// Why a connection failed. Every one counts as an error in the report.
#[derive(Debug)]
pub enum Failure {
    Connect(io::Error),
    Io(io::Error),
    Tls(TlsError),
    /// The server closed before the scenario got what it expected.
    Closed(String),
    /// The server sent bytes other than the expected ones.
    Corrupt(String),
    /// Not finished when the run's time limit passed.
    Timeout,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "connect failed: {e}"),
            Failure::Io(e) => write!(f, "socket error: {e}"),
            Failure::Tls(e) => write!(f, "TLS error: {e}"),
            Failure::Closed(what) => write!(f, "closed by the server: {what}"),
            Failure::Corrupt(what) => write!(f, "corrupt data: {what}"),
            Failure::Timeout => write!(f, "did not finish in time"),
        }
    }
}

/// Buffers one thread lends to all its connections in turn, so an idle
/// connection owns none.
pub struct Buffers {
    read: Vec<u8>,
    plaintext: Vec<u8>,
}

impl Default for Buffers {
    fn default() -> Self {
        Buffers {
            read: vec![0; READ_BUFFER],
            plaintext: Vec::with_capacity(READ_BUFFER),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Handshaking,
    Open,
}

/// What one event brought.
#[derive(Clone, Copy, Debug, Default)]
pub struct Arrived {
    /// The connection became usable on this event (connected, and for TLS
    /// the handshake completed).
    pub opened: bool,
    /// The server finished sending (FIN, or TLS close_notify).
    pub eof: bool,
}

pub struct Conn {
    stream: TcpStream,
    tls: Option<Box<TlsSession>>,
    /// Plaintext connections: bytes the socket did not take yet. (A TLS
    /// connection queues ciphertext inside its session instead.)
    pending: Vec<u8>,
    phase: Phase,
    eof: bool,
    /// Write calls that moved bytes to the socket: how a scenario shows
    /// how many messages shared one system call.
    writes: u64,
}

impl Conn {
    /// Starts a non-blocking connect to `addr`, from `source` when given
    /// (to use another loopback address's ephemeral ports). Register the
    /// connection right after; the connect completes on a later event.
    pub fn connect(
        addr: SocketAddr,
        source: Option<IpAddr>,
        tls: Option<TlsSession>,
    ) -> Result<Conn, Failure> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(Failure::Connect)?;
        socket.set_nonblocking(true).map_err(Failure::Connect)?;
        // Small messages must leave at once, not wait for Nagle's timer.
        socket.set_tcp_nodelay(true).map_err(Failure::Connect)?;
        if let Some(ip) = source {
            // Choose the source address only; the port is picked at connect
            // time by the full 4-tuple, so ports in TIME_WAIT towards other
            // destinations stay usable.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            bind_address_no_port(&socket).map_err(Failure::Connect)?;
            socket
                .bind(&SocketAddr::new(ip, 0).into())
                .map_err(Failure::Connect)?;
        }
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(Failure::Connect(e)),
        }
        let mut tls = tls.map(Box::new);
        if let Some(session) = &mut tls {
            // Produces the ClientHello, written as soon as the socket connects.
            session.process(&mut Vec::new()).map_err(Failure::Tls)?;
        }
        Ok(Conn {
            stream: socket.into(),
            tls,
            pending: Vec::new(),
            phase: Phase::Connecting,
            eof: false,
            writes: 0,
        })
    }

    pub fn register(&self, selector: &mut dyn Selector, token: Token) -> io::Result<()> {
        selector.register(self.stream.as_raw_fd(), token, Interest::WRITABLE)
    }

    /// Re-arms the one-shot registration with what the connection wants.
    /// Returns false when it wants nothing more (finished reading and has
    /// nothing to write): the owner should deregister and drop it.
    pub fn rearm(&self, selector: &mut dyn Selector, token: Token) -> io::Result<bool> {
        self.rearm_for(selector, token, false)
    }

    /// [`Conn::rearm`], also asking for writability when the owner has more
    /// to send once the socket takes it (a client that sends one message
    /// per completed write).
    pub fn rearm_for(
        &self,
        selector: &mut dyn Selector,
        token: Token,
        wants_to_send: bool,
    ) -> io::Result<bool> {
        let wants_write = self.pending_output() > 0 || (wants_to_send && self.is_open());
        let interest = match self.phase {
            Phase::Connecting => Some(Interest::WRITABLE),
            _ => Interest::from_flags(!self.eof, wants_write),
        };
        match interest {
            Some(interest) => {
                selector.reregister(self.stream.as_raw_fd(), token, interest)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Stops watching the socket; call before dropping a registered `Conn`.
    pub fn deregister(&self, selector: &mut dyn Selector) {
        // Failure here only means it was not registered; nothing to undo.
        let _ = selector.deregister(self.stream.as_raw_fd());
    }

    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Write calls so far that moved bytes to the socket.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    pub fn session(&self) -> Option<&TlsSession> {
        self.tls.as_deref()
    }

    /// Handles one readiness event: finishes a pending connect, writes what
    /// is queued, and reads what arrived, passing plaintext to `deliver`.
    pub fn on_event(
        &mut self,
        event: &Event,
        buffers: &mut Buffers,
        mut deliver: impl FnMut(&[u8]) -> Result<(), Failure>,
    ) -> Result<Arrived, Failure> {
        let mut arrived = Arrived::default();
        if self.phase == Phase::Connecting {
            if !self.finish_connect()? {
                return Ok(arrived); // spurious: still connecting
            }
            if self.tls.is_none() {
                self.phase = Phase::Open;
                arrived.opened = true;
            }
        }
        self.flush()?;
        if event.readable {
            for _ in 0..READS_PER_EVENT {
                if self.eof || !self.read_once(buffers, &mut arrived, &mut deliver)? {
                    break;
                }
            }
            // TLS may have answered (handshake flights, the client Finished).
            self.flush()?;
        }
        arrived.eof = self.eof;
        Ok(arrived)
    }

    /// Whether a non-blocking connect has completed; its error if it failed.
    fn finish_connect(&mut self) -> Result<bool, Failure> {
        if let Some(error) = self.stream.take_error().map_err(Failure::Connect)? {
            return Err(Failure::Connect(error));
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.phase = Phase::Handshaking;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(Failure::Connect(e)),
        }
    }

    /// One read from the socket. Returns false when there was nothing to
    /// read (`WouldBlock`) or the stream ended.
    fn read_once(
        &mut self,
        buffers: &mut Buffers,
        arrived: &mut Arrived,
        deliver: &mut impl FnMut(&[u8]) -> Result<(), Failure>,
    ) -> Result<bool, Failure> {
        let stream = &mut self.stream;
        match &mut self.tls {
            Some(tls) => {
                let read = tls.fill_incoming(|buf| read_retrying(stream, buf));
                let got_bytes = match read {
                    Ok(0) => {
                        self.eof = true;
                        false
                    }
                    Ok(_) => true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(Failure::Io(e)),
                };
                buffers.plaintext.clear();
                let progress = tls.process(&mut buffers.plaintext).map_err(Failure::Tls)?;
                if progress.just_completed {
                    self.phase = Phase::Open;
                    arrived.opened = true;
                }
                if !buffers.plaintext.is_empty() {
                    deliver(&buffers.plaintext)?;
                }
                if progress.peer_closed {
                    self.eof = true;
                }
                Ok(got_bytes && !self.eof)
            }
            None => match read_retrying(stream, &mut buffers.read) {
                Ok(0) => {
                    self.eof = true;
                    Ok(false)
                }
                Ok(n) => {
                    deliver(&buffers.read[..n])?;
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                Err(e) => Err(Failure::Io(e)),
            },
        }
    }

    /// Queues plaintext for the server and writes what the socket takes.
    /// Over TLS, data sent before the handshake completes goes out after it.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        match &mut self.tls {
            Some(tls) => tls.send(bytes).map_err(Failure::Tls)?,
            None if self.pending.is_empty() && self.phase == Phase::Open => {
                // The common case: straight from the caller's buffer.
                let written = write_some(&mut self.stream, bytes, &mut self.writes)?;
                self.pending.extend_from_slice(&bytes[written..]);
                return Ok(());
            }
            None => self.pending.extend_from_slice(bytes),
        }
        self.flush()
    }

    /// Writes queued output until done or the socket is full.
    pub fn flush(&mut self) -> Result<(), Failure> {
        if self.phase == Phase::Connecting {
            return Ok(());
        }
        match &mut self.tls {
            Some(tls) => {
                while tls.wants_write() {
                    let n = write_some(&mut self.stream, tls.outgoing(), &mut self.writes)?;
                    if n == 0 {
                        break;
                    }
                    tls.consume_outgoing(n);
                }
            }
            None => {
                let n = write_some(&mut self.stream, &self.pending, &mut self.writes)?;
                self.pending.drain(..n);
            }
        }
        Ok(())
    }

    /// Bytes queued for the socket.
    pub fn pending_output(&self) -> usize {
        match &self.tls {
            Some(tls) => tls.outgoing().len(),
            None => self.pending.len(),
        }
    }

    /// Says goodbye: TLS close_notify, written if the socket takes it. The
    /// connection keeps reading until the server closes its side.
    pub fn close_notify(&mut self) -> Result<(), Failure> {
        if let Some(tls) = &mut self.tls {
            tls.close();
        }
        self.flush()
    }

    /// Makes dropping this connection reset it instead of closing it
    /// gracefully: no TIME_WAIT entry is left to occupy the source port.
    /// For ending thousands of held connections at once.
    pub fn reset_on_drop(&self) {
        // Best effort: without it the close is merely graceful.
        let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
    }
}

/// Sets Linux's `IP_BIND_ADDRESS_NO_PORT`: `bind` then records the source
/// address and leaves the port to `connect` (socket2 has no wrapper for it).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_address_no_port(socket: &Socket) -> io::Result<()> {
    crate::net::set_int_option(socket, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)
}

/// Writes as much of `bytes` as the socket takes now; 0 when it is full.
/// Counts each write call that moved bytes in `writes`.
fn write_some(stream: &mut TcpStream, bytes: &[u8], writes: &mut u64) -> Result<usize, Failure> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => return Err(Failure::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                written += n;
                *writes += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Io(e)),
        }
    }
    Ok(written)
}

fn read_retrying(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Waits for readiness and copies the events into `ready`, so the caller
/// can handle them while mutating its connections and the selector.
pub fn wait_into(
    selector: &mut dyn Selector,
    events: &mut Events,
    ready: &mut Vec<Event>,
    timeout: Option<Duration>,
) -> io::Result<()> {
    selector.wait(events, timeout)?;
    ready.clear();
    ready.extend(events.iter().copied());
    Ok(())
}
