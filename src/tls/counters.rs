//! TLS counters shared by every worker: handshakes by kind, failures by
//! reason.
//!
//! The connection counters in `engine::stats` say *that* a TLS handshake
//! failed; an operator facing a wave of failures needs *which* failure:
//! clients without a certificate, scanners sending malformed ClientHellos,
//! a misconfigured name. The one idea: **every failure is counted under its
//! [`TlsErrorKind::reason`] label, the same word the log line carries**, so
//! a counter that moves can be matched to log lines by grepping one word.
//! The gate owns one [`TlsCounters`]; sessions hold an `Arc` to it and
//! count their own outcome once.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::TlsErrorKind;

/// Handshake and failure counters (relaxed atomics: each is a tally, not a
/// synchronisation point).
#[derive(Debug, Default)]
pub struct TlsCounters {
    full: AtomicU64,
    resumed: AtomicU64,
    failures: [AtomicU64; TlsErrorKind::ALL.len()],
}

impl TlsCounters {
    /// A handshake completed; `resumed` when it reused a session.
    pub fn count_handshake(&self, resumed: bool) {
        let counter = if resumed { &self.resumed } else { &self.full };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A session failed (or was refused before one existed) for `kind`.
    pub fn count_failure(&self, kind: TlsErrorKind) {
        self.failures[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn full_handshakes(&self) -> u64 {
        self.full.load(Ordering::Relaxed)
    }

    pub fn resumed_handshakes(&self) -> u64 {
        self.resumed.load(Ordering::Relaxed)
    }

    pub fn failures(&self, kind: TlsErrorKind) -> u64 {
        self.failures[kind.index()].load(Ordering::Relaxed)
    }

    /// Every counter as `(label, value)`, zeros included, in a fixed order:
    /// `handshakes_full`, `handshakes_resumed`, then one per failure reason.
    /// This is what a metrics endpoint exports.
    pub fn enumerate(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        [
            ("handshakes_full", self.full_handshakes()),
            ("handshakes_resumed", self.resumed_handshakes()),
        ]
        .into_iter()
        .chain(
            TlsErrorKind::ALL
                .into_iter()
                .map(|kind| (kind.reason(), self.failures(kind))),
        )
    }

    /// One line for the shutdown log: `tls: full=… resumed=… failed: reason=n
    /// …`, listing only reasons that happened.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "tls: full={} resumed={} failed:",
            self.full_handshakes(),
            self.resumed_handshakes()
        );
        for kind in TlsErrorKind::ALL {
            let n = self.failures(kind);
            if n > 0 {
                let _ = write!(line, " {}={n}", kind.reason());
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_enumerate_every_label_and_summarise_only_what_happened() {
        let counters = TlsCounters::default();
        counters.count_handshake(false);
        counters.count_handshake(false);
        counters.count_handshake(true);
        counters.count_failure(TlsErrorKind::EmptySni);
        let all: Vec<_> = counters.enumerate().collect();
        assert_eq!(all.len(), 2 + TlsErrorKind::ALL.len());
        assert_eq!(all[0], ("handshakes_full", 2));
        assert_eq!(all[1], ("handshakes_resumed", 1));
        assert!(all.contains(&("sni_empty", 1)));
        assert!(all.contains(&("unknown_sni", 0)));
        assert_eq!(
            counters.summary(),
            "tls: full=2 resumed=1 failed: sni_empty=1"
        );
    }
}
