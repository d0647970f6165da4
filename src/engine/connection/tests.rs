//! The connection core driven directly: chosen bytes, chosen instants, no
//! sockets. Each test plays the driver's part by hand — feed, look at
//! `transmit()`, report what was "written", ask `next()` — so every stage
//! transition, deadline rule and bound is checked without waiting for real
//! time to pass.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::Interest;

use super::{Connection, Next, Stage};
use crate::engine::buffers::Workspace;
use crate::engine::context::{Context, ListenerPolicy};
use crate::engine::limits::ConnectionLimits;
use crate::engine::stats::{CloseReason, Stats};
use crate::service::{echo::Echo, Service, Session, SessionId};
use crate::tls::test_support::{client, ClientCert};
use crate::tls::{TlsGate, TlsSession};

/// The worker's half of the test: everything a `Context` borrows.
pub(crate) struct Harness {
    pub start: Instant,
    pub limits: ConnectionLimits,
    pub listeners: Vec<ListenerPolicy>,
    pub service: Box<dyn Service>,
    pub work: Workspace,
    pub stats: Stats,
    pub shutdown_by: Option<Instant>,
}

pub(crate) const PEER: &str = "127.0.0.1:40000";

impl Harness {
    /// One listener: plaintext, with TLS (the development gate) when `tls`.
    pub fn new(service: Box<dyn Service>, tls: bool) -> Harness {
        let gate = tls.then(|| Arc::new(TlsGate::development().expect("dev gate")));
        Harness {
            start: Instant::now(),
            limits: ConnectionLimits::default(),
            listeners: vec![ListenerPolicy {
                local: "127.0.0.1:8443".parse().unwrap(),
                allow_plaintext: true,
                tls: gate,
            }],
            service,
            work: Workspace::default(),
            stats: Stats::default(),
            shutdown_by: None,
        }
    }

    pub fn at(&self, millis: u64) -> Instant {
        self.start + Duration::from_millis(millis)
    }

    pub fn cx(&mut self, millis: u64) -> Context<'_> {
        Context {
            now: self.start + Duration::from_millis(millis),
            limits: &self.limits,
            listeners: &self.listeners,
            service: self.service.as_mut(),
            work: &mut self.work,
            stats: &self.stats,
            backend: "test",
            shutdown_by: self.shutdown_by,
        }
    }

    pub fn accept(&mut self, millis: u64) -> Connection {
        let peer: SocketAddr = PEER.parse().unwrap();
        Connection::new(SessionId(1), 0, peer, &mut self.cx(millis))
    }

    /// Plays a socket that takes everything: returns what was written.
    pub fn write_all(&mut self, conn: &mut Connection, millis: u64) -> Vec<u8> {
        let mut written = Vec::new();
        loop {
            let pending = conn.transmit().to_vec();
            if pending.is_empty() {
                return written;
            }
            written.extend_from_slice(&pending);
            conn.handle_sent(pending.len(), &mut self.cx(millis));
        }
    }

    pub fn next(&self, conn: &Connection) -> Next {
        conn.next(&self.limits)
    }

    pub fn deadline(&mut self, conn: &Connection) -> Option<Instant> {
        conn.deadline(&self.cx(0))
    }
}

/// A service that says what it was told to, records what it saw, and can
/// be made to stop at `output_full` or to consume nothing.
#[derive(Default)]
struct Recorder {
    greeting: &'static [u8],
    /// Consume one line per call... until the output is full.
    line_at_a_time_until_full: bool,
    consume_nothing: bool,
    close_after_first: bool,
    shutdown_farewell: &'static [u8],
    seen: Vec<u8>,
}

impl Service for Recorder {
    fn on_connect(&mut self, session: &mut Session<'_>) {
        session.send(self.greeting);
    }

    fn on_data(&mut self, session: &mut Session<'_>, data: &[u8]) -> usize {
        if self.consume_nothing {
            return 0;
        }
        if self.line_at_a_time_until_full {
            let mut consumed = 0;
            while !session.output_full() {
                let rest = &data[consumed..];
                let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                    break;
                };
                session.send(&[b'R'; 1000]);
                consumed += end + 1;
            }
            return consumed;
        }
        self.seen.extend_from_slice(data);
        session.send(data);
        if self.close_after_first {
            session.close();
        }
        data.len()
    }

    fn on_shutdown(&mut self, session: &mut Session<'_>) {
        session.send(self.shutdown_farewell);
    }
}

fn echo_harness() -> Harness {
    Harness::new(Box::new(Echo), true)
}

#[test]
fn plaintext_is_admitted_from_its_first_byte_and_echoed() {
    let mut h = echo_harness();
    let mut conn = h.accept(0);
    assert_eq!(conn.stage(), Stage::Sniffing);
    assert_eq!(h.next(&conn), Next::Wait(Interest::READABLE));
    conn.handle_input(b"hello", &mut h.cx(1));
    assert_eq!(conn.stage(), Stage::Open);
    assert_eq!(conn.transmit(), b"hello");
    assert_eq!(h.next(&conn), Next::Wait(Interest::BOTH));
    assert_eq!(h.write_all(&mut conn, 2), b"hello");
    assert_eq!(h.next(&conn), Next::Wait(Interest::READABLE));
}

#[test]
fn a_tls_prefix_is_held_until_the_record_is_whole_then_handshakes() {
    let mut h = echo_harness();
    let mut conn = h.accept(0);
    let tls = client(ClientCert::None);
    let mut client = TlsSession::client(&tls, Some("localhost"), None).unwrap();
    client.process(&mut Vec::new()).unwrap();
    let hello = client.outgoing().to_vec();
    client.consume_outgoing(hello.len());
    // Byte by byte up to the last: still sniffing, no session, nothing sent.
    for (i, byte) in hello[..hello.len() - 1].iter().enumerate() {
        conn.handle_input(std::slice::from_ref(byte), &mut h.cx(1));
        assert_eq!(conn.stage(), Stage::Sniffing, "byte {i}");
        assert!(conn.tls.is_none() && conn.transmit().is_empty());
    }
    conn.handle_input(&hello[hello.len() - 1..], &mut h.cx(2));
    assert_eq!(conn.stage(), Stage::Handshaking);
    // Shuttle the rest of the handshake, then echo over TLS.
    client.send(b"ping").unwrap();
    let mut plain = Vec::new();
    for _ in 0..10 {
        let from_server = h.write_all(&mut conn, 3);
        client.receive(&from_server);
        client.process(&mut plain).unwrap();
        let to_server = client.outgoing().to_vec();
        client.consume_outgoing(to_server.len());
        conn.handle_input(&to_server, &mut h.cx(3));
        if plain == b"ping" {
            break;
        }
    }
    assert_eq!(conn.stage(), Stage::Open);
    assert_eq!(plain, b"ping");
    assert_eq!(conn.facts(&h.cx(4)).transport.as_str(), "tls");
}

#[test]
fn garbage_that_looks_like_tls_fails_the_handshake_with_an_alert() {
    let mut h = echo_harness();
    let mut conn = h.accept(0);
    // A record holding a 4-byte ClientHello: far too short to be one.
    let record = [
        0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 0, 0, 0, 0,
    ];
    conn.handle_input(&record, &mut h.cx(1));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::TlsHandshakeFailed));
    assert!(
        !conn.transmit().is_empty(),
        "the alert waits for its one try"
    );
}

#[test]
fn plaintext_on_a_tls_only_listener_is_refused() {
    let mut h = echo_harness();
    h.listeners[0].allow_plaintext = false;
    let mut conn = h.accept(0);
    conn.handle_input(b"GET /", &mut h.cx(1));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::PlaintextRefused));
}

#[test]
fn end_of_input_while_sniffing_decides_on_what_arrived() {
    let mut h = echo_harness();
    let mut conn = h.accept(0);
    conn.handle_input(&[0x16], &mut h.cx(1)); // could still be TLS
    assert_eq!(conn.stage(), Stage::Sniffing);
    conn.handle_eof(&mut h.cx(2));
    assert_eq!(conn.stage(), Stage::Open, "a lone byte and FIN: plaintext");
    assert_eq!(h.write_all(&mut conn, 3), [0x16]);
    assert_eq!(h.next(&conn), Next::Close(CloseReason::PeerClosed));

    let mut silent = h.accept(0);
    silent.handle_eof(&mut h.cx(1));
    assert_eq!(h.next(&silent), Next::Close(CloseReason::PeerClosed));
}

#[test]
fn end_of_input_mid_handshake_is_a_failed_handshake() {
    let mut h = echo_harness();
    let mut conn = h.accept(0);
    conn.handle_input(&[0x16, 0x03, 0x01, 0x01, 0x00, 0x01], &mut h.cx(1));
    conn.handle_eof(&mut h.cx(2));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::TlsHandshakeFailed));
}

#[test]
fn a_plaintext_only_listener_admits_at_once_and_the_service_greets() {
    let mut h = Harness::new(
        Box::new(Recorder {
            greeting: b"hi\n",
            ..Recorder::default()
        }),
        false,
    );
    let conn = h.accept(0);
    assert_eq!(conn.stage(), Stage::Open);
    assert_eq!(conn.transmit(), b"hi\n");
}

#[test]
fn the_handshake_deadline_runs_from_accept_whatever_arrives() {
    let mut h = echo_harness();
    let mut conn = h.accept(0);
    let limit = h.limits.handshake_timeout.as_millis() as u64;
    assert_eq!(h.deadline(&conn), Some(h.at(limit)));
    conn.handle_input(&[0x16, 0x03], &mut h.cx(limit - 1));
    assert_eq!(
        h.deadline(&conn),
        Some(h.at(limit)),
        "bytes do not extend it"
    );
    conn.handle_timeout(&mut h.cx(limit - 1));
    assert!(matches!(h.next(&conn), Next::Wait(_)), "not yet");
    conn.handle_timeout(&mut h.cx(limit));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::HandshakeTimeout));
}

/// Regression: a connection admitted through the plaintext grace used to
/// escape every later deadline.
#[test]
fn a_client_admitted_by_the_plaintext_grace_still_times_out_when_idle() {
    let mut h = Harness::new(
        Box::new(Recorder {
            greeting: b"welcome\n",
            ..Recorder::default()
        }),
        true,
    );
    h.limits.plaintext_after = Some(Duration::from_millis(300));
    h.limits.idle_timeout = Duration::from_secs(1);
    let mut conn = h.accept(0);
    assert_eq!(h.deadline(&conn), Some(h.at(300)));
    conn.handle_timeout(&mut h.cx(300));
    assert_eq!(conn.stage(), Stage::Open);
    assert_eq!(h.write_all(&mut conn, 301), b"welcome\n");
    assert_eq!(
        h.deadline(&conn),
        Some(h.at(1301)),
        "idle since the greeting"
    );
    conn.handle_timeout(&mut h.cx(1301));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::IdleTimeout));
}

#[test]
fn the_grace_does_not_apply_once_a_client_has_spoken_or_without_plaintext() {
    let mut h = echo_harness();
    h.limits.plaintext_after = Some(Duration::from_millis(300));
    let mut conn = h.accept(0);
    conn.handle_input(&[0x16], &mut h.cx(10));
    let limit = h.limits.handshake_timeout.as_millis() as u64;
    assert_eq!(h.deadline(&conn), Some(h.at(limit)));
    h.listeners[0].allow_plaintext = false;
    let conn = h.accept(0);
    assert_eq!(h.deadline(&conn), Some(h.at(limit)));
}

#[test]
fn idle_counts_the_last_byte_in_either_direction() {
    let mut h = echo_harness();
    h.limits.idle_timeout = Duration::from_secs(5);
    let mut conn = h.accept(0);
    conn.handle_input(b"x", &mut h.cx(100));
    // Written later than it was read: the write is the last activity.
    h.write_all(&mut conn, 2_000);
    assert_eq!(h.deadline(&conn), Some(h.at(7_000)));
    conn.handle_input(b"y", &mut h.cx(3_000));
    h.write_all(&mut conn, 3_000);
    assert_eq!(h.deadline(&conn), Some(h.at(8_000)));
    conn.handle_timeout(&mut h.cx(7_999));
    assert!(matches!(h.next(&conn), Next::Wait(_)));
    conn.handle_timeout(&mut h.cx(8_000));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::IdleTimeout));
}

/// Regression: a peer that trickled bytes and never read used to keep a
/// full queue alive forever.
#[test]
fn the_write_stall_deadline_ignores_what_the_peer_sends() {
    let mut h = echo_harness();
    h.limits.write_timeout = Duration::from_secs(2);
    let mut conn = h.accept(0);
    conn.handle_input(b"first", &mut h.cx(0));
    // Nothing is ever written; the peer trickles a byte every 900 ms.
    for t in (900..2_000).step_by(900) {
        conn.handle_input(b"z", &mut h.cx(t));
        assert_eq!(h.deadline(&conn), Some(h.at(2_000)), "at {t} ms");
    }
    conn.handle_timeout(&mut h.cx(2_000));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::WriteTimeout));
}

#[test]
fn write_progress_restarts_the_write_stall_deadline() {
    let mut h = echo_harness();
    h.limits.write_timeout = Duration::from_secs(2);
    let mut conn = h.accept(0);
    conn.handle_input(b"0123456789", &mut h.cx(0));
    conn.handle_sent(3, &mut h.cx(1_500));
    assert_eq!(h.deadline(&conn), Some(h.at(3_500)));
}

#[test]
fn a_service_waiting_for_the_peer_is_under_the_write_stall_deadline() {
    struct Waits;
    impl Service for Waits {
        fn on_data(&mut self, session: &mut Session<'_>, data: &[u8]) -> usize {
            session.set_waiting_for_peer(data != b"go");
            data.len()
        }
    }
    let mut h = Harness::new(Box::new(Waits), false);
    h.limits.write_timeout = Duration::from_secs(2);
    let mut conn = h.accept(0);
    conn.handle_input(b"window is zero", &mut h.cx(100));
    assert_eq!(h.deadline(&conn), Some(h.at(2_100)));
    conn.handle_input(b"go", &mut h.cx(1_000));
    let idle = h.limits.idle_timeout.as_millis() as u64;
    assert_eq!(h.deadline(&conn), Some(h.at(1_000 + idle)));
}

#[test]
fn a_service_close_drains_then_lingers_with_a_total_budget() {
    let mut h = Harness::new(
        Box::new(Recorder {
            close_after_first: true,
            ..Recorder::default()
        }),
        false,
    );
    let mut conn = h.accept(0);
    conn.handle_input(b"bye", &mut h.cx(10));
    assert_eq!(h.next(&conn), Next::Wait(Interest::WRITABLE));
    assert!(
        !conn.wants_read(&h.limits),
        "a closing connection reads no more"
    );
    h.write_all(&mut conn, 20);
    assert_eq!(h.next(&conn), Next::ShutdownWrite);
    assert_eq!(conn.closing_reason(), CloseReason::ServiceClosed);
    conn.handle_write_shut(h.at(20));
    assert_eq!(h.next(&conn), Next::Wait(Interest::READABLE));
    let linger = h.limits.linger_timeout.as_millis() as u64;
    // Trickled bytes are discarded and do not extend the linger.
    conn.handle_input(b"more", &mut h.cx(20 + linger - 1));
    assert_eq!(h.deadline(&conn), Some(h.at(20 + linger)));
    conn.handle_timeout(&mut h.cx(20 + linger));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::LingerTimeout));
    // The same close, where the peer's FIN arrives in time.
    let mut conn = h.accept(0);
    conn.handle_input(b"bye", &mut h.cx(10));
    h.write_all(&mut conn, 20);
    conn.handle_write_shut(h.at(20));
    conn.handle_eof(&mut h.cx(30));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::ServiceClosed));
}

#[test]
fn shutdown_says_goodbye_drains_and_has_a_grace_deadline() {
    let mut h = Harness::new(
        Box::new(Recorder {
            shutdown_farewell: b"goaway",
            ..Recorder::default()
        }),
        false,
    );
    let mut conn = h.accept(0);
    let mut fresh = Harness::new(Box::new(Echo), true).accept(0);
    h.shutdown_by = Some(h.at(5_000));
    conn.begin_shutdown(&mut h.cx(1_000));
    assert_eq!(conn.transmit(), b"goaway");
    assert_eq!(h.deadline(&conn), Some(h.at(5_000)));
    conn.handle_timeout(&mut h.cx(5_000));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::Shutdown));
    fresh.begin_shutdown(&mut h.cx(1_000));
    assert_eq!(
        h.next(&fresh),
        Next::Close(CloseReason::Shutdown),
        "not admitted yet"
    );
}

#[test]
fn reading_stops_at_the_high_water_mark_and_resumes_below_it() {
    let mut h = echo_harness();
    h.limits.output_high_water = 10;
    let mut conn = h.accept(0);
    conn.handle_input(b"0123456789", &mut h.cx(0));
    assert!(!conn.wants_read(&h.limits));
    assert_eq!(h.next(&conn), Next::Wait(Interest::WRITABLE));
    conn.handle_sent(1, &mut h.cx(1));
    assert!(conn.wants_read(&h.limits));
}

/// Regression: a service answering pipelined requests used to queue far
/// past the high-water mark in one call.
#[test]
fn a_service_can_leave_input_until_the_output_drains() {
    let mut h = Harness::new(
        Box::new(Recorder {
            line_at_a_time_until_full: true,
            ..Recorder::default()
        }),
        false,
    );
    h.limits.output_high_water = 5_000;
    let mut conn = h.accept(0);
    let requests = b"a\n".repeat(100);
    conn.handle_input(&requests, &mut h.cx(0));
    assert_eq!(conn.pending_output(), 5_000, "stopped at the mark");
    assert_eq!(conn.input.len(), 190, "the rest waits, unconsumed");
    assert!(!conn.wants_read(&h.limits));
    assert!(matches!(h.next(&conn), Next::Wait(Interest::WRITABLE)));
    // Draining below the mark offers the leftover again, with no new bytes.
    let mut answered = 0;
    while conn.pending_output() > 0 {
        let n = conn.pending_output().min(1_000);
        conn.handle_sent(n, &mut h.cx(1));
        answered += n;
    }
    assert_eq!(answered, 100 * 1_000, "every request was answered once");
    assert!(conn.input.is_empty());
    assert_eq!(h.next(&conn), Next::Wait(Interest::READABLE));
}

#[test]
fn unconsumed_input_beyond_the_limit_closes_unless_the_output_is_full() {
    let mut h = Harness::new(
        Box::new(Recorder {
            consume_nothing: true,
            ..Recorder::default()
        }),
        false,
    );
    h.limits.max_input = 8;
    let mut conn = h.accept(0);
    conn.handle_input(b"12345678", &mut h.cx(0));
    assert!(matches!(h.next(&conn), Next::Wait(_)));
    conn.handle_input(b"9", &mut h.cx(0));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::InputLimit));
}

#[test]
fn a_broadcast_receiver_that_falls_behind_is_dropped() {
    let mut h = echo_harness();
    h.limits.output_hard_limit = 100;
    let mut conn = h.accept(0);
    conn.handle_input(b"x", &mut h.cx(0));
    h.write_all(&mut conn, 0);
    conn.handle_broadcast(&[b'm'; 60], &mut h.cx(1));
    assert_eq!(conn.pending_output(), 60);
    conn.handle_broadcast(&[b'm'; 60], &mut h.cx(2));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::SlowConsumer));
}

#[test]
fn a_peer_that_finishes_is_answered_then_closed() {
    let mut h = echo_harness();
    let mut conn = h.accept(0);
    conn.handle_input(b"last words", &mut h.cx(0));
    conn.handle_eof(&mut h.cx(1));
    assert_eq!(h.next(&conn), Next::Wait(Interest::WRITABLE));
    assert_eq!(h.write_all(&mut conn, 2), b"last words");
    assert_eq!(h.next(&conn), Next::Close(CloseReason::PeerClosed));
}

#[test]
fn a_drained_queue_calls_on_drained_for_streaming_services() {
    let mut h = Harness::new(
        Box::new(crate::service::multicast::Multicast::new(32)),
        false,
    );
    let mut conn = h.accept(0);
    let first = conn.pending_output();
    assert!(first > 0, "the first batch is queued on connect");
    conn.handle_sent(first, &mut h.cx(1));
    assert_eq!(
        conn.pending_output(),
        first,
        "refilled as soon as it drained"
    );
}

#[test]
fn a_paused_connection_with_nothing_to_send_is_parked() {
    let mut h = echo_harness();
    let mut conn = h.accept(0);
    conn.handle_input(b"x", &mut h.cx(0));
    h.write_all(&mut conn, 0);
    conn.set_read_paused(true);
    assert_eq!(h.next(&conn), Next::Parked);
    assert!(
        h.deadline(&conn).is_some(),
        "deadlines still run while parked"
    );
    conn.set_read_paused(false);
    assert_eq!(h.next(&conn), Next::Wait(Interest::READABLE));
}

#[test]
fn a_socket_error_drops_the_output_and_closes() {
    let mut h = echo_harness();
    let mut conn = h.accept(0);
    conn.handle_input(b"queued", &mut h.cx(0));
    assert!(!conn.exchange_complete());
    conn.handle_socket_error(CloseReason::SocketError, &mut h.cx(1));
    assert!(conn.transmit().is_empty());
    assert_eq!(h.next(&conn), Next::Close(CloseReason::SocketError));
    let mut answered = h.accept(0);
    answered.handle_input(b"q", &mut h.cx(0));
    h.write_all(&mut answered, 0);
    assert!(answered.exchange_complete(), "a reset now would be routine");
}

#[test]
fn finishing_counts_the_reason_and_tells_the_service() {
    #[derive(Default)]
    struct Closes(Arc<std::sync::atomic::AtomicUsize>);
    impl Service for Closes {
        fn on_data(&mut self, _: &mut Session<'_>, data: &[u8]) -> usize {
            data.len()
        }
        fn on_close(&mut self, _: SessionId, _: &crate::connection_info::ConnectionInfo) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let closes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut h = Harness::new(Box::new(Closes(closes.clone())), true);
    let open = {
        let mut conn = h.accept(0);
        conn.handle_input(b"x", &mut h.cx(0));
        conn
    };
    open.finish(CloseReason::PeerReset, &mut h.cx(1));
    let never_admitted = h.accept(0);
    never_admitted.finish(CloseReason::HandshakeTimeout, &mut h.cx(1));
    assert_eq!(closes.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(h.stats.closed(CloseReason::PeerReset), 1);
    assert_eq!(h.stats.closed(CloseReason::HandshakeTimeout), 1);
}
