//! A TLS engine that is fed bytes and never touches a socket.
//!
//! [`TlsSession`] wraps an OpenSSL `SSL` whose "network" is [`Wire`], a pair
//! of in-memory queues: ciphertext the event loop read from the socket waits
//! in `incoming`, and ciphertext OpenSSL produced waits in `outgoing` until
//! the event loop writes it. The one idea: **the engine is a pure
//! bytes-in/bytes-out state machine**, so the event loop keeps full control
//! of readiness, back-pressure and timeouts, and tests can wire a client and
//! a server back to back in memory.
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
//!   ([`TlsSession::outgoing`]), with no `BIO_read` copy in between. On the
//!   way in it may `read(2)` straight into `incoming`'s spare space
//!   ([`TlsSession::fill_incoming`]), or read into a buffer of its own and
//!   hand the bytes over with [`TlsSession::receive`] (one copy of what was
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
//! [`TlsSession::send`] before the handshake completes does not fail: the
//! plaintext is kept inside the session and encrypted the moment the
//! handshake finishes (on the [`TlsSession::process`] call that reports
//! `just_completed`, so check `outgoing()` after it). That lets a client
//! queue its request immediately and a server greet without tracking handshake state. The buffer is unbounded;
//! the caller's own output limits apply.

use std::io::{self, Read, Write};
use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::ssl::{ErrorCode, NameType, Ssl, SslStream};
use openssl::x509::{X509Ref, X509VerifyResult};

use crate::connection_info::{ConnectionInfo, Transport};
use crate::domains::ClientAuth;

use super::error::{TlsError, TlsErrorKind};
use super::policy::{Admission, GateShared};

/// Largest TLS record on the wire: 2^14 bytes of plaintext, plus the most
/// expansion TLS 1.2 allows (2048), plus the 5-byte header. Reading this much
/// at once lets one `read(2)` fetch any whole record.
pub const MAX_RECORD_ON_WIRE: usize = (1 << 14) + 2048 + 5;

/// Largest plaintext one record carries.
const MAX_PLAINTEXT: usize = 1 << 14;

/// What one [`TlsSession::process`] call achieved.
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

/// The in-memory "socket" under OpenSSL: ciphertext queues in both
/// directions. `Read` says `WouldBlock` when nothing is buffered, which
/// OpenSSL turns into want-read; `Write` always accepts everything.
#[derive(Debug, Default)]
struct Wire {
    incoming: Vec<u8>,
    /// How much of `incoming` OpenSSL has already read.
    incoming_read: usize,
    outgoing: Vec<u8>,
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

/// Which side of the handshake this engine plays.
enum Role {
    /// Server side: the gate that built it, for the domain table.
    Server(Arc<GateShared>),
    /// Client side: the id of the `ClientTls` that built it.
    Client(u64),
}

/// A non-blocking TLS connection, client or server, driven by bytes.
///
/// The caller's loop: put ciphertext in ([`receive`](Self::receive) or
/// [`fill_incoming`](Self::fill_incoming)), call
/// [`process`](Self::process) to advance the handshake and collect
/// plaintext, [`send`](Self::send) plaintext, and write
/// [`outgoing`](Self::outgoing) to the socket, then
/// [`consume_outgoing`](Self::consume_outgoing) what was written. After an
/// error, flush `outgoing()` (it may hold an alert) and close the socket.
pub struct TlsSession {
    stream: SslStream<Wire>,
    role: Role,
    handshake_complete: bool,
    peer_closed: bool,
    /// close() was called: nothing more may be sent.
    closing: bool,
    /// The first fatal error; every later call reports it again.
    failed: Option<TlsError>,
    /// Plaintext accepted by `send` but not yet encrypted: sent before the
    /// handshake completed, or while OpenSSL needed the peer first (a
    /// renegotiation the peer started, on a client).
    unsent: Vec<u8>,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("server", &matches!(self.role, Role::Server(_)))
            .field("handshake_complete", &self.handshake_complete)
            .field("peer_closed", &self.peer_closed)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// Wraps a configured `Ssl` (accept or connect state already set):
    /// a server session with its gate, or a client one with its config id.
    pub(crate) fn from_ssl(
        ssl: Ssl,
        gate: Option<Arc<GateShared>>,
        client_id: u64,
    ) -> Result<TlsSession, TlsError> {
        let stream = SslStream::new(ssl, Wire::default())
            .map_err(|e| TlsError::new(TlsErrorKind::Internal, e.to_string()))?;
        Ok(TlsSession {
            stream,
            role: match gate {
                Some(gate) => Role::Server(gate),
                None => Role::Client(client_id),
            },
            handshake_complete: false,
            peer_closed: false,
            closing: false,
            failed: None,
            unsent: Vec::new(),
        })
    }

    /// Appends ciphertext read from the network.
    pub fn receive(&mut self, ciphertext: &[u8]) {
        let wire = self.stream.get_mut();
        if wire.incoming_read == wire.incoming.len() {
            wire.incoming.clear();
            wire.incoming_read = 0;
        }
        wire.incoming.extend_from_slice(ciphertext);
    }

    /// Lets the caller read from the socket straight into the incoming
    /// buffer: `read` gets spare space at least one maximal record long and
    /// returns how many bytes it wrote there (0 means end of stream). Errors,
    /// `WouldBlock` included, are passed through untouched.
    pub fn fill_incoming(
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
    /// appending plaintext to `plaintext_out`. Wanting more input is not an
    /// error: the call returns and the next one continues. After an error the
    /// session is dead; [`outgoing`](Self::outgoing) may still hold an alert
    /// to flush.
    pub fn process(&mut self, plaintext_out: &mut Vec<u8>) -> Result<Progress, TlsError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.advance(plaintext_out);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        self.stream.get_mut().release_drained();
        result
    }

    fn advance(&mut self, plaintext_out: &mut Vec<u8>) -> Result<Progress, TlsError> {
        let mut progress = Progress::default();
        if !self.handshake_complete {
            match self.stream.do_handshake() {
                Ok(()) => {
                    self.check_admission()?;
                    self.handshake_complete = true;
                    progress.just_completed = true;
                }
                Err(e) if is_retry(e.code()) => return Ok(progress),
                Err(e) => return Err(self.handshake_error(&e)),
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

    /// Classifies a failed handshake, using what the SNI callback recorded.
    fn handshake_error(&self, error: &openssl::ssl::Error) -> TlsError {
        let mut tls_error = TlsError::from_ssl(error, true);
        match &self.role {
            Role::Server(_) => {
                if let Some(admission) = self.admission() {
                    if admission.sni_rejected {
                        tls_error = tls_error.with_kind(TlsErrorKind::UnknownSni);
                    }
                }
            }
            Role::Client(_) => {
                // A verify failure on the client is about the *server's*
                // certificate: a handshake failure, not a bad client cert.
                if tls_error.kind() == TlsErrorKind::BadClientCert {
                    tls_error = tls_error.with_kind(TlsErrorKind::HandshakeFailed);
                }
            }
        }
        tls_error
    }

    /// Defence in depth after a successful server handshake: a domain that
    /// requires a client certificate must end up with a verified one, however
    /// the handshake got there (a resumed session included).
    fn check_admission(&self) -> Result<(), TlsError> {
        let Role::Server(gate) = &self.role else {
            return Ok(());
        };
        let Some(index) = self.admission().and_then(|a| a.domain) else {
            return Err(TlsError::new(
                TlsErrorKind::Internal,
                "handshake completed without a domain policy",
            ));
        };
        if gate.domain(index).client_auth == ClientAuth::Required && self.verified_peer().is_none()
        {
            return Err(TlsError::new(
                TlsErrorKind::NoClientCert,
                format!(
                    "domain `{}` requires a verified client certificate",
                    gate.domain(index).name
                ),
            ));
        }
        Ok(())
    }

    fn admission(&self) -> Option<&Admission> {
        self.stream
            .ssl()
            .ex_data(super::policy::admission_index().ok()?)
    }

    /// The peer's certificate, if one was presented and verified.
    fn verified_peer(&self) -> Option<openssl::x509::X509> {
        let ssl = self.stream.ssl();
        let cert = ssl.peer_certificate()?;
        (ssl.verify_result() == X509VerifyResult::OK).then_some(cert)
    }

    /// Queues plaintext for the peer. Before the handshake completes it is
    /// buffered inside and encrypted when the handshake finishes (see the
    /// module doc); after close() or a failure it is an error.
    pub fn send(&mut self, plaintext: &[u8]) -> Result<(), TlsError> {
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
            self.failed = Some(error.clone());
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

    /// Ciphertext waiting for the socket.
    pub fn outgoing(&self) -> &[u8] {
        let wire = self.stream.get_ref();
        &wire.outgoing[wire.outgoing_sent..]
    }

    /// Marks `n` bytes of [`outgoing`](Self::outgoing) as written.
    pub fn consume_outgoing(&mut self, n: usize) {
        let wire = self.stream.get_mut();
        wire.outgoing_sent = (wire.outgoing_sent + n).min(wire.outgoing.len());
        wire.release_drained();
    }

    /// Whether ciphertext is waiting for the socket.
    pub fn wants_write(&self) -> bool {
        !self.outgoing().is_empty()
    }

    /// Queues close_notify (an orderly shutdown); later sends fail. Before
    /// the handshake completes there is nothing to say, and after a failure
    /// the alert is already queued, so then it only marks the session closed.
    pub fn close(&mut self) {
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

    pub fn handshake_complete(&self) -> bool {
        self.handshake_complete
    }

    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The negotiated protocol version, e.g. `"TLSv1.3"`.
    pub fn version(&self) -> &'static str {
        self.stream.ssl().version_str()
    }

    /// Whether the handshake resumed an earlier session.
    pub fn session_reused(&self) -> bool {
        self.stream.ssl().session_reused()
    }

    /// The facts the handshake established, on top of `base` (addresses and
    /// backend). For a server session: transport (`Mtls` only when a client
    /// certificate was presented *and* verified for a domain that asks for
    /// one), SNI, ALPN, admitting domain, and the client certificate's CN and
    /// SHA-256 fingerprint. For a client session: transport `Tls`, the SNI
    /// sent and the ALPN protocol chosen.
    pub fn info(&self, base: &ConnectionInfo) -> ConnectionInfo {
        let ssl = self.stream.ssl();
        let mut info = base.clone();
        info.transport = Transport::Tls;
        info.sni = ssl.servername(NameType::HOST_NAME).map(str::to_owned);
        info.alpn = ssl
            .selected_alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        info.domain = None;
        info.client_cn = None;
        info.client_fingerprint = None;
        if let Role::Server(gate) = &self.role {
            let domain = self
                .admission()
                .and_then(|a| a.domain)
                .map(|i| gate.domain(i));
            info.domain = domain.map(|d| d.name.clone());
            let asks = domain.is_some_and(|d| d.client_auth != ClientAuth::None);
            if let (true, Some(cert)) = (asks, self.verified_peer()) {
                info.transport = Transport::Mtls;
                info.client_cn = common_name(&cert);
                info.client_fingerprint = fingerprint(&cert);
            }
        }
        info
    }

    /// For a client session, the id of the `ClientTls` that built it.
    pub(crate) fn client_origin(&self) -> Option<u64> {
        match self.role {
            Role::Client(id) => Some(id),
            Role::Server(_) => None,
        }
    }

    pub(crate) fn ssl(&self) -> &openssl::ssl::SslRef {
        self.stream.ssl()
    }
}

fn is_retry(code: ErrorCode) -> bool {
    code == ErrorCode::WANT_READ || code == ErrorCode::WANT_WRITE
}

/// The subject's first commonName, if it is valid UTF-8.
fn common_name(cert: &X509Ref) -> Option<String> {
    let entry = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next()?;
    entry.data().to_string().ok()
}

/// SHA-256 of the DER certificate as lowercase hex bytes joined by `:`.
pub(crate) fn fingerprint(cert: &X509Ref) -> Option<String> {
    let digest = cert.digest(MessageDigest::sha256()).ok()?;
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02x}")).collect();
    Some(hex.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::dev_certs::{CLIENT_CERT_PEM, OTHER_CLIENT_CERT_PEM};
    use crate::tls::test_support::*;
    use crate::tls::{TlsGate, TlsVersion};
    use openssl::x509::X509;

    fn cert_fingerprint(pem: &[u8]) -> String {
        fingerprint(&X509::from_pem(pem).expect("pem")).expect("digest")
    }

    /// Drives a handshake that the server is expected to refuse, stopping at
    /// the server's error so the test can look at what it left to send.
    fn until_server_fails(pair: &mut Pair) -> TlsError {
        for _ in 0..100 {
            let _ = pair.client.process(&mut pair.client_plain);
            shuttle(&mut pair.client, &mut pair.server, usize::MAX);
            if let Err(e) = pair.server.process(&mut pair.server_plain) {
                return e;
            }
            // The client may finish (TLS 1.3) or fail once the alert lands.
            shuttle(&mut pair.server, &mut pair.client, usize::MAX);
        }
        panic!("the server never failed");
    }

    #[test]
    fn each_policy_reports_the_right_facts() {
        let gate = three_domain_gate();
        let cases = [
            ("localhost", ClientCert::None, Transport::Tls),
            ("localhost", ClientCert::Dev, Transport::Tls),
            ("optional.localhost", ClientCert::None, Transport::Tls),
            ("optional.localhost", ClientCert::Dev, Transport::Mtls),
            ("mtls.localhost", ClientCert::Dev, Transport::Mtls),
        ];
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            for (sni, cert, transport) in cases {
                let pair = connected(&gate, &client_with_version(cert, version), Some(sni));
                let info = pair.server.info(&base_info());
                let what = format!("{sni} {cert:?} {version:?}");
                assert_eq!(info.transport, transport, "{what}");
                assert_eq!(info.sni.as_deref(), Some(sni), "{what}");
                assert_eq!(info.domain.as_deref(), Some(sni), "{what}");
                assert_eq!(info.alpn.as_deref(), Some("http/1.1"), "{what}");
                if transport == Transport::Mtls {
                    assert_eq!(info.client_cn.as_deref(), Some("dev-client"), "{what}");
                    let expected = cert_fingerprint(CLIENT_CERT_PEM);
                    assert_eq!(info.client_fingerprint.as_deref(), Some(expected.as_str()));
                    assert_eq!(expected.len(), 32 * 3 - 1);
                    assert!(expected
                        .bytes()
                        .all(|b| b == b':' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
                } else {
                    // A certificate nobody asked for is not reported.
                    assert_eq!(info.client_cn, None, "{what}");
                    assert_eq!(info.client_fingerprint, None, "{what}");
                }
                let client_info = pair.client.info(&base_info());
                assert_eq!(client_info.transport, Transport::Tls);
                assert_eq!(client_info.alpn.as_deref(), Some("http/1.1"));
            }
        }
    }

    #[test]
    fn a_required_certificate_that_is_missing_fails_with_an_alert_to_flush() {
        let gate = three_domain_gate();
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            let mut pair = Pair::new(
                &gate,
                &client_with_version(ClientCert::None, version),
                Some("mtls.localhost"),
            );
            let error = until_server_fails(&mut pair);
            assert_eq!(error.reason(), "no_client_cert", "{version:?}: {error}");
            assert!(
                !pair.server.outgoing().is_empty(),
                "{version:?}: alert must be queued"
            );
            // The error sticks, and the client learns from the alert.
            assert_eq!(pair.server.process(&mut Vec::new()).unwrap_err(), error);
            shuttle(&mut pair.server, &mut pair.client, usize::MAX);
            // TLS 1.2 fails the client's handshake; a TLS 1.3 client has
            // already finished when the server's verdict arrives.
            let client_error = pair.client.process(&mut Vec::new()).unwrap_err();
            assert!(client_error.message().contains("alert"), "{client_error}");
            let expected = match version {
                TlsVersion::Tls12 => "handshake_failed",
                TlsVersion::Tls13 => "protocol_error",
            };
            assert_eq!(client_error.reason(), expected, "{client_error}");
        }
    }

    #[test]
    fn a_certificate_from_a_foreign_ca_is_rejected() {
        let gate = three_domain_gate();
        for sni in ["optional.localhost", "mtls.localhost"] {
            for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
                let mut pair = Pair::new(
                    &gate,
                    &client_with_version(ClientCert::Foreign, version),
                    Some(sni),
                );
                let error = until_server_fails(&mut pair);
                assert_eq!(
                    error.reason(),
                    "bad_client_cert",
                    "{sni} {version:?}: {error}"
                );
                assert!(!pair.server.outgoing().is_empty());
            }
        }
        // ...while a domain without client auth ignores it entirely.
        let pair = connected(&gate, &client(ClientCert::Foreign), Some("localhost"));
        let info = pair.server.info(&base_info());
        assert_eq!(info.transport, Transport::Tls);
        assert_eq!(info.client_fingerprint, None);
        assert_ne!(
            Some(cert_fingerprint(OTHER_CLIENT_CERT_PEM)),
            info.client_fingerprint
        );
    }

    #[test]
    fn sni_fallbacks_default_or_reject() {
        let gate = three_domain_gate();
        // No SNI: defaults to localhost.
        let pair = connected(&gate, &client(ClientCert::None), None);
        let info = pair.server.info(&base_info());
        assert_eq!(info.domain.as_deref(), Some("localhost"));
        assert_eq!(info.sni, None);
        // Unknown SNI: rejected with unrecognized_name.
        let tls = crate::tls::ClientConfig {
            verify_hostname: false,
            ..client_config(ClientCert::None)
        }
        .build()
        .unwrap();
        let mut pair = Pair::new(&gate, &tls, Some("nosuch.example"));
        let error = until_server_fails(&mut pair);
        assert_eq!(error.reason(), "unknown_sni", "{error}");
        shuttle(&mut pair.server, &mut pair.client, usize::MAX);
        let client_error = pair.client.process(&mut Vec::new()).unwrap_err();
        assert!(
            client_error.message().contains("unrecognized name"),
            "{client_error}"
        );
        // The development gate defaults unknown names to localhost instead.
        let dev = TlsGate::development().unwrap();
        let pair = connected(&dev, &tls, Some("nosuch.example"));
        assert_eq!(
            pair.server.info(&base_info()).domain.as_deref(),
            Some("localhost")
        );
    }

    #[test]
    fn forced_versions_are_negotiated() {
        let gate = three_domain_gate();
        for (version, name) in [
            (TlsVersion::Tls12, "TLSv1.2"),
            (TlsVersion::Tls13, "TLSv1.3"),
        ] {
            let pair = connected(
                &gate,
                &client_with_version(ClientCert::None, version),
                Some("localhost"),
            );
            assert_eq!(pair.server.version(), name);
            assert_eq!(pair.client.version(), name);
        }
    }

    #[test]
    fn handshake_and_data_survive_one_byte_delivery() {
        let gate = three_domain_gate();
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            let tls = client_with_version(ClientCert::Dev, version);
            let mut pair = Pair::new(&gate, &tls, Some("mtls.localhost"));
            let (c, s) = pair.run_with_chunk(1);
            c.unwrap();
            s.unwrap();
            assert!(pair.server_progress.handshake_complete);
            pair.client.send(b"one byte at a time").unwrap();
            pair.server.send(b"and back").unwrap();
            let (c, s) = pair.run_with_chunk(1);
            c.unwrap();
            s.unwrap();
            assert_eq!(pair.server_plain, b"one byte at a time");
            assert_eq!(pair.client_plain, b"and back");
        }
    }

    #[test]
    fn a_record_split_in_two_at_every_point_decrypts() {
        let gate = three_domain_gate();
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            let mut pair = connected(
                &gate,
                &client_with_version(ClientCert::None, version),
                Some("localhost"),
            );
            let message = b"a record split at every boundary";
            pair.client.send(message).unwrap();
            let record_len = pair.client.outgoing().len();
            assert!(record_len > message.len());
            let (c, s) = pair.run();
            c.unwrap();
            s.unwrap();
            assert_eq!(pair.server_plain, message);
            // Equal plaintexts give equal-length records: record i is split
            // at byte i, so one connection covers every split point.
            for split in 0..=record_len {
                pair.client.send(message).unwrap();
                let record = pair.client.outgoing().to_vec();
                pair.client.consume_outgoing(record.len());
                assert_eq!(record.len(), record_len);
                let mut plain = Vec::new();
                pair.server.receive(&record[..split]);
                pair.server.process(&mut plain).unwrap();
                if split < record_len {
                    assert!(plain.is_empty(), "{version:?} split {split}");
                }
                pair.server.receive(&record[split..]);
                pair.server.process(&mut plain).unwrap();
                assert_eq!(plain, message, "{version:?} split {split}");
            }
        }
    }

    #[test]
    fn fill_incoming_reads_straight_into_the_buffer() {
        let gate = three_domain_gate();
        let mut pair = connected(&gate, &client(ClientCert::None), Some("localhost"));
        pair.client.send(b"via fill_incoming").unwrap();
        let wire = pair.client.outgoing().to_vec();
        pair.client.consume_outgoing(wire.len());
        let mut offered = 0;
        let n = pair
            .server
            .fill_incoming(|buf| {
                offered = buf.len();
                buf[..wire.len()].copy_from_slice(&wire);
                Ok(wire.len())
            })
            .unwrap();
        assert_eq!(n, wire.len());
        assert!(offered >= (1 << 14) + 5);
        let would_block = pair
            .server
            .fill_incoming(|_| Err(io::ErrorKind::WouldBlock.into()));
        assert_eq!(would_block.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        let mut plain = Vec::new();
        pair.server.process(&mut plain).unwrap();
        assert_eq!(plain, b"via fill_incoming");
    }

    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn four_mebibytes_each_way_arrive_intact() {
        let gate = three_domain_gate();
        let mut pair = connected(&gate, &client(ClientCert::None), Some("localhost"));
        let up = pattern(4 << 20, 1);
        let down = pattern(4 << 20, 2);
        pair.client.send(&up).unwrap();
        pair.server.send(&down).unwrap();
        // Realistic socket-sized pieces.
        let (c, s) = pair.run_with_chunk(64 * 1024);
        c.unwrap();
        s.unwrap();
        assert!(pair.server_plain == up, "upload corrupted");
        assert!(pair.client_plain == down, "download corrupted");
    }

    #[test]
    fn data_sent_before_the_handshake_is_flushed_after_it() {
        let gate = three_domain_gate();
        let mut pair = Pair::new(&gate, &client(ClientCert::None), Some("localhost"));
        pair.client.send(b"early request").unwrap();
        pair.server.send(b"greeting").unwrap();
        let (c, s) = pair.run();
        c.unwrap();
        s.unwrap();
        assert_eq!(pair.server_plain, b"early request");
        assert_eq!(pair.client_plain, b"greeting");
    }

    #[test]
    fn close_notify_is_seen_from_either_side() {
        let gate = three_domain_gate();
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            let tls = client_with_version(ClientCert::None, version);
            let mut pair = connected(&gate, &tls, Some("localhost"));
            pair.client.send(b"last words").unwrap();
            pair.client.close();
            assert_eq!(pair.client.send(b"more").unwrap_err().reason(), "closed");
            let (c, s) = pair.run();
            c.unwrap();
            s.unwrap();
            assert_eq!(pair.server_plain, b"last words");
            assert!(pair.server_progress.peer_closed && pair.server.peer_closed());
            assert!(!pair.client_progress.peer_closed);

            let mut pair = connected(&gate, &tls, Some("localhost"));
            pair.server.close();
            let (c, s) = pair.run();
            c.unwrap();
            s.unwrap();
            assert!(pair.client_progress.peer_closed, "{version:?}");
        }
    }

    #[test]
    fn garbage_after_a_plausible_header_is_a_clean_error() {
        let gate = three_domain_gate();
        let garbage_bodies: [&[u8]; 4] = [
            &[0xff; 64],
            &[0x00; 64],
            b"\x01\x00\x00\x3cGET / HTTP/1.1\r\nHost: localhost\r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxxx",
            &[0x01, 0xff, 0xff, 0xff, 0x03, 0x03, 0x00, 0x00],
        ];
        for body in garbage_bodies {
            let mut server = gate.new_session().unwrap();
            let mut record = vec![0x16, 0x03, 0x01];
            record.extend_from_slice(&(body.len() as u16).to_be_bytes());
            record.extend_from_slice(body);
            server.receive(&record);
            let error = server.process(&mut Vec::new()).unwrap_err();
            assert!(
                ["handshake_failed", "bad_record"].contains(&error.reason()),
                "{error}"
            );
        }
        // Pseudo-random garbage of many lengths, fed in odd pieces.
        for len in [1usize, 5, 17, 100, 1000, 5000] {
            let mut server = gate.new_session().unwrap();
            let mut bytes = vec![0x16, 0x03, 0x01];
            bytes.extend(pattern(len, len as u32));
            let mut result = Ok(Progress::default());
            for piece in bytes.chunks(7) {
                server.receive(piece);
                result = server.process(&mut Vec::new());
                if result.is_err() {
                    break;
                }
            }
            // Either still waiting for a record that will never complete, or
            // a clean error; never a panic.
            if let Err(error) = result {
                assert!(!error.reason().is_empty());
            }
        }
    }

    #[test]
    fn an_oversized_record_is_a_bad_record() {
        let gate = three_domain_gate();
        let mut server = gate.new_session().unwrap();
        server.receive(&[0x16, 0x03, 0x01, 0xff, 0xff, 0x01]);
        let error = server.process(&mut Vec::new()).unwrap_err();
        assert_eq!(error.reason(), "bad_record", "{error}");
        // And after the handshake, an application-data header claiming more
        // than a record may hold.
        let mut pair = connected(&gate, &client(ClientCert::None), Some("localhost"));
        pair.server.receive(&[0x17, 0x03, 0x03, 0xff, 0xff]);
        let error = pair.server.process(&mut Vec::new()).unwrap_err();
        assert_eq!(error.reason(), "bad_record", "{error}");
        assert!(!pair.server.outgoing().is_empty(), "an alert is queued");
    }

    #[test]
    fn renegotiation_is_refused() {
        extern "C" {
            fn SSL_renegotiate(ssl: *mut openssl_sys::SSL) -> std::os::raw::c_int;
        }
        let gate = three_domain_gate();
        let tls = client_with_version(ClientCert::None, TlsVersion::Tls12);
        let mut pair = connected(&gate, &tls, Some("localhost"));
        let ssl: *const openssl::ssl::SslRef = pair.client.ssl();
        // SAFETY: an `&SslRef` is the `SSL*` itself (the openssl crate's
        // foreign-type references are the raw pointer), the SSL is alive for
        // the call, and SSL_renegotiate only sets a flag on a TLS 1.2 client
        // so that its next I/O sends a new ClientHello.
        let marked = unsafe { SSL_renegotiate(ssl as *mut openssl_sys::SSL) };
        assert_eq!(marked, 1);
        // The client's next write starts the renegotiation.
        pair.client.send(b"x").unwrap();
        let (client_result, server_result) = pair.run();
        // The server never renegotiates: it refuses (no_renegotiation
        // warning), which the OpenSSL client treats as fatal.
        // "no renegotiation" is the server's refusal as the client saw it.
        let refusal = client_result.expect_err("client should see the refusal");
        assert!(refusal.message().contains("no renegotiation"), "{refusal}");
        // The client then aborts, so the server sees its fatal alert.
        if let Err(error) = server_result {
            assert!(error.message().contains("alert"), "{error}");
        }
        assert!(pair.server_plain.is_empty());
    }

    /// Heap bytes in use (glibc, all arenas), counting OpenSSL's C
    /// allocations as well as Rust's.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn heap_in_use() -> usize {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        unsafe { libc::mallinfo2() }.uordblks
    }

    /// Measures the memory an idle server session holds after its
    /// handshake. Ignored by default because other tests allocating in
    /// parallel would distort it; run it alone:
    /// `cargo test --lib idle_session_memory -- --ignored --nocapture`
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    #[ignore]
    fn idle_session_memory() {
        const SESSIONS: usize = 500;
        let gate = TlsGate::development().unwrap();
        let cases = [
            (
                "TLS 1.3, no client cert",
                TlsVersion::Tls13,
                ClientCert::None,
                "localhost",
            ),
            (
                "TLS 1.2, no client cert",
                TlsVersion::Tls12,
                ClientCert::None,
                "localhost",
            ),
            (
                "TLS 1.3, mTLS",
                TlsVersion::Tls13,
                ClientCert::Dev,
                "mtls.localhost",
            ),
        ];
        let before = heap_in_use();
        let fresh: Vec<TlsSession> = (0..SESSIONS).map(|_| gate.new_session().unwrap()).collect();
        let bare = heap_in_use().saturating_sub(before) / SESSIONS;
        eprintln!("fresh server session before any byte (SSL_new and friends): {bare} bytes");
        drop(fresh);
        for (what, version, cert, sni) in cases {
            let tls = client_with_version(cert, version);
            // Warm-up: OpenSSL's lazily built tables and per-thread state.
            for _ in 0..20 {
                connected(&gate, &tls, Some(sni));
            }
            let before = heap_in_use();
            let mut servers = Vec::with_capacity(SESSIONS);
            for _ in 0..SESSIONS {
                let mut pair = connected(&gate, &tls, Some(sni));
                pair.client.send(b"ping").unwrap();
                pair.server.send(b"pong").unwrap();
                let (c, s) = pair.run();
                c.unwrap();
                s.unwrap();
                assert!(pair.server.outgoing().is_empty());
                let wire = pair.server.stream.get_ref();
                assert_eq!(wire.incoming.capacity() + wire.outgoing.capacity(), 0);
                assert_eq!(pair.server.unsent.capacity(), 0);
                servers.push(Box::new(pair.server));
            }
            let after = heap_in_use();
            let per_session = (after.saturating_sub(before)) / SESSIONS;
            eprintln!("{what}: {per_session} bytes of heap per idle server session (incl. its cached session)");
            if cert == ClientCert::None {
                // The 12 KiB goal is below what OpenSSL 3.0 needs (a bare
                // SSL_new is ~9 KiB, printed above); this bound catches a
                // regression such as a record buffer kept while idle.
                assert!(per_session <= 16 * 1024, "{what}: {per_session} bytes");
            }
            drop(servers);
        }
    }
}
