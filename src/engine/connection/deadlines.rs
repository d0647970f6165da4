//! Every time limit a connection lives under, stated once.
//!
//! | rule | measured from | applies while | on expiry |
//! |---|---|---|---|
//! | PROXY header | accept | waiting for a trusted proxy's header | close: `proxy_timeout` |
//! | read rate | the read that emptied the bucket | `read_rate_limit` paused reading | resume reading |
//! | plaintext grace | accept | sniffing, nothing received, listener allows plaintext and `plaintext_after` is set | admit as plaintext (the client waits to be spoken to) |
//! | handshake | accept | not yet admitted (sniffing or TLS handshake) | close: `handshake_timeout` |
//! | idle | the last byte received or written | admitted | close: `idle_timeout` |
//! | write stall | the last time output made progress, or became queued after none was | admitted, with output queued or held back for the peer | close: `write_timeout` |
//! | linger | our FIN | lingering (FIN sent, waiting for the peer's) | close: `linger_timeout` |
//! | drain | the server's shutdown | the server is shutting down, the connection is not closing yet | close politely (TLS `close_notify`, FIN, linger): `shutdown` |
//! | shutdown grace | the end of the drain | the server is shutting down and the connection is closing | close: `shutdown` |
//!
//! The one idea: **a deadline is computed from the connection's state, never
//! stored**. [`next`] returns the earliest rule that applies, and the driver
//! only keeps a timer for that instant; when the timer fires the connection
//! recomputes, so a deadline that moved (bytes arrived meanwhile) simply
//! does nothing, and a rule that starts to apply (the connection was just
//! admitted) is in force the moment its state says so. Notice what does
//! *not* refresh a deadline: a peer that trickles a byte now and then
//! refreshes *idle*, but not *write stall* (it is still not reading), nor
//! *linger* (a close has a total budget), nor the handshake.

use std::time::Instant;

use super::{Connection, Stage};
use crate::engine::context::Context;
use crate::engine::stats::CloseReason;

/// Which rule a deadline belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    ProxyHeader,
    ResumeReading,
    AdmitAsPlaintext,
    Handshake,
    Idle,
    WriteStall,
    Linger,
    /// The drain is over: close politely.
    Drained,
    /// The drain and a linger are over: close now.
    ShutdownGrace,
}

impl Expiry {
    /// The close reason a rule ends a connection with (the plaintext grace
    /// admits instead of closing).
    pub fn reason(self) -> CloseReason {
        match self {
            Expiry::ProxyHeader => CloseReason::ProxyTimeout,
            // Not a close: reading resumes (listed for completeness).
            Expiry::ResumeReading => CloseReason::PeerClosed,
            Expiry::AdmitAsPlaintext | Expiry::Handshake => CloseReason::HandshakeTimeout,
            Expiry::Idle => CloseReason::IdleTimeout,
            Expiry::WriteStall => CloseReason::WriteTimeout,
            Expiry::Linger => CloseReason::LingerTimeout,
            Expiry::Drained | Expiry::ShutdownGrace => CloseReason::Shutdown,
        }
    }
}

/// The earliest deadline that applies to `conn` now, with its rule; `None`
/// for a connection that is already closing at once.
pub(super) fn next(conn: &Connection, cx: &Context<'_>) -> Option<(Instant, Expiry)> {
    if conn.closed.is_some() {
        return None;
    }
    let limits = cx.limits;
    let clock = &conn.clock;
    let mut earliest: Option<(Instant, Expiry)> = None;
    let mut consider = |at: Instant, expiry: Expiry| match earliest {
        Some((best, _)) if best <= at => {}
        _ => earliest = Some((at, expiry)),
    };
    if let Some(by) = cx.shutdown_by {
        // Served on until `by`, then closed politely; a close under way by
        // then (ours or one of its own) gets one linger's worth more.
        if conn.ending.is_none() && !conn.write_shut {
            consider(by, Expiry::Drained);
        } else {
            consider(by + limits.linger_timeout, Expiry::ShutdownGrace);
        }
    }
    if conn.write_shut {
        consider(clock.output_since + limits.linger_timeout, Expiry::Linger);
        return earliest;
    }
    if let Some(at) = conn.read_rate().and_then(|bucket| bucket.resume_at()) {
        consider(at, Expiry::ResumeReading);
    }
    match conn.stage {
        Stage::ProxyHeader => {
            let edge = &cx.listeners[usize::from(conn.listener)].edge;
            consider(
                clock.accepted_at + edge.proxy_header_timeout,
                Expiry::ProxyHeader,
            );
            consider(
                clock.accepted_at + limits.handshake_timeout,
                Expiry::Handshake,
            );
        }
        Stage::Sniffing | Stage::Handshaking => {
            let waiting_to_be_spoken_to = conn.stage == Stage::Sniffing
                && conn.input.is_empty()
                && cx.listeners[usize::from(conn.listener)].allow_plaintext;
            if let (true, Some(after)) = (waiting_to_be_spoken_to, limits.plaintext_after) {
                consider(clock.accepted_at + after, Expiry::AdmitAsPlaintext);
            }
            consider(
                clock.accepted_at + limits.handshake_timeout,
                Expiry::Handshake,
            );
        }
        Stage::Open => {
            if conn.pending_output() > 0 || conn.waiting_for_peer {
                consider(
                    clock.output_since + limits.write_timeout,
                    Expiry::WriteStall,
                );
            }
            consider(clock.last_activity + limits.idle_timeout, Expiry::Idle);
        }
    }
    earliest
}
