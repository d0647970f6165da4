//! The TLS gate: plaintext, TLS or mutual TLS, decided per connection on one
//! port.
//!
//! A connection's life through the gate:
//!
//! 1. **The first bytes decide plaintext vs TLS.** [`sniff::classify`] looks
//!    at the record header: a TLS client opens with a handshake record;
//!    anything else is plaintext. The engine then holds the first record
//!    until it is whole ([`first_record_len`]).
//! 2. **The ClientHello picks the domain before any TLS state exists.**
//!    [`TlsGate::accept`] parses the held record ([`client_hello`]), looks
//!    its server name up in the domain table ([`table`]: exact names, then
//!    `*.suffix`, then the fallbacks) and creates the connection's `SSL`
//!    from that domain's own context ([`contexts`]): its certificate,
//!    client-CA policy, ciphers ([`profile`]), session cache and ticket
//!    keys ([`tickets`]). A hello it will not serve is refused with an
//!    alert ([`Refusal`]) and counted ([`TlsCounters`]).
//! 3. **The engine is fed bytes and never touches a socket.** A
//!    [`TlsSession`] ([`engine`] plus its side) takes ciphertext in, hands
//!    plaintext and ciphertext out, and reports what the handshake
//!    established as a [`ConnectionInfo`](crate::connection_info::ConnectionInfo):
//!    `Tls`, or `Mtls` only for a verified client certificate, plus SNI,
//!    ALPN, domain, client CN and fingerprint.
//!
//! Modules depend downwards only: `error`, `counters`, `client_hello`,
//! `refusal`, `engine` and `profile` know nothing of domains; `tickets` and
//! `contexts` build one domain's OpenSSL context; `table` holds them;
//! `session` adds a side to the engine; `admission` ties them together.
//! [`ClientConfig`] builds the client side of the same engine for the load
//! generator and tests.

pub mod admission;
pub mod client;
pub mod client_hello;
pub mod contexts;
pub mod counters;
pub mod dev_certs;
pub mod domain;
pub mod engine;
pub mod error;
pub mod hello_builder;
pub mod profile;
pub mod refusal;
pub mod session;
pub mod setup;
pub mod sniff;
pub mod table;
pub mod tickets;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

pub use admission::{GateOptions, TlsGate};
pub use client::{ClientConfig, ClientSession, ClientTls, Pem, TlsVersion};
pub use counters::TlsCounters;
pub use domain::{Domain, DomainSpec, SniFallback};
pub use engine::{Progress, MAX_RECORD_ON_WIRE};
pub use error::{TlsError, TlsErrorKind};
pub use profile::{CipherChoice, Profile};
pub use refusal::{Alert, Refusal};
pub use session::TlsSession;
pub use sniff::{classify, first_record_len, FirstBytes};
pub use tickets::{KeyFile, TicketSettings};
