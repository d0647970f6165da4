//! A TLS engine that is fed bytes and never touches a socket: the in-memory
//! transport and the `SSL` over it, for either side of a connection.
//!
//! [`TlsEngine`] wraps an OpenSSL `SSL` whose "network" is [`Wire`], a pair
//! of in-memory queues: ciphertext the event loop read from the socket waits
//! in `incoming`, and ciphertext OpenSSL produced waits in `outgoing` until
//! the event loop writes it. The one idea: **the engine is a pure
//! bytes-in/bytes-out state machine**, so the event loop keeps full control
//! of readiness, back-pressure and timeouts, and tests can wire a client and
//! a server back to back in memory. Nothing here knows about domains:
//! what a server or a client adds on top (admission checks, counters,
//! connection facts) comes in through [`Role`], implemented by
//! [`TlsSession`](super::TlsSession).
//!
//! # Why a Rust transport under `SslStream` rather than `BIO_s_mem`
//!
//! The usual non-blocking recipe is a pair of memory BIOs: read the socket
//! into a scratch buffer, `BIO_write` it into the read BIO (a copy), let
//! OpenSSL read it from there, then `BIO_read` the output into another buffer
//! (another copy) before `write(2)`. Here the openssl crate's `SslStream<S>`
//! drives a custom BIO whose callbacks call our [`Wire`]'s `Read` and
//! `Write`:
//!
//! * **Copies.** The caller `write(2)`s straight from `outgoing`
//!   ([`TlsEngine::outgoing`]), with no `BIO_read` copy in between. On the
//!   way in it may `read(2)` straight into `incoming`'s spare space
//!   ([`TlsEngine::fill_incoming`]), or read into a buffer of its own and
//!   hand the bytes over with [`TlsEngine::receive`] (one copy of what was
//!   read). The server's event loop does the latter: its one read buffer is
//!   shared by every connection and already allocated, whereas giving each
//!   read a fresh record-sized buffer costs an allocation and a zero-fill
//!   of 18 KiB, more than copying a small message. OpenSSL copies once in
//!   each direction, as it must to decrypt and encrypt.
//! * **Idle memory.** A memory BIO keeps its `BUF_MEM` allocation; our
//!   queues are plain `Vec`s released (capacity 0) as soon as they drain, and
//!   `SSL_MODE_RELEASE_BUFFERS` lets OpenSSL free its record buffers too, so
//!   an idle connection holds only OpenSSL's connection state.
//! * **Safety.** Memory BIO pairs need raw FFI (`BIO_new_bio_pair`,
//!   `SSL_set_bio`) with manual ownership rules; the crate's `SslStream` is
//!   safe code, and `WouldBlock` from our `Read` becomes `SSL_ERROR_WANT_READ`.
//!
//! # Sending before the handshake completes
//!
//! [`TlsEngine::send`] before the handshake completes does not fail: the
//! plaintext is kept inside and encrypted the moment the handshake finishes
//! (on the [`TlsEngine::process`] call that reports `just_completed`, so
//! check `outgoing()` after it). That lets a client queue its request
//! immediately and a server greet without tracking handshake state. The
//! buffer is unbounded; the caller's own output limits apply.

use std::io::{self, Read, Write};

use openssl::ssl::{ErrorCode, Ssl, SslRef, SslStream};

use super::error::{TlsError, TlsErrorKind};

/// Largest TLS record on the wire: 2^14 bytes of plaintext, plus the most
/// expansion TLS 1.2 allows (2048), plus the 5-byte header. Reading this much
/// at once lets one `read(2)` fetch any whole record.
pub const MAX_RECORD_ON_WIRE: usize = (1 << 14) + 2048 + 5;

/// Largest plaintext one record carries.
const MAX_PLAINTEXT: usize = 1 << 14;

/// What one `process` call achieved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The handshake is done (on this call or an earlier one).
    pub handshake_complete: bool,
    /// The handshake finished during this call: the moment to build
    /// `ConnectionInfo` and call the service's `on_connect`.
    pub just_completed: bool,
    /// The peer sent close_notify; no more plaintext will come.
    pub peer_closed: bool,
}

/// What a side adds to the engine at the three moments it cares about.
pub(crate) trait Role {
    /// The handshake just succeeded; an error here fails the session.
    fn on_handshake_complete(&mut self, ssl: &SslRef) -> Result<(), TlsError>;
    /// Refines OpenSSL's view of why the handshake failed.
    fn classify_handshake_error(&self, ssl: &SslRef, error: TlsError) -> TlsError;
    /// The session just failed, for good, with `error`.
    fn on_failure(&mut self, error: &TlsError);
}

/// The in-memory "socket" under OpenSSL: ciphertext queues in both
/// directions. `Read` says `WouldBlock` when nothing is buffered, which
/// OpenSSL turns into want-read; `Write` always accepts everything.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    pub(crate) incoming: Vec<u8>,
    /// How much of `incoming` OpenSSL has already read.
    incoming_read: usize,
    pub(crate) outgoing: Vec<u8>,
    /// How much of `outgoing` the caller has already written to the socket.
    outgoing_sent: usize,
}

impl Wire {
    fn unread(&self) -> usize {
        self.incoming.len() - self.incoming_read
    }

    /// Drops consumed bytes, and the allocations themselves once a queue is
    /// empty: an idle connection should hold no buffer at all.
    fn release_drained(&mut self) {
        if self.incoming_read == self.incoming.len() {
            self.incoming = Vec::new();
            self.incoming_read = 0;
        }
        if self.outgoing_sent == self.outgoing.len() {
            self.outgoing = Vec::new();
            self.outgoing_sent = 0;
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = &self.incoming[self.incoming_read..];
        if available.is_empty() {
            // Not EOF: the socket may deliver more later.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.incoming_read += n;
        Ok(n)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Compact only when the sent part dominates, so a slow socket does
        // not make every record cost a memmove of the whole backlog.
        if self.outgoing_sent > 0 && self.outgoing_sent >= self.outgoing.len() / 2 {
            self.outgoing.drain(..self.outgoing_sent);
            self.outgoing_sent = 0;
        }
        self.outgoing.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A non-blocking TLS connection driven by bytes, with no opinion on what
/// the handshake should establish.
pub(crate) struct TlsEngine {
    stream: SslStream<Wire>,
    handshake_complete: bool,
    peer_closed: bool,
    /// close() was called: nothing more may be sent.
    closing: bool,
    /// The first fatal error; every later call reports it again.
    failed: Option<TlsError>,
    /// Plaintext accepted by `send` but not yet encrypted: sent before the
    /// handshake completed, or while OpenSSL needed the peer first.
    pub(crate) unsent: Vec<u8>,
}

impl TlsEngine {
    /// Wraps a configured `Ssl` (accept or connect state already set).
    pub(crate) fn new(ssl: Ssl) -> Result<TlsEngine, TlsError> {
        let stream = SslStream::new(ssl, Wire::default())
            .map_err(|e| TlsError::new(TlsErrorKind::Internal, e.to_string()))?;
        Ok(TlsEngine {
            stream,
            handshake_complete: false,
            peer_closed: false,
            closing: false,
            failed: None,
            unsent: Vec::new(),
        })
    }

    #[cfg(test)]
    pub(crate) fn wire(&self) -> &Wire {
        self.stream.get_ref()
    }

    pub(crate) fn ssl(&self) -> &SslRef {
        self.stream.ssl()
    }

    pub(crate) fn failed(&self) -> Option<&TlsError> {
        self.failed.as_ref()
    }

    pub(crate) fn receive(&mut self, ciphertext: &[u8]) {
        let wire = self.stream.get_mut();
        if wire.incoming_read == wire.incoming.len() {
            wire.incoming.clear();
            wire.incoming_read = 0;
        }
        wire.incoming.extend_from_slice(ciphertext);
    }

    pub(crate) fn fill_incoming(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let wire = self.stream.get_mut();
        if wire.incoming_read > 0 {
            wire.incoming.drain(..wire.incoming_read);
            wire.incoming_read = 0;
        }
        let filled = wire.incoming.len();
        // Zeroing the spare space keeps this safe code; it costs far less
        // than the decryption that follows.
        wire.incoming.resize(filled + MAX_RECORD_ON_WIRE, 0);
        let result = read(&mut wire.incoming[filled..]);
        let n = match &result {
            Ok(n) => (*n).min(MAX_RECORD_ON_WIRE),
            Err(_) => 0,
        };
        wire.incoming.truncate(filled + n);
        wire.release_drained();
        result.map(|_| n)
    }

    /// Advances the handshake and decrypts every complete record buffered,
    /// appending plaintext to `plaintext_out`.
    pub(crate) fn process(
        &mut self,
        plaintext_out: &mut Vec<u8>,
        role: &mut impl Role,
    ) -> Result<Progress, TlsError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.advance(plaintext_out, role);
        if let Err(error) = &result {
            self.fail(error.clone(), role);
        }
        self.stream.get_mut().release_drained();
        result
    }

    fn fail(&mut self, error: TlsError, role: &mut impl Role) {
        role.on_failure(&error);
        self.failed = Some(error);
    }

    fn advance(
        &mut self,
        plaintext_out: &mut Vec<u8>,
        role: &mut impl Role,
    ) -> Result<Progress, TlsError> {
        let mut progress = Progress::default();
        if !self.handshake_complete {
            match self.stream.do_handshake() {
                Ok(()) => {
                    role.on_handshake_complete(self.stream.ssl())?;
                    self.handshake_complete = true;
                    progress.just_completed = true;
                }
                Err(e) if is_retry(e.code()) => return Ok(progress),
                Err(e) => {
                    let error = TlsError::from_ssl(&e, true);
                    return Err(role.classify_handshake_error(self.stream.ssl(), error));
                }
            }
        }
        progress.handshake_complete = true;
        while !self.peer_closed {
            let buffered = self.stream.get_ref().unread() + self.stream.ssl().pending();
            if buffered == 0 {
                break;
            }
            // Plaintext is never longer than the ciphertext that carried it,
            // so this bounds the caller's buffer growth by what arrived.
            let room = buffered.min(MAX_PLAINTEXT);
            let start = plaintext_out.len();
            plaintext_out.resize(start + room, 0);
            let result = self.stream.ssl_read(&mut plaintext_out[start..]);
            let n = *result.as_ref().unwrap_or(&0);
            plaintext_out.truncate(start + n);
            match result {
                Ok(_) => {}
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => self.peer_closed = true,
                Err(e) if is_retry(e.code()) => break,
                Err(e) => return Err(TlsError::from_ssl(&e, false)),
            }
        }
        self.flush_unsent()?;
        progress.peer_closed = self.peer_closed;
        Ok(progress)
    }

    pub(crate) fn send(&mut self, plaintext: &[u8], role: &mut impl Role) -> Result<(), TlsError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        if self.closing {
            return Err(TlsError::new(TlsErrorKind::Closed, "send after close"));
        }
        if plaintext.is_empty() {
            return Ok(());
        }
        if !self.handshake_complete || !self.unsent.is_empty() {
            // Keeps order: anything already waiting goes first.
            self.unsent.extend_from_slice(plaintext);
            return Ok(());
        }
        let result = self.encrypt(plaintext).map(|rest| {
            if !rest.is_empty() {
                self.unsent = rest.to_vec();
            }
        });
        if let Err(error) = &result {
            self.fail(error.clone(), role);
        }
        result
    }

    /// Encrypts what `send` had to hold back, once that is possible.
    fn flush_unsent(&mut self) -> Result<(), TlsError> {
        if self.unsent.is_empty() || !self.handshake_complete || self.closing {
            return Ok(());
        }
        let unsent = std::mem::take(&mut self.unsent);
        let rest = self.encrypt(&unsent)?;
        self.unsent = rest.to_vec();
        Ok(())
    }

    /// Encrypts as much as OpenSSL will take now and returns the rest, which
    /// is empty unless OpenSSL must first hear from the peer. The Wire
    /// accepts every write, so SSL_write never stalls on the network.
    fn encrypt<'a>(&mut self, mut plaintext: &'a [u8]) -> Result<&'a [u8], TlsError> {
        while !plaintext.is_empty() {
            match self.stream.ssl_write(plaintext) {
                Ok(n) => plaintext = &plaintext[n..],
                Err(e) if is_retry(e.code()) => break,
                Err(e) => return Err(TlsError::from_ssl(&e, false)),
            }
        }
        Ok(plaintext)
    }

    pub(crate) fn outgoing(&self) -> &[u8] {
        let wire = self.stream.get_ref();
        &wire.outgoing[wire.outgoing_sent..]
    }

    pub(crate) fn consume_outgoing(&mut self, n: usize) {
        let wire = self.stream.get_mut();
        wire.outgoing_sent = (wire.outgoing_sent + n).min(wire.outgoing.len());
        wire.release_drained();
    }

    pub(crate) fn close(&mut self) {
        if self.closing {
            return;
        }
        self.closing = true;
        // Best effort: what can still be encrypted goes out before
        // close_notify; what cannot is dropped with the connection.
        let _ = self.flush_unsent();
        self.unsent = Vec::new();
        if self.handshake_complete && self.failed.is_none() {
            // An error here means close_notify could not be produced; the
            // caller closes the socket either way.
            let _ = self.stream.shutdown();
        }
        self.stream.get_mut().release_drained();
    }

    pub(crate) fn handshake_complete(&self) -> bool {
        self.handshake_complete
    }

    pub(crate) fn peer_closed(&self) -> bool {
        self.peer_closed
    }
}

fn is_retry(code: ErrorCode) -> bool {
    code == ErrorCode::WANT_READ || code == ErrorCode::WANT_WRITE
}
