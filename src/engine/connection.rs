//! One connection's state: where it is in its life, what it has buffered, and
//! what it wants from the reactor next.
//!
//! A connection moves through three stages:
//!
//! ```text
//!   accepted ──► Sniffing ──(first bytes: TLS record)──► Handshaking ──► Open
//!                   │                                                    ▲
//!                   └──────────(anything else, if allowed)───────────────┘
//! ```
//!
//! The one idea: **the wanted interest is computed, never remembered**. After
//! every event the worker asks [`Connection::interest`] what to re-arm the
//! one-shot registration with — read unless the peer is not draining our
//! output (back-pressure) or has finished sending; write while output is
//! queued — so there is no flag to forget to update.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use backends::Interest;

use super::output::OutputQueue;
use crate::connection_info::ConnectionInfo;
use crate::service::SessionId;
use crate::tls::TlsSession;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for the first bytes that say plaintext or TLS.
    Sniffing,
    /// TLS handshake in progress.
    Handshaking,
    /// Admitted; the service sees its bytes.
    Open,
}

/// Limits that shape every connection's buffers and deadlines.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Time to send the first bytes and finish any TLS handshake.
    pub handshake_timeout: Duration,
    /// Time without traffic before an open connection is closed.
    pub idle_timeout: Duration,
    /// Time queued output may wait without the peer reading any of it.
    pub write_timeout: Duration,
    /// On a listener that allows both, how long to wait for a client's first
    /// bytes before admitting it as plaintext, so that a service that speaks
    /// first (chat's greeting) works for clients that wait to be spoken to.
    /// `None`: wait for the client up to the handshake timeout.
    pub plaintext_after: Option<Duration>,
    /// Stop reading from a connection while this much output is queued for
    /// it (back-pressure on a peer that sends but does not read).
    pub output_high_water: usize,
    /// Drop a broadcast receiver whose queued output exceeds this.
    pub output_hard_limit: usize,
    /// Close a connection whose service leaves more unconsumed input.
    pub max_input: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(30),
            plaintext_after: None,
            output_high_water: 256 * 1024,
            output_hard_limit: 4 * 1024 * 1024,
            max_input: 64 * 1024,
        }
    }
}

/// How long a closing connection waits for the peer's FIN after our own.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Connection {
    pub stream: TcpStream,
    /// Distinguishes this connection from earlier ones in the same slab slot.
    pub generation: u32,
    pub id: SessionId,
    pub listener: usize,
    pub peer: SocketAddr,
    pub stage: Stage,
    /// `Some` once the first bytes said TLS.
    pub tls: Option<Box<TlsSession>>,
    /// Admission facts; built when the connection is admitted.
    pub info: Option<Box<ConnectionInfo>>,
    /// Bytes received but not yet consumed: the sniffed prefix, or plaintext
    /// the service left for later.
    pub input: Vec<u8>,
    /// Plaintext-connection bytes waiting for the socket (TLS connections
    /// queue ciphertext inside their session instead).
    pub output: OutputQueue,
    /// The peer has sent FIN: nothing more will arrive.
    pub read_closed: bool,
    /// Close once the queued output is written.
    pub closing: bool,
    /// Output is written and our side is shut (FIN sent); reading and
    /// discarding until the peer's FIN, so that closing does not reset the
    /// connection and destroy data the peer has not read yet.
    pub lingering: bool,
    /// The service asked to hear when output drains (streaming services).
    pub wants_drained: bool,
    pub accepted_at: Instant,
    /// Last time bytes moved in either direction.
    pub last_activity: Instant,
    /// The deadline of this connection's entry in the timer heap.
    pub scheduled: Instant,
}

impl Connection {
    /// Bytes queued for the socket and not yet written.
    pub fn pending_output(&self) -> usize {
        match &self.tls {
            Some(tls) => tls.outgoing().len(),
            None => self.output.len(),
        }
    }

    /// Whether reading should pause because the peer is not draining what we
    /// already owe it.
    pub fn is_backpressured(&self, limits: &ConnectionLimits) -> bool {
        self.pending_output() >= limits.output_high_water
    }

    /// What to re-arm the registration with; `None` when the connection has
    /// nothing left to wait for and should be closed.
    pub fn interest(&self, limits: &ConnectionLimits) -> Option<Interest> {
        let pending = self.pending_output() > 0;
        let read = !self.read_closed
            && (self.lingering || (!self.closing && !self.is_backpressured(limits)));
        let write = pending || (self.wants_drained && self.stage == Stage::Open && !self.closing);
        Interest::from_flags(read, write)
    }

    /// Whether a close may need to linger: our output is all written, but the
    /// peer may still be sending. Closing a socket with unread input makes
    /// the kernel send a reset, which can destroy our last bytes in flight.
    /// The worker lingers only if the kernel also reports bytes in flight
    /// (`net::queues`); otherwise it closes at once.
    pub fn should_linger(&self) -> bool {
        self.closing && !self.lingering && !self.read_closed && self.pending_output() == 0
    }

    /// When this connection must next be looked at by the timer.
    pub fn deadline(&self, limits: &ConnectionLimits) -> Instant {
        if self.lingering {
            return self.last_activity + LINGER_TIMEOUT;
        }
        match self.stage {
            // A client that has said nothing may be waiting to be spoken to
            // (plaintext_after); one that sent part of a TLS header is
            // handshaking and gets the full handshake timeout.
            Stage::Sniffing if self.input.is_empty() => {
                let plaintext_at = limits.plaintext_after.map(|after| self.accepted_at + after);
                let handshake_by = self.accepted_at + limits.handshake_timeout;
                plaintext_at.map_or(handshake_by, |at| at.min(handshake_by))
            }
            Stage::Sniffing => self.accepted_at + limits.handshake_timeout,
            Stage::Handshaking => self.accepted_at + limits.handshake_timeout,
            Stage::Open if self.pending_output() > 0 => self.last_activity + limits.write_timeout,
            Stage::Open => self.last_activity + limits.idle_timeout,
        }
    }

    /// Writes queued output until done or the socket is full. Returns bytes
    /// written. Freed buffers keep an idle connection's memory at zero.
    pub fn flush(&mut self) -> io::Result<usize> {
        let mut written = 0;
        loop {
            let pending: &[u8] = match &self.tls {
                Some(tls) => tls.outgoing(),
                None => self.output.as_slice(),
            };
            if pending.is_empty() {
                break;
            }
            match self.stream.write(pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    match &mut self.tls {
                        Some(tls) => tls.consume_outgoing(n),
                        None => self.output.consume(n),
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
        Ok(written)
    }

    /// Queues plaintext produced by the service: encrypted for TLS; for
    /// plaintext, written straight from the caller's buffer when nothing is
    /// queued ahead of it, so the common case copies nothing.
    pub fn queue_plaintext(&mut self, bytes: &[u8]) -> Result<(), QueueError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if let Some(tls) = &mut self.tls {
            return tls.send(bytes).map_err(QueueError::Tls);
        }
        let mut rest = bytes;
        if self.output.is_empty() {
            loop {
                match self.stream.write(rest) {
                    Ok(n) => {
                        rest = &rest[n..];
                        if rest.is_empty() || n == 0 {
                            break;
                        }
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => return Err(QueueError::Socket(err)),
                }
            }
        }
        self.output.extend(rest);
        Ok(())
    }

    /// Reads once from the socket into `buf`.
    pub fn read_socket(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

/// Why queued output could not be accepted.
#[derive(Debug)]
pub enum QueueError {
    Socket(io::Error),
    Tls(crate::tls::TlsError),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle plaintext connection owns no heap buffer, so its user-space
    /// cost is this struct (plus its slab slot and timer entry). Keep it small:
    /// the budget is 256 bytes per idle connection in all.
    #[test]
    fn an_idle_connection_stays_small() {
        let size = std::mem::size_of::<Connection>();
        eprintln!("size_of::<Connection>() = {size}");
        assert!(size <= 192, "Connection grew to {size} bytes");
    }
}
