//! One TLS connection as the rest of the server sees it: the byte-driven
//! engine plus what its side adds.
//!
//! [`TlsSession`] is [`TlsEngine`] with a side. A server session knows the
//! domain that admitted it (fixed when the gate chose it from the
//! ClientHello, and kept even if the domain table is replaced later) and
//! the gate's counters; a client session knows the `ClientTls` that made
//! it. The one idea: **the engine moves bytes; the side decides what a
//! finished handshake means** — for a server, that a domain requiring a
//! client certificate really has a verified one (however the handshake got
//! there, a resumed session included), and which facts to report.
//!
//! The caller's loop: put ciphertext in ([`receive`](TlsSession::receive)
//! or [`fill_incoming`](TlsSession::fill_incoming)), call
//! [`process`](TlsSession::process) to advance the handshake and collect
//! plaintext, [`send`](TlsSession::send) plaintext, write
//! [`outgoing`](TlsSession::outgoing) to the socket, then
//! [`consume_outgoing`](TlsSession::consume_outgoing) what was written.
//! After an error, flush `outgoing()` (it may hold an alert) and close.
//! Sessions stay resumable only after an orderly close
//! ([`close`](TlsSession::close)): OpenSSL evicts the session of a
//! connection freed without one.

use std::io;
use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::ssl::{NameType, Ssl, SslRef};
use openssl::x509::{X509Ref, X509VerifyResult, X509};

use crate::connection_info::{ConnectionInfo, Transport};
use crate::domains::ClientAuth;

use super::contexts::hello_check_index;
use super::counters::TlsCounters;
use super::engine::{Progress, Role, TlsEngine};
use super::error::{TlsError, TlsErrorKind};
use super::table::DomainEntry;

/// A non-blocking TLS connection, client or server, driven by bytes.
pub struct TlsSession {
    engine: TlsEngine,
    side: Side,
}

enum Side {
    Server(ServerSide),
    /// The id of the `ClientTls` that built it.
    Client(u64),
}

struct ServerSide {
    domain: Arc<DomainEntry>,
    counters: Arc<TlsCounters>,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("server", &matches!(self.side, Side::Server(_)))
            .field("handshake_complete", &self.engine.handshake_complete())
            .field("peer_closed", &self.engine.peer_closed())
            .field("failed", &self.engine.failed())
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// A server session admitted under `domain` (its `Ssl` made from the
    /// domain's context, in accept state).
    pub(crate) fn server(
        ssl: Ssl,
        domain: Arc<DomainEntry>,
        counters: Arc<TlsCounters>,
    ) -> Result<TlsSession, TlsError> {
        Ok(TlsSession {
            engine: TlsEngine::new(ssl)?,
            side: Side::Server(ServerSide { domain, counters }),
        })
    }

    /// A client session (its `Ssl` in connect state) from `ClientTls` `id`.
    pub(crate) fn client_from_ssl(ssl: Ssl, id: u64) -> Result<TlsSession, TlsError> {
        Ok(TlsSession {
            engine: TlsEngine::new(ssl)?,
            side: Side::Client(id),
        })
    }

    /// Appends ciphertext read from the network.
    pub fn receive(&mut self, ciphertext: &[u8]) {
        self.engine.receive(ciphertext);
    }

    /// Lets the caller read from the socket straight into the incoming
    /// buffer: `read` gets spare space at least one maximal record long and
    /// returns how many bytes it wrote there (0 means end of stream). Errors,
    /// `WouldBlock` included, are passed through untouched.
    pub fn fill_incoming(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.engine.fill_incoming(read)
    }

    /// Advances the handshake and decrypts every complete record buffered,
    /// appending plaintext to `plaintext_out`. Wanting more input is not an
    /// error: the call returns and the next one continues. After an error the
    /// session is dead; [`outgoing`](Self::outgoing) may still hold an alert
    /// to flush.
    pub fn process(&mut self, plaintext_out: &mut Vec<u8>) -> Result<Progress, TlsError> {
        self.engine.process(plaintext_out, &mut self.side)
    }

    /// Queues plaintext for the peer. Before the handshake completes it is
    /// buffered inside and encrypted when the handshake finishes; after
    /// close() or a failure it is an error.
    pub fn send(&mut self, plaintext: &[u8]) -> Result<(), TlsError> {
        self.engine.send(plaintext, &mut self.side)
    }

    /// Ciphertext waiting for the socket.
    pub fn outgoing(&self) -> &[u8] {
        self.engine.outgoing()
    }

    /// Marks `n` bytes of [`outgoing`](Self::outgoing) as written.
    pub fn consume_outgoing(&mut self, n: usize) {
        self.engine.consume_outgoing(n);
    }

    /// Whether ciphertext is waiting for the socket.
    pub fn wants_write(&self) -> bool {
        !self.outgoing().is_empty()
    }

    /// Queues close_notify (an orderly shutdown); later sends fail. Before
    /// the handshake completes there is nothing to say, and after a failure
    /// the alert is already queued, so then it only marks the session closed.
    pub fn close(&mut self) {
        self.engine.close();
    }

    pub fn handshake_complete(&self) -> bool {
        self.engine.handshake_complete()
    }

    pub fn peer_closed(&self) -> bool {
        self.engine.peer_closed()
    }

    /// The negotiated protocol version, e.g. `"TLSv1.3"`.
    pub fn version(&self) -> &'static str {
        self.ssl().version_str()
    }

    /// Whether the handshake resumed an earlier session.
    pub fn session_reused(&self) -> bool {
        self.ssl().session_reused()
    }

    /// The facts the handshake established, on top of `base` (addresses and
    /// backend). For a server session: transport (`Mtls` only when a client
    /// certificate was presented *and* verified for a domain that asks for
    /// one), SNI, ALPN, admitting domain, and the client certificate's CN and
    /// SHA-256 fingerprint. For a client session: transport `Tls`, the SNI
    /// sent and the ALPN protocol chosen.
    pub fn info(&self, base: &ConnectionInfo) -> ConnectionInfo {
        let ssl = self.ssl();
        let mut info = base.clone();
        info.transport = Transport::Tls;
        info.sni = ssl.servername(NameType::HOST_NAME).map(str::to_owned);
        info.alpn = ssl
            .selected_alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        info.domain = None;
        info.client_cn = None;
        info.client_fingerprint = None;
        if let Side::Server(server) = &self.side {
            info.domain = Some(server.domain.name.clone());
            let asks = server.domain.client_auth != ClientAuth::None;
            if let (true, Some(cert)) = (asks, verified_peer(ssl)) {
                info.transport = Transport::Mtls;
                info.client_cn = common_name(&cert);
                info.client_fingerprint = fingerprint(&cert);
            }
        }
        info
    }

    /// For a client session, the id of the `ClientTls` that built it.
    pub(crate) fn client_origin(&self) -> Option<u64> {
        match self.side {
            Side::Client(id) => Some(id),
            Side::Server(_) => None,
        }
    }

    pub(crate) fn ssl(&self) -> &SslRef {
        self.engine.ssl()
    }

    #[cfg(test)]
    pub(crate) fn engine(&self) -> &TlsEngine {
        &self.engine
    }
}

impl Role for Side {
    /// Defence in depth after a successful server handshake: a domain that
    /// requires a client certificate must end up with a verified one.
    fn on_handshake_complete(&mut self, ssl: &SslRef) -> Result<(), TlsError> {
        let Side::Server(server) = self else {
            return Ok(());
        };
        if server.domain.client_auth == ClientAuth::Required && verified_peer(ssl).is_none() {
            return Err(TlsError::new(
                TlsErrorKind::NoClientCert,
                format!(
                    "domain `{}` requires a verified client certificate",
                    server.domain.name
                ),
            ));
        }
        server.counters.count_handshake(ssl.session_reused());
        Ok(())
    }

    fn classify_handshake_error(&self, ssl: &SslRef, error: TlsError) -> TlsError {
        match self {
            Side::Server(_) => {
                let changed = hello_check_index()
                    .ok()
                    .and_then(|slot| ssl.ex_data(slot))
                    .is_some_and(|check| check.sni_changed);
                if changed {
                    TlsError::new(
                        TlsErrorKind::SniChanged,
                        "the ClientHello after HelloRetryRequest names another server",
                    )
                } else {
                    error
                }
            }
            // A verify failure on the client is about the *server's*
            // certificate: a handshake failure, not a bad client cert.
            Side::Client(_) if error.kind() == TlsErrorKind::BadClientCert => {
                error.with_kind(TlsErrorKind::HandshakeFailed)
            }
            Side::Client(_) => error,
        }
    }

    fn on_failure(&mut self, error: &TlsError) {
        if let Side::Server(server) = self {
            server.counters.count_failure(error.kind());
        }
    }
}

/// The peer's certificate, if one was presented and verified.
fn verified_peer(ssl: &SslRef) -> Option<X509> {
    let cert = ssl.peer_certificate()?;
    (ssl.verify_result() == X509VerifyResult::OK).then_some(cert)
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
