//! Every byte bound: back-pressure, input left for later, the input limit,
//! slow broadcast receivers, streaming refills, parking.

use super::*;

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
