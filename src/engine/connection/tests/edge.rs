//! The edge policy in the core: the PROXY stage (trusted and untrusted
//! peers, strictness, the header timeout, the real client's address and
//! TLVs in `ConnectionInfo`, rules and limits on that address), and the
//! read-rate pause — byte by byte, at chosen instants.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::engine::edge::{self, AccessRules, EdgeSettings, ProxyMode};
use crate::proxy::V2_SIGNATURE;

/// A service that answers every read with the client address it was told.
struct WhoAmI;

impl Service for WhoAmI {
    fn on_data(&mut self, session: &mut Session<'_>, data: &[u8]) -> usize {
        let info = session.info();
        let alpn = info
            .proxy
            .as_ref()
            .and_then(|h| h.tlvs.alpn.clone())
            .unwrap_or_default();
        let line = format!(
            "client={} peer={} alpn={}\n",
            info.client,
            info.peer,
            String::from_utf8_lossy(&alpn)
        );
        session.send(line.as_bytes());
        data.len()
    }
}

fn harness(settings: EdgeSettings, tls: bool) -> Harness {
    let mut h = Harness::new(Box::new(WhoAmI), tls);
    let local = h.listeners[0].local;
    h.listeners[0].edge = Arc::new(settings.build(local, 1000));
    h
}

fn proxied(mode: ProxyMode) -> EdgeSettings {
    EdgeSettings {
        proxy: mode,
        trusted_proxies: vec![edge::access::parse_net("127.0.0.0/8").unwrap()],
        ..EdgeSettings::default()
    }
}

fn accept_from(h: &mut Harness, peer: &str) -> Connection {
    let peer: SocketAddr = peer.parse().unwrap();
    Connection::new(SessionId(7), 0, peer, &mut h.cx(0))
}

fn v2_tcp4(src: [u8; 4], sport: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x21, 0x11]);
    h.extend_from_slice(&((12 + tlvs.len()) as u16).to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&8443u16.to_be_bytes());
    h.extend_from_slice(tlvs);
    h
}

#[test]
fn a_trusted_proxy_header_names_the_client_and_its_tlvs_reach_the_service() {
    let mut h = harness(proxied(ProxyMode::V2), false);
    let mut conn = accept_from(&mut h, PEER);
    assert_eq!(conn.stage(), Stage::ProxyHeader);
    let mut bytes = v2_tcp4([203, 0, 113, 9], 5555, &[0x01, 0, 2, b'h', b'2']);
    bytes.extend_from_slice(b"hello");
    // Byte by byte: nothing is processed before the header is whole.
    for (i, byte) in bytes.iter().enumerate() {
        conn.handle_input(std::slice::from_ref(byte), &mut h.cx(1));
        if i + 1 < bytes.len() - 5 {
            assert_eq!(conn.stage(), Stage::ProxyHeader, "byte {i}");
        }
    }
    assert_eq!(conn.stage(), Stage::Open);
    assert_eq!(conn.client(), "203.0.113.9:5555".parse().unwrap());
    let out = String::from_utf8(h.write_all(&mut conn, 2)).unwrap();
    assert_eq!(
        out,
        "client=203.0.113.9:5555 peer=127.0.0.1:40000 alpn=h2\n".repeat(5)
    );
}

#[test]
fn v1_then_tls_goes_on_to_the_handshake() {
    let mut h = harness(proxied(ProxyMode::Any), true);
    let mut conn = accept_from(&mut h, PEER);
    let mut bytes = b"PROXY TCP4 198.51.100.7 127.0.0.1 4000 8443\r\n".to_vec();
    let tls = client(ClientCert::None);
    let mut client = TlsSession::client(&tls, Some("localhost"), None).unwrap();
    client.process(&mut Vec::new()).unwrap();
    bytes.extend_from_slice(client.outgoing());
    conn.handle_input(&bytes, &mut h.cx(1));
    assert_eq!(conn.stage(), Stage::Handshaking);
    assert_eq!(conn.client(), "198.51.100.7:4000".parse().unwrap());
}

#[test]
fn an_untrusted_peer_that_sends_a_header_is_closed_and_never_believed() {
    let mut h = harness(proxied(ProxyMode::V1), false);
    let mut conn = accept_from(&mut h, "192.0.2.1:1000");
    assert_eq!(conn.stage(), Stage::Sniffing, "no header expected from it");
    conn.handle_input(b"PRO", &mut h.cx(1));
    assert_eq!(
        h.next(&conn),
        Next::Wait(Interest::READABLE),
        "too few bytes to tell"
    );
    conn.handle_input(b"XY TCP4 10.0.0.1 127.0.0.1 1 2\r\n", &mut h.cx(1));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::ProxyUntrusted));
    assert_eq!(conn.client(), "192.0.2.1:1000".parse().unwrap());
    // The v2 signature too.
    let mut conn = accept_from(&mut h, "192.0.2.1:1000");
    conn.handle_input(&v2_tcp4([10, 0, 0, 1], 1, &[]), &mut h.cx(1));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::ProxyUntrusted));
    // Ordinary traffic from an untrusted peer is served as usual.
    let mut conn = accept_from(&mut h, "192.0.2.1:1000");
    conn.handle_input(b"PING\n", &mut h.cx(1));
    assert_eq!(conn.stage(), Stage::Open);
    let out = String::from_utf8(h.write_all(&mut conn, 2)).unwrap();
    assert!(
        out.starts_with("client=192.0.2.1:1000 peer=192.0.2.1:1000"),
        "{out}"
    );
}

#[test]
fn without_the_protocol_a_header_is_just_data() {
    let mut h = harness(EdgeSettings::default(), false);
    let mut conn = accept_from(&mut h, PEER);
    assert_eq!(conn.stage(), Stage::Open, "no auto-detection");
    conn.handle_input(b"PROXY TCP4 10.0.0.1 127.0.0.1 1 2\r\n", &mut h.cx(1));
    let out = String::from_utf8(h.write_all(&mut conn, 2)).unwrap();
    assert!(out.starts_with("client=127.0.0.1:40000 "), "{out}");
}

#[test]
fn bad_headers_from_a_trusted_proxy_are_closed_and_counted() {
    let mut h = harness(proxied(ProxyMode::Any), false);
    // Not a header at all.
    let mut conn = accept_from(&mut h, PEER);
    conn.handle_input(b"GET / HTTP/1.1\r\n", &mut h.cx(1));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::ProxyInvalid));
    // A v1 line without CRLF within 107 bytes.
    let mut conn = accept_from(&mut h, PEER);
    let mut line = b"PROXY TCP4 ".to_vec();
    line.resize(200, b'1');
    conn.handle_input(&line, &mut h.cx(1));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::ProxyInvalid));
    // A v2 length larger than what follows, then the proxy leaves.
    let mut conn = accept_from(&mut h, PEER);
    let mut header = v2_tcp4([1, 2, 3, 4], 1, &[]);
    header[15] += 50;
    conn.handle_input(&header, &mut h.cx(1));
    assert_eq!(conn.stage(), Stage::ProxyHeader, "a partial header waits");
    conn.handle_eof(&mut h.cx(2));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::ProxyInvalid));
    // A health check that connects and leaves without a word.
    let mut conn = accept_from(&mut h, PEER);
    conn.handle_eof(&mut h.cx(2));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::PeerClosed));
}

#[test]
fn a_truncated_header_then_silence_times_out_after_proxy_header_secs() {
    let mut settings = proxied(ProxyMode::V2);
    settings.proxy_header_timeout = Duration::from_secs(3);
    let mut h = harness(settings, false);
    let mut conn = accept_from(&mut h, PEER);
    conn.handle_input(&V2_SIGNATURE[..8], &mut h.cx(10));
    assert_eq!(h.deadline(&conn), Some(h.at(3000)));
    conn.handle_timeout(&mut h.cx(2999));
    assert_eq!(h.next(&conn), Next::Wait(Interest::READABLE));
    conn.handle_timeout(&mut h.cx(3000));
    assert_eq!(h.next(&conn), Next::Close(CloseReason::ProxyTimeout));
}

#[test]
fn rules_and_limits_apply_to_the_address_the_header_names() {
    let mut settings = proxied(ProxyMode::V1);
    settings.access = AccessRules::parse(&["deny 10.0.0.0/8"]).unwrap();
    settings.max_connections_per_client = Some(1);
    let mut h = harness(settings, false);
    let header = |src: &str| format!("PROXY TCP4 {src} 127.0.0.1 1 2\r\n").into_bytes();
    let mut denied = accept_from(&mut h, PEER);
    denied.handle_input(&header("10.1.2.3"), &mut h.cx(1));
    assert_eq!(h.next(&denied), Next::Close(CloseReason::AccessDenied));
    let mut first = accept_from(&mut h, PEER);
    first.handle_input(&header("192.0.2.5"), &mut h.cx(1));
    assert_eq!(first.stage(), Stage::Open);
    assert_eq!(first.admitted().client, Some("192.0.2.5".parse().unwrap()));
    let mut second = accept_from(&mut h, PEER);
    second.handle_input(&header("192.0.2.5"), &mut h.cx(1));
    assert_eq!(
        h.next(&second),
        Next::Close(CloseReason::ClientMaxConnections)
    );
    let limits = &h.listeners[0].edge.limits;
    assert_eq!(limits.refusals(CloseReason::AccessDenied), 1);
    assert_eq!(limits.refusals(CloseReason::ClientMaxConnections), 1);
    // The proxy's own address is not limited: another client passes.
    let mut other = accept_from(&mut h, PEER);
    other.handle_input(&header("192.0.2.6"), &mut h.cx(1));
    assert_eq!(other.stage(), Stage::Open);
}

#[test]
fn the_read_rate_pauses_reading_and_resumes_when_the_bucket_refills() {
    let settings = EdgeSettings {
        read_rate_limit: Some(100 * 1024),
        ..EdgeSettings::default()
    };
    let mut h = harness(settings, false);
    h.service = Box::new(Echo);
    let mut conn = accept_from(&mut h, PEER);
    let allowance = conn.read_allowance().unwrap();
    assert_eq!(allowance, 10 * 1024, "a tenth of a second's worth");
    conn.handle_input(&vec![b'x'; allowance], &mut h.cx(0));
    h.write_all(&mut conn, 0);
    assert!(!conn.wants_read(&h.limits), "paused: the bucket is empty");
    assert_eq!(h.next(&conn), Next::Parked);
    let resume = conn.deadline(&h.cx(0)).unwrap();
    // A quarter of the bucket at 100 KiB/s: 25 ms.
    assert_eq!(resume, h.at(25));
    conn.handle_timeout(&mut h.cx(25));
    assert!(conn.wants_read(&h.limits));
    assert_eq!(h.next(&conn), Next::Wait(Interest::READABLE));
    assert_eq!(conn.read_allowance(), Some(2560));
}
