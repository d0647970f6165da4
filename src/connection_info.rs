//! What the server knows about a connection, handed to every service.
//!
//! The TLS gate decides *how* a connection was admitted (plaintext, TLS, or
//! TLS with a verified client certificate) and for *which domain policy*. A
//! service must make its security decisions from this record, never from
//! what the client later claims (a `Host` header, say): the one idea here is
//! that **admission facts travel with the connection**.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// How a connection was admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// No encryption.
    Plain,
    /// TLS without a verified client certificate.
    Tls,
    /// TLS with a client certificate verified against the domain's CA.
    Mtls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Plain => "plain",
            Transport::Tls => "tls",
            Transport::Mtls => "mtls",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The facts a service may rely on.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The TCP peer: the client itself, or the proxy in front of it.
    pub peer: SocketAddr,
    /// The real client: the source a trusted proxy's PROXY header named,
    /// otherwise the TCP peer.
    pub client: SocketAddr,
    /// The PROXY header a trusted proxy sent (with its TLVs), if any.
    pub proxy: Option<Arc<crate::proxy::Header>>,
    pub local: SocketAddr,
    pub transport: Transport,
    /// The server name the client sent in its ClientHello, if any.
    pub sni: Option<String>,
    /// The protocol chosen by ALPN, if any.
    pub alpn: Option<String>,
    /// The name of the domain policy that admitted the TLS handshake (the
    /// policy's first name, e.g. `mtls.localhost` or `*.example.com`), or the
    /// default policy's name. `None` for plaintext.
    pub domain: Option<Arc<str>>,
    /// Subject common name of the verified client certificate.
    pub client_cn: Option<String>,
    /// SHA-256 fingerprint of the verified client certificate, lowercase hex
    /// bytes joined by `:`.
    pub client_fingerprint: Option<String>,
    /// The reactor backend serving this connection (`epoll`, `poll`, …).
    pub backend: &'static str,
}

impl ConnectionInfo {
    /// A plaintext connection's facts; the TLS gate fills in the rest.
    pub fn plain(peer: SocketAddr, local: SocketAddr, backend: &'static str) -> ConnectionInfo {
        ConnectionInfo {
            peer,
            client: peer,
            proxy: None,
            local,
            transport: Transport::Plain,
            sni: None,
            alpn: None,
            domain: None,
            client_cn: None,
            client_fingerprint: None,
            backend,
        }
    }
}
