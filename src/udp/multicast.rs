//! `udp-multicast`: a continuous stream of fixed-size datagrams to a group.
//!
//! CppServer's multicast server: one socket sends to a group address
//! (239.255.0.1:3333 by default) and the network — here, the loopback
//! interface — delivers a copy to every member. The server never learns who
//! the receivers are. Each datagram carries a sequence number, so a
//! receiver can count what it missed and what came out of order
//! ([`StreamDatagram`]).
//!
//! The one idea: **pace by arithmetic, not by sleeping**. At a configured
//! rate the service works out how many datagrams are due since it started,
//! sends those, and asks to be woken when the next one is; timers that fire
//! late just mean a larger batch. A sender that fell far behind (the
//! machine stalled) does not burst to catch up: it forgets the backlog
//! beyond a tenth of a second. With no rate it sends as fast as the socket
//! takes datagrams.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::service::{DatagramService, NextSend, Outbox};

/// The default group, CppServer's.
pub const DEFAULT_GROUP: &str = "239.255.0.1:3333";

/// The bytes of stream datagram number `seq`: the number (8 bytes, big
/// endian), then bytes that depend on it, so a receiver checks a datagram
/// in full without knowing anything but its size.
pub struct StreamDatagram;

impl StreamDatagram {
    /// The smallest datagram that carries a sequence number.
    pub const MIN_SIZE: usize = 8;

    pub fn write(seq: u64, out: &mut [u8]) {
        out[..8].copy_from_slice(&seq.to_be_bytes());
        for (i, byte) in out[8..].iter_mut().enumerate() {
            *byte = Self::filler(seq, i);
        }
    }

    /// The sequence number of `datagram`, if it is a whole stream datagram
    /// of `size` bytes.
    pub fn check(datagram: &[u8], size: usize) -> Result<u64, String> {
        if datagram.len() != size {
            return Err(format!(
                "a {}-byte datagram where {size} bytes were expected",
                datagram.len()
            ));
        }
        let seq = u64::from_be_bytes(datagram[..8].try_into().map_err(|_| "short datagram")?);
        match datagram[8..]
            .iter()
            .enumerate()
            .find(|(i, byte)| **byte != Self::filler(seq, *i))
        {
            Some((i, byte)) => Err(format!(
                "datagram {seq}: byte {} is {byte:#04x}, expected {:#04x}",
                i + 8,
                Self::filler(seq, i)
            )),
            None => Ok(seq),
        }
    }

    fn filler(seq: u64, i: usize) -> u8 {
        (seq as u8).wrapping_add(i as u8).wrapping_mul(31)
    }
}

/// The stream's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamSettings {
    pub group: SocketAddr,
    pub size: usize,
    /// Datagrams per second; `None`: as fast as the socket takes them.
    pub rate: Option<f64>,
}

#[derive(Debug)]
pub struct UdpMulticast {
    settings: StreamSettings,
    /// When the stream started (moved to the present when a backlog is
    /// forgotten), and how many datagrams were due before that.
    start: Option<Instant>,
    base: u64,
    sent: u64,
    datagram: Vec<u8>,
}

impl UdpMulticast {
    pub fn new(settings: StreamSettings) -> UdpMulticast {
        let size = settings.size.max(StreamDatagram::MIN_SIZE);
        UdpMulticast {
            settings: StreamSettings { size, ..settings },
            start: None,
            base: 0,
            sent: 0,
            datagram: vec![0; size],
        }
    }

    /// Datagrams due at `now`, at most `room`.
    fn due(&mut self, now: Instant, room: usize, rate: f64) -> u64 {
        let start = *self.start.get_or_insert(now);
        let mut target = self.due_by(now, start, rate);
        let backlog_limit = (rate / 10.0).max(1.0) as u64;
        if target.saturating_sub(self.sent) > backlog_limit {
            // Forget what is beyond the limit: count from now, as if the
            // datagrams kept were the first ones of a new stream.
            self.start = Some(now);
            self.base = self.sent + backlog_limit - 1;
            target = self.sent + backlog_limit;
        }
        target.saturating_sub(self.sent).min(room as u64)
    }

    /// How many datagrams in all are due at `now`: `base`, plus one at
    /// `start` and one per `1 / rate` seconds after it.
    fn due_by(&self, now: Instant, start: Instant, rate: f64) -> u64 {
        self.base + (now.saturating_duration_since(start).as_secs_f64() * rate) as u64 + 1
    }
}

impl DatagramService for UdpMulticast {
    /// Nothing is expected from anyone; a datagram sent to the sender's
    /// port is ignored.
    fn on_datagram(&mut self, _peer: SocketAddr, _datagram: &[u8], _out: &mut Outbox<'_>) {}

    fn next_send(&self, _now: Instant) -> NextSend {
        match (self.settings.rate, self.start) {
            // A microsecond late, so that rounding in `due_by` cannot
            // leave the datagram not yet due when the timer fires.
            (Some(rate), Some(start)) => NextSend::At(
                start
                    + Duration::from_secs_f64(self.sent.saturating_sub(self.base) as f64 / rate)
                    + Duration::from_micros(1),
            ),
            _ => NextSend::Now,
        }
    }

    fn on_send_ready(&mut self, out: &mut Outbox<'_>) {
        let count = match self.settings.rate {
            Some(rate) => self.due(out.now(), out.room(), rate),
            None => out.room() as u64,
        };
        for _ in 0..count {
            StreamDatagram::write(self.sent, &mut self.datagram);
            out.send_to(self.settings.group, &self.datagram);
            self.sent += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp::service::Captured;

    fn stream(rate: Option<f64>) -> UdpMulticast {
        UdpMulticast::new(StreamSettings {
            group: DEFAULT_GROUP.parse().unwrap(),
            size: 32,
            rate,
        })
    }

    /// Calls the service at `at` the way the engine does; returns the
    /// sequence numbers it sent.
    fn send_at(service: &mut UdpMulticast, at: Instant, room: usize) -> Vec<u64> {
        let sent = Captured::run(room, at, |out| service.on_send_ready(out));
        sent.datagrams
            .iter()
            .map(|(to, bytes)| {
                assert_eq!(*to, service.settings.group);
                StreamDatagram::check(bytes, 32).unwrap()
            })
            .collect()
    }

    #[test]
    fn datagrams_check_and_a_changed_byte_is_caught() {
        let mut bytes = vec![0; 40];
        StreamDatagram::write(77, &mut bytes);
        assert_eq!(StreamDatagram::check(&bytes, 40), Ok(77));
        assert!(StreamDatagram::check(&bytes[..39], 40).is_err());
        bytes[20] ^= 1;
        assert!(StreamDatagram::check(&bytes, 40)
            .unwrap_err()
            .contains("byte 20"));
    }

    #[test]
    fn a_paced_stream_sends_what_is_due_and_asks_for_the_next_instant() {
        let mut service = stream(Some(1000.0));
        let t0 = Instant::now();
        assert_eq!(service.next_send(t0), NextSend::Now);
        assert_eq!(send_at(&mut service, t0, 32), vec![0]);
        assert_eq!(
            service.next_send(t0),
            NextSend::At(t0 + Duration::from_millis(1) + Duration::from_micros(1))
        );
        // 10 ms later, ten more are due (1..=10), in order.
        let later = t0 + Duration::from_millis(10);
        assert_eq!(
            send_at(&mut service, later, 32),
            (1..=10).collect::<Vec<_>>()
        );
        // Room bounds one call; the rest come on the next.
        let much_later = t0 + Duration::from_millis(60);
        assert_eq!(send_at(&mut service, much_later, 32).len(), 32);
        assert_eq!(
            send_at(&mut service, much_later, 32),
            (43..=60).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_stalled_sender_forgets_the_backlog_instead_of_bursting() {
        let mut service = stream(Some(1000.0));
        let t0 = Instant::now();
        send_at(&mut service, t0, 32);
        // Ten seconds of stall: 10,000 due, but at most 100 (0.1 s) are kept.
        let after_stall = t0 + Duration::from_secs(10);
        let mut total = 0;
        for _ in 0..10 {
            total += send_at(&mut service, after_stall, 32).len();
        }
        assert_eq!(total, 100);
        // Numbering has no gap: receivers see a slower stream, not a loss.
        assert_eq!(
            send_at(&mut service, after_stall + Duration::from_millis(1), 32),
            vec![101]
        );
    }

    #[test]
    fn an_unpaced_stream_fills_whatever_room_there_is() {
        let mut service = stream(None);
        let t0 = Instant::now();
        assert_eq!(send_at(&mut service, t0, 8), (0..8).collect::<Vec<_>>());
        assert_eq!(service.next_send(t0), NextSend::Now);
    }
}
