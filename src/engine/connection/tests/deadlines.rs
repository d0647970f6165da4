//! Every deadline rule of `deadlines.rs`, each at the instant it fires and
//! just before, including the regressions that made connections immortal.

use super::*;

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
fn the_drain_serves_on_then_closes_politely_within_a_linger() {
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
    assert_eq!(h.write_all(&mut conn, 1_000), b"goaway");
    // Served on through the drain: still reading, until its end.
    assert_eq!(h.next(&conn), Next::Wait(Interest::READABLE));
    assert_eq!(h.deadline(&conn), Some(h.at(5_000)));
    conn.handle_timeout(&mut h.cx(4_999));
    assert_eq!(h.next(&conn), Next::Wait(Interest::READABLE));
    // The drain is over: a polite close (FIN, then linger), bounded by one
    // linger more.
    conn.handle_timeout(&mut h.cx(5_000));
    assert_eq!(h.next(&conn), Next::ShutdownWrite);
    conn.handle_write_shut(h.at(5_000));
    let linger = h.limits.linger_timeout.as_millis() as u64;
    assert_eq!(h.deadline(&conn), Some(h.at(5_000 + linger)));
    conn.handle_timeout(&mut h.cx(5_000 + linger));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::Shutdown));
    fresh.begin_shutdown(&mut h.cx(1_000));
    assert_eq!(
        h.next(&fresh),
        Next::Close(CloseReason::Shutdown),
        "not admitted yet"
    );
}
