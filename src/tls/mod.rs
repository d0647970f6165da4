//! The TLS gate: plaintext, TLS or mutual TLS, decided per connection on one
//! port.
//!
//! A connection's life through the gate:
//!
//! 1. **The first bytes decide plaintext vs TLS.** [`sniff::classify`] looks
//!    at no more than six bytes: a TLS client opens with a handshake record
//!    holding a ClientHello; anything else is plaintext. It waits only while
//!    the bytes still fit a ClientHello, so the verdict is the same however
//!    the network splits them.
//! 2. **The SNI picks the domain policy.** [`TlsGate`] starts each TLS
//!    connection on an initial context; as soon as the ClientHello arrives a
//!    callback looks its server name up in the shared
//!    [`NameTable`](crate::domains::NameTable) (exact names, then
//!    `*.suffix`) and switches to that domain's certificate, client CA,
//!    verify mode and session id context, or rejects the handshake.
//!    Resumption never crosses domains (see [`policy`]).
//! 3. **The engine is fed bytes and never touches a socket.** A
//!    [`TlsSession`] takes ciphertext in, hands plaintext and ciphertext out,
//!    and reports what the handshake established as a
//!    [`ConnectionInfo`](crate::connection_info::ConnectionInfo): `Tls`, or
//!    `Mtls` only for a verified client certificate, plus SNI, ALPN, domain,
//!    client CN and fingerprint.
//!
//! [`ClientConfig`] builds the client side of the same engine for the load
//! generator and tests.

pub mod client;
pub mod dev_certs;
pub mod error;
pub mod policy;
pub mod session;
pub mod sniff;

#[cfg(test)]
pub(crate) mod test_support;

pub use client::{ClientConfig, ClientSession, ClientTls, Pem, TlsVersion};
pub use error::{TlsError, TlsErrorKind};
pub use policy::{Domain, DomainSpec, GateOptions, SniFallback, TlsGate};
pub use session::{Progress, TlsSession, MAX_RECORD_ON_WIRE};
pub use sniff::{classify, first_record_len, FirstBytes};
