//! What one HTTP/2 connection may cost, and how fast a peer may ask for
//! work that produces no request.
//!
//! Two kinds of limit. *Sizes* bound memory: header blocks, decoded header
//! lists, request bodies, open streams. *Rates* bound work a peer can
//! demand without ever completing a request — stream resets (the 2023
//! "rapid reset" attack, CVE-2023-44487), PINGs and SETTINGS, each of which
//! obliges the server to answer or to tear down state. The one idea: **a
//! rate is counted in fixed windows of the engine's clock**
//! (`Session::now`), so tests choose the time and no timer is needed; a
//! peer over the rate gets GOAWAY with ENHANCE_YOUR_CALM.

use std::time::{Duration, Instant};

/// A most-this-many-per-interval limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub max: u32,
    pub per: Duration,
}

/// Limits for every HTTP/2 connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http2Limits {
    /// SETTINGS_MAX_CONCURRENT_STREAMS; more are refused (REFUSED_STREAM).
    pub max_concurrent_streams: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: decoded size (RFC 7541 measure); a
    /// larger request gets 431.
    pub max_header_list_size: usize,
    /// The largest encoded header block (HEADERS plus CONTINUATIONs).
    pub max_header_block: usize,
    /// CONTINUATION frames per header block.
    pub max_continuations: usize,
    /// The largest request body read (and dropped); larger gets 413.
    pub max_request_body: u64,
    pub resets: Rate,
    pub pings: Rate,
    pub settings: Rate,
}

impl Default for Http2Limits {
    fn default() -> Http2Limits {
        let per_10s = |max| Rate {
            max,
            per: Duration::from_secs(10),
        };
        Http2Limits {
            max_concurrent_streams: 100,
            max_header_list_size: 16 * 1024,
            max_header_block: 64 * 1024,
            max_continuations: 32,
            max_request_body: crate::service::http::MAX_DISCARDED_BODY,
            resets: per_10s(100),
            pings: per_10s(100),
            settings: per_10s(100),
        }
    }
}

/// Counts events in fixed windows of time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateWindow {
    started: Option<Instant>,
    count: u32,
}

impl RateWindow {
    /// Counts one event at `now`; `true` when that goes over `rate`.
    pub fn over(&mut self, rate: Rate, now: Instant) -> bool {
        match self.started {
            Some(start) if now.saturating_duration_since(start) < rate.per => {}
            _ => {
                self.started = Some(now);
                self.count = 0;
            }
        }
        self.count += 1;
        self.count > rate.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_allows_its_maximum_per_window_and_starts_over_after() {
        let rate = Rate {
            max: 3,
            per: Duration::from_secs(1),
        };
        let start = Instant::now();
        let mut window = RateWindow::default();
        for _ in 0..3 {
            assert!(!window.over(rate, start));
        }
        assert!(window.over(rate, start + Duration::from_millis(999)));
        assert!(!window.over(rate, start + Duration::from_secs(1)));
    }
}
