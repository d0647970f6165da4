//! The numbers that bound every connection: its deadlines and its buffers.
//!
//! A server that is polite to well-behaved clients must also be firm with
//! the others: one that never finishes its handshake, one that stops
//! reading, one that sends forever without waiting for answers. Each of
//! those is stopped by one number here, and the one idea is that **every
//! resource a peer can make the server hold has a bound, in bytes or in
//! time**. The rules that use the time limits are stated once, in
//! `connection/deadlines.rs`; the byte limits are applied where bytes are
//! queued, in `connection/mod.rs`.

use std::time::Duration;

/// Limits that shape every connection's buffers and deadlines.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// From accept until admitted: the first bytes and any TLS handshake.
    pub handshake_timeout: Duration,
    /// An admitted connection with no byte moving in either direction.
    pub idle_timeout: Duration,
    /// Output queued (or held back for the peer) without the peer reading
    /// any of it.
    pub write_timeout: Duration,
    /// The longest a close may linger: from the moment our FIN is sent,
    /// however the peer trickles bytes meanwhile (nginx's `lingering_time`).
    pub linger_timeout: Duration,
    /// On a listener that allows both, how long to wait for a client's first
    /// bytes before admitting it as plaintext, so that a service that speaks
    /// first (chat's greeting) works for clients that wait to be spoken to.
    /// `None`: wait for the client up to the handshake timeout.
    pub plaintext_after: Option<Duration>,
    /// Stop reading from a connection while this much output is queued for
    /// it (back-pressure on a peer that sends but does not read), and tell
    /// the service to stop producing ([`Session::output_full`]).
    ///
    /// [`Session::output_full`]: crate::service::Session::output_full
    pub output_high_water: usize,
    /// Drop a broadcast receiver whose queued output exceeds this.
    pub output_hard_limit: usize,
    /// Close a connection whose service leaves more unconsumed input while
    /// it still has room to answer.
    pub max_input: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(30),
            linger_timeout: Duration::from_secs(2),
            plaintext_after: None,
            output_high_water: 256 * 1024,
            output_hard_limit: 4 * 1024 * 1024,
            max_input: 64 * 1024,
        }
    }
}
