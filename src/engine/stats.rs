//! Counters that say why connections ended, shared by all workers.
//!
//! An operator whose server drops connections needs to know *why* without
//! turning on debug logs: "handshake timeouts went up" is an answer, "some
//! connections closed" is not. Every close goes through one [`CloseReason`],
//! and every reason has a counter. The one idea: **make the reason a type**,
//! so no close path can forget to say why.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a connection ended (or was never admitted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side and everything queued was written.
    PeerClosed,
    /// The service asked to close, and everything queued was written.
    ServiceClosed,
    /// The server is shutting down.
    Shutdown,
    /// The peer reset the connection after a complete exchange: nothing was
    /// left to send and nothing received was left unanswered. Load
    /// generators and browsers end connections this way all the time.
    PeerReset,
    /// A socket call failed, or the peer reset the connection while bytes
    /// were still queued for it or unanswered.
    SocketError,
    /// Nothing (or not a whole handshake) arrived in time.
    HandshakeTimeout,
    /// No traffic for the idle timeout.
    IdleTimeout,
    /// Output was queued but the peer read none of it for the write timeout.
    WriteTimeout,
    /// Our FIN was sent but the peer neither closed nor went quiet within
    /// the linger timeout.
    LingerTimeout,
    /// A broadcast receiver fell too far behind and was dropped.
    SlowConsumer,
    /// The service left more unconsumed input than the limit allows.
    InputLimit,
    /// Plaintext arrived on a listener that only accepts TLS.
    PlaintextRefused,
    /// The TLS handshake failed (bad bytes, wrong or missing client
    /// certificate, unknown server name, …); the log line says which.
    TlsHandshakeFailed,
    /// A TLS record could not be processed after the handshake.
    TlsError,
    /// Accepted and closed at once: the `--max-conns` limit was reached.
    MaxConnections,
    /// Accepted and closed at once: the process ran out of descriptors.
    OutOfDescriptors,
    /// Closed before any byte was read: an access rule denies the client.
    AccessDenied,
    /// Accepted and closed at once: the listener's `max_connections`.
    ListenerMaxConnections,
    /// Closed at once: the client holds `max_connections_per_client`.
    ClientMaxConnections,
    /// Closed at once: the client connects faster than
    /// `accept_rate_per_client`.
    ClientAcceptRate,
    /// A PROXY header from a peer not in `trusted_proxies`: never believed.
    ProxyUntrusted,
    /// A trusted proxy sent no valid PROXY header (bad signature, version,
    /// command, family or length, or too long a v1 line); the log says which.
    ProxyInvalid,
    /// A trusted proxy's PROXY header did not arrive whole in
    /// `proxy_header_secs`.
    ProxyTimeout,
}

impl CloseReason {
    pub const ALL: [CloseReason; 23] = [
        CloseReason::PeerClosed,
        CloseReason::ServiceClosed,
        CloseReason::Shutdown,
        CloseReason::PeerReset,
        CloseReason::SocketError,
        CloseReason::HandshakeTimeout,
        CloseReason::IdleTimeout,
        CloseReason::WriteTimeout,
        CloseReason::LingerTimeout,
        CloseReason::SlowConsumer,
        CloseReason::InputLimit,
        CloseReason::PlaintextRefused,
        CloseReason::TlsHandshakeFailed,
        CloseReason::TlsError,
        CloseReason::MaxConnections,
        CloseReason::OutOfDescriptors,
        CloseReason::AccessDenied,
        CloseReason::ListenerMaxConnections,
        CloseReason::ClientMaxConnections,
        CloseReason::ClientAcceptRate,
        CloseReason::ProxyUntrusted,
        CloseReason::ProxyInvalid,
        CloseReason::ProxyTimeout,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::ServiceClosed => "service_closed",
            CloseReason::Shutdown => "shutdown",
            CloseReason::PeerReset => "peer_reset",
            CloseReason::SocketError => "socket_error",
            CloseReason::HandshakeTimeout => "handshake_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::WriteTimeout => "write_timeout",
            CloseReason::LingerTimeout => "linger_timeout",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::InputLimit => "input_limit",
            CloseReason::PlaintextRefused => "plaintext_refused",
            CloseReason::TlsHandshakeFailed => "tls_handshake_failed",
            CloseReason::TlsError => "tls_error",
            CloseReason::MaxConnections => "max_connections",
            CloseReason::OutOfDescriptors => "out_of_descriptors",
            CloseReason::AccessDenied => "access_denied",
            CloseReason::ListenerMaxConnections => "listener_max_connections",
            CloseReason::ClientMaxConnections => "client_max_connections",
            CloseReason::ClientAcceptRate => "client_accept_rate",
            CloseReason::ProxyUntrusted => "proxy_untrusted",
            CloseReason::ProxyInvalid => "proxy_invalid",
            CloseReason::ProxyTimeout => "proxy_timeout",
        }
    }

    /// Whether this is a refusal by the edge policy (access rules, limits,
    /// PROXY protocol), which is logged once per burst rather than per
    /// connection.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            CloseReason::AccessDenied
                | CloseReason::ListenerMaxConnections
                | CloseReason::ClientMaxConnections
                | CloseReason::ClientAcceptRate
                | CloseReason::MaxConnections
        )
    }

    /// Whether this ending is routine (not worth a log line above debug).
    pub fn is_routine(self) -> bool {
        matches!(
            self,
            CloseReason::PeerClosed
                | CloseReason::ServiceClosed
                | CloseReason::Shutdown
                | CloseReason::PeerReset
        )
    }

    /// The position of this reason in [`CloseReason::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Process-wide counters. Updated on accept and close, never per message, so
/// sharing them between workers costs nothing measurable.
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicU64,
    admitted_plain: AtomicU64,
    admitted_tls: AtomicU64,
    admitted_mtls: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
}

impl Stats {
    pub fn count_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_admitted(&self, transport: crate::connection_info::Transport) {
        use crate::connection_info::Transport;
        let counter = match transport {
            Transport::Plain => &self.admitted_plain,
            Transport::Tls => &self.admitted_tls,
            Transport::Mtls => &self.admitted_mtls,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_closed(&self, reason: CloseReason) {
        self.closed[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self, reason: CloseReason) -> u64 {
        self.closed[reason.index()].load(Ordering::Relaxed)
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// One line: `accepted=… plain=… tls=… mtls=… closed: reason=n …`,
    /// listing only reasons that happened (and no `closed:` at all when
    /// nothing closed).
    pub fn summary(&self) -> String {
        let mut line = format!(
            "accepted={} plain={} tls={} mtls={}",
            self.accepted(),
            self.admitted_plain.load(Ordering::Relaxed),
            self.admitted_tls.load(Ordering::Relaxed),
            self.admitted_mtls.load(Ordering::Relaxed),
        );
        let mut heading = " closed:";
        for reason in CloseReason::ALL {
            let n = self.closed(reason);
            if n > 0 {
                let _ = write!(line, "{heading} {}={n}", reason.label());
                heading = "";
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter_and_label() {
        let stats = Stats::default();
        for (i, reason) in CloseReason::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                stats.count_closed(reason);
            }
        }
        for (i, reason) in CloseReason::ALL.into_iter().enumerate() {
            assert_eq!(stats.closed(reason), i as u64 + 1, "{}", reason.label());
        }
        let labels: std::collections::HashSet<_> =
            CloseReason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), CloseReason::ALL.len());
        assert!(stats.summary().contains("closed: peer_closed=1 "));
        assert!(stats.summary().contains("handshake_timeout=6"));
    }

    #[test]
    fn an_idle_summary_has_no_empty_group() {
        let stats = Stats::default();
        assert_eq!(stats.summary(), "accepted=0 plain=0 tls=0 mtls=0");
    }
}
