//! What HTTP/2 peers did, counted for the whole server.
//!
//! Every worker builds its own `http` service, but an operator asks about
//! the *server*: "how many rapid-reset attempts did we refuse today?". So
//! one [`Http2Counters`] of atomics is shared by every worker's instance
//! (through the service factory), updated with relaxed increments that cost
//! nothing measurable next to a frame. The one idea: **an attack is counted
//! every time and logged once per burst** — a peer that sends a million
//! bad frames must not become a million log lines, but the first one of a
//! burst says who and what.
//!
//! Counters are listed by [`Http2Counters::iter`] as `(name, value)`, the
//! shape a metrics endpoint exports, and [`Http2Counters::summary`] is the
//! line printed at shutdown next to the engine's.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long after logging an event further ones are only counted.
pub const LOG_BURST: Duration = Duration::from_secs(5);

/// Something an HTTP/2 peer did that the server counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Http2Event {
    /// A connection that negotiated `h2` by ALPN.
    ConnectionTls,
    /// A plaintext connection that opened with the HTTP/2 preface (h2c).
    ConnectionCleartext,
    /// A request stream was opened.
    Stream,
    /// Too many streams reset per interval (CVE-2023-44487).
    RapidReset,
    /// Too many CONTINUATION frames, or too large a header block
    /// (CVE-2024-27316 class).
    ContinuationFlood,
    /// A decoded header list over the limit (an HPACK bomb, or just huge).
    HeaderListTooLarge,
    /// Too many SETTINGS frames per interval.
    SettingsFlood,
    /// Too many PING frames per interval.
    PingFlood,
    /// A frame larger than our SETTINGS_MAX_FRAME_SIZE.
    FrameTooLarge,
    /// A new stream whose id is not above every earlier one, or is even.
    StreamIdReuse,
    /// The connection preface arrived again after the connection started.
    PrefaceRepeated,
    /// The connection preface was not what RFC 9113 §3.4 says.
    BadPreface,
    /// A stream over SETTINGS_MAX_CONCURRENT_STREAMS, refused.
    StreamRefused,
    /// Output held back because the peer's flow-control window was zero.
    ZeroWindowWait,
    /// A frame for a stream that is already closed.
    StreamClosed,
    /// A request whose header fields break RFC 9113 §8 (stream error).
    MalformedRequest,
    /// A header block HPACK cannot decode.
    CompressionError,
    /// Flow-control windows overrun or overflowed.
    FlowControlError,
    /// Any other violation of RFC 9113.
    ProtocolError,
}

impl Http2Event {
    pub const ALL: [Http2Event; 19] = [
        Http2Event::ConnectionTls,
        Http2Event::ConnectionCleartext,
        Http2Event::Stream,
        Http2Event::RapidReset,
        Http2Event::ContinuationFlood,
        Http2Event::HeaderListTooLarge,
        Http2Event::SettingsFlood,
        Http2Event::PingFlood,
        Http2Event::FrameTooLarge,
        Http2Event::StreamIdReuse,
        Http2Event::PrefaceRepeated,
        Http2Event::BadPreface,
        Http2Event::StreamRefused,
        Http2Event::ZeroWindowWait,
        Http2Event::StreamClosed,
        Http2Event::MalformedRequest,
        Http2Event::CompressionError,
        Http2Event::FlowControlError,
        Http2Event::ProtocolError,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Http2Event::ConnectionTls => "connections_h2",
            Http2Event::ConnectionCleartext => "connections_h2c",
            Http2Event::Stream => "streams",
            Http2Event::RapidReset => "rapid_reset",
            Http2Event::ContinuationFlood => "continuation_flood",
            Http2Event::HeaderListTooLarge => "header_list_too_large",
            Http2Event::SettingsFlood => "settings_flood",
            Http2Event::PingFlood => "ping_flood",
            Http2Event::FrameTooLarge => "frame_too_large",
            Http2Event::StreamIdReuse => "stream_id_reuse",
            Http2Event::PrefaceRepeated => "preface_repeated",
            Http2Event::BadPreface => "bad_preface",
            Http2Event::StreamRefused => "stream_refused",
            Http2Event::ZeroWindowWait => "zero_window_wait",
            Http2Event::StreamClosed => "stream_closed",
            Http2Event::MalformedRequest => "malformed_request",
            Http2Event::CompressionError => "compression_error",
            Http2Event::FlowControlError => "flow_control_error",
            Http2Event::ProtocolError => "protocol_error",
        }
    }

    /// Whether this is traffic, not trouble (not worth a log line).
    pub fn is_routine(self) -> bool {
        matches!(
            self,
            Http2Event::ConnectionTls | Http2Event::ConnectionCleartext | Http2Event::Stream
        )
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|e| *e == self).unwrap_or(0)
    }
}

/// Server-wide HTTP/2 counters, shared by every worker.
#[derive(Debug)]
pub struct Http2Counters {
    counts: [AtomicU64; Http2Event::ALL.len()],
    /// Per event: milliseconds after `epoch` it was last logged, plus one
    /// (0: never).
    last_logged: [AtomicU64; Http2Event::ALL.len()],
    epoch: Instant,
}

impl Default for Http2Counters {
    fn default() -> Http2Counters {
        Http2Counters {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            last_logged: std::array::from_fn(|_| AtomicU64::new(0)),
            epoch: Instant::now(),
        }
    }
}

impl Http2Counters {
    pub fn new() -> Http2Counters {
        Http2Counters::default()
    }

    /// Counts `event`; logs it (naming `peer` and `detail`) unless another
    /// of its kind was logged less than [`LOG_BURST`] ago.
    pub fn record(&self, event: Http2Event, now: Instant, peer: SocketAddr, detail: &str) {
        let index = event.index();
        let count = self.counts[index].fetch_add(1, Ordering::Relaxed) + 1;
        if event.is_routine() {
            return;
        }
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64 + 1;
        let last = self.last_logged[index].load(Ordering::Relaxed);
        let quiet = last != 0 && now_ms.saturating_sub(last) < LOG_BURST.as_millis() as u64;
        // Of several workers racing here, exactly one wins and logs.
        if !quiet
            && self.last_logged[index]
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!(
                "http2 {} from {peer}: {detail} ({count} so far; more within {}s are counted, not logged)",
                event.label(),
                LOG_BURST.as_secs()
            );
        }
    }

    pub fn get(&self, event: Http2Event) -> u64 {
        self.counts[event.index()].load(Ordering::Relaxed)
    }

    /// Every counter as `(name, value)`, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Http2Event::ALL
            .into_iter()
            .map(|event| (event.label(), self.get(event)))
    }

    /// One line: `http2: name=value …`, listing only what happened.
    pub fn summary(&self) -> String {
        let mut line = String::from("http2:");
        for (name, value) in self.iter().filter(|(_, value)| *value > 0) {
            let _ = write!(line, " {name}={value}");
        }
        if line.len() == "http2:".len() {
            line.push_str(" none");
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_its_own_counter_and_label() {
        let counters = Http2Counters::new();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for (i, event) in Http2Event::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                counters.record(event, Instant::now(), peer, "test");
            }
        }
        for (i, (name, value)) in counters.iter().enumerate() {
            assert_eq!(value, i as u64 + 1, "{name}");
        }
        let labels: std::collections::HashSet<_> = counters.iter().map(|(name, _)| name).collect();
        assert_eq!(labels.len(), Http2Event::ALL.len());
        assert!(counters.summary().contains(" rapid_reset=4"));
    }

    #[test]
    fn a_burst_is_logged_once_then_again_after_the_quiet_period() {
        let counters = Http2Counters::new();
        let index = Http2Event::PingFlood.index();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let start = counters.epoch;
        counters.record(Http2Event::PingFlood, start, peer, "x");
        let first = counters.last_logged[index].load(Ordering::Relaxed);
        assert_ne!(first, 0);
        counters.record(
            Http2Event::PingFlood,
            start + Duration::from_secs(1),
            peer,
            "x",
        );
        assert_eq!(counters.last_logged[index].load(Ordering::Relaxed), first);
        counters.record(Http2Event::PingFlood, start + LOG_BURST, peer, "x");
        assert_ne!(counters.last_logged[index].load(Ordering::Relaxed), first);
        assert_eq!(counters.get(Http2Event::PingFlood), 3);
        assert_eq!(Http2Counters::new().summary(), "http2: none");
    }
}
