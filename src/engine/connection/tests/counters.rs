//! What a connection counts in its worker's counters: admission by
//! transport, handshakes and their failures, and its ending in the lane it
//! was admitted to — even when a socket error has dropped its TLS session.

use super::*;
use crate::engine::counters::Lane;
use crate::tls::TlsErrorKind;

/// Runs a TLS handshake with SNI `localhost` to completion, then one echo.
fn tls_open(h: &mut Harness) -> Connection {
    let mut conn = h.accept(0);
    let tls = client(ClientCert::None);
    let mut client = TlsSession::client(&tls, Some("localhost"), None).unwrap();
    client.process(&mut Vec::new()).unwrap();
    client.send(b"ping").unwrap();
    let mut plain = Vec::new();
    for _ in 0..10 {
        let to_server = client.outgoing().to_vec();
        client.consume_outgoing(to_server.len());
        conn.handle_input(&to_server, &mut h.cx(3));
        let from_server = h.write_all(&mut conn, 3);
        client.receive(&from_server);
        client.process(&mut plain).unwrap();
        if plain == b"ping" {
            break;
        }
    }
    assert_eq!(conn.stage(), Stage::Open);
    conn
}

#[test]
fn a_tls_connection_is_counted_in_its_lane_to_the_end() {
    let mut h = echo_harness();
    let mut conn = tls_open(&mut h);
    assert_eq!(conn.lane(), Lane::Tls);
    let c = h.counters.listener(0);
    assert_eq!(c.lane(Lane::Tls).admitted.get(), 1);
    assert_eq!(c.lane(Lane::Tls).handshakes.get(), 1);
    assert_eq!(c.lane(Lane::Tls).resumed.get(), 0);
    // A socket error drops the TLS session; the ending is still TLS's.
    conn.handle_socket_error(CloseReason::SocketError, &mut h.cx(4));
    assert_eq!(conn.lane(), Lane::Tls);
    conn.finish(CloseReason::SocketError, &mut h.cx(4));
    let c = h.counters.listener(0);
    assert_eq!(
        c.lane(Lane::Tls).closed[CloseReason::SocketError.index()].get(),
        1
    );
    assert_eq!(
        c.lane(Lane::Plain)
            .closed
            .iter()
            .map(|t| t.get())
            .sum::<u64>(),
        0
    );
}

#[test]
fn plaintext_and_failed_handshakes_are_counted() {
    let mut h = echo_harness();
    let mut plain = h.accept(0);
    assert_eq!(plain.lane(), Lane::None);
    plain.handle_input(b"hi", &mut h.cx(1));
    assert_eq!(plain.lane(), Lane::Plain);
    assert_eq!(h.counters.listener(0).lane(Lane::Plain).admitted.get(), 1);
    // A record holding a 4-byte ClientHello: refused before any session.
    let mut bad = h.accept(0);
    bad.handle_input(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0, 0, 0], &mut h.cx(1));
    assert_eq!(h.next(&bad), Next::Close(CloseReason::TlsHandshakeFailed));
    bad.finish(CloseReason::TlsHandshakeFailed, &mut h.cx(2));
    let c = h.counters.listener(0);
    let failed: u64 = c.handshakes_failed.iter().map(|t| t.get()).sum();
    assert_eq!(failed, 1);
    assert_eq!(
        c.handshakes_failed[TlsErrorKind::MalformedClientHello.index()].get()
            + c.handshakes_failed[TlsErrorKind::NotClientHello.index()].get(),
        1
    );
    assert_eq!(
        c.lane(Lane::None).closed[CloseReason::TlsHandshakeFailed.index()].get(),
        1
    );
}
