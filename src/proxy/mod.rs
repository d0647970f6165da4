//! The PROXY protocol (versions 1 and 2), parsed strictly: the header a
//! load balancer puts in front of a connection to say whom it is for.
//!
//! HAProxy's specification (`proxy-protocol.txt`) is followed to the
//! letter, because a lenient parser of this header is a way to lie about
//! one's address: the v2 signature, version and command, the address
//! family, a length that is always honoured (the LOCAL command included),
//! TLVs that must fit exactly in it, a CRC32C that must match when sent,
//! and a v1 line of at most 107 bytes ending in CRLF. The one idea:
//! **a partial header is never processed.** [`parse`] answers
//! [`Parsed::NeedMore`] until the whole header is there, and only then
//! decides; nothing of a header is believed before all of it is checked.
//!
//! This module only parses; who may send a header (`trusted_proxies`) and
//! what follows from it is the connection core's business
//! (`engine/connection/proxy_stage.rs`).

mod crc32c;
mod v1;
mod v2;

use std::fmt;
use std::net::SocketAddr;

/// Which versions a listener accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versions {
    V1,
    V2,
    Any,
}

/// The v1 header's first bytes.
pub const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 line, CRLF included.
pub const V1_MAX_LINE: usize = 107;
/// The v2 header's 12-byte signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The outcome of parsing what has arrived so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole header yet, and nothing wrong so far.
    NeedMore,
    /// A whole, valid header of this many bytes (boxed: a header with its
    /// TLVs is large, and the other outcomes are small).
    Header(Box<Header>, usize),
    /// Not a valid header; the error says why.
    Invalid(ProxyError),
}

/// Why bytes are not a valid PROXY header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyError(pub &'static str);

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// What a valid header says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// 1 or 2.
    pub version: u8,
    /// The connection's real source (the client), when the header names
    /// one: `None` for v2 LOCAL (the proxy's own health check), for an
    /// unspecified or Unix family, and for v1 `UNKNOWN`; the TCP peer
    /// stands for the client then.
    pub source: Option<SocketAddr>,
    /// The address the client connected to, when named.
    pub destination: Option<SocketAddr>,
    /// v2 only: the TLVs this server understands.
    pub tlvs: Tlvs,
}

/// The v2 TLVs exposed to services (`ConnectionInfo::proxy`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tlvs {
    /// PP2_TYPE_ALPN: the protocol the client negotiated with the proxy.
    pub alpn: Option<Vec<u8>>,
    /// PP2_TYPE_AUTHORITY: the host name the client asked for (SNI).
    pub authority: Option<String>,
    /// PP2_TYPE_UNIQUE_ID: the proxy's id for the connection (≤ 128 bytes).
    pub unique_id: Option<Vec<u8>>,
    /// PP2_TYPE_SSL: what the proxy knows of the client's TLS.
    pub ssl: Option<SslTlv>,
}

/// PP2_TYPE_SSL and its sub-TLVs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SslTlv {
    /// PP2_CLIENT_SSL (1), PP2_CLIENT_CERT_CONN (2), PP2_CLIENT_CERT_SESS (4).
    pub client: u8,
    /// 0 when the client presented a certificate that verified.
    pub verify: u32,
    pub version: Option<String>,
    pub cn: Option<String>,
    pub cipher: Option<String>,
    pub sig_alg: Option<String>,
    pub key_alg: Option<String>,
}

impl SslTlv {
    /// The client connected over TLS.
    pub fn is_tls(&self) -> bool {
        self.client & 0x01 != 0
    }

    /// The client sent a certificate (on this connection or its session)
    /// and it verified.
    pub fn client_cert_verified(&self) -> bool {
        self.client & 0x06 != 0 && self.verify == 0
    }
}

/// What the first bytes look like, before any parsing: used to refuse a
/// header from a peer that may not send one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signature {
    /// Neither signature.
    No,
    /// Too few bytes to tell; they begin one of the signatures.
    Partial,
    V1,
    V2,
}

/// Whether `bytes` start with a PROXY signature.
pub fn signature(bytes: &[u8]) -> Signature {
    let matches = |sig: &[u8]| {
        let n = bytes.len().min(sig.len());
        bytes[..n] == sig[..n]
    };
    let v1 = matches(V1_PREFIX);
    let v2 = matches(&V2_SIGNATURE);
    match (v1, v2) {
        (true, _) if bytes.len() >= V1_PREFIX.len() => Signature::V1,
        (_, true) if bytes.len() >= V2_SIGNATURE.len() => Signature::V2,
        (true, _) | (_, true) => Signature::Partial,
        _ => Signature::No,
    }
}

/// Parses the header at the start of `bytes`, accepting `versions`.
pub fn parse(bytes: &[u8], versions: Versions) -> Parsed {
    match signature(bytes) {
        Signature::Partial => Parsed::NeedMore,
        Signature::No => Parsed::Invalid(ProxyError("no PROXY header (neither signature)")),
        Signature::V1 if versions == Versions::V2 => {
            Parsed::Invalid(ProxyError("a v1 header where only v2 is accepted"))
        }
        Signature::V2 if versions == Versions::V1 => {
            Parsed::Invalid(ProxyError("a v2 header where only v1 is accepted"))
        }
        Signature::V1 => v1::parse(bytes),
        Signature::V2 => v2::parse(bytes),
    }
}

#[cfg(test)]
mod tests;
