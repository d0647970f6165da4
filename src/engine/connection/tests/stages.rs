//! The pipeline, stage by stage: sniffing, TLS, plaintext admission, end
//! of input at each stage, refusals and failures.

use super::*;

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
